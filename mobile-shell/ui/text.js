// Text: the three-way merge that keeps both sides' words when the notes were edited here and
// elsewhere at once.

/** The one run of `b` that differs from `a`: {start, end} in `a`, and the text in its place. */
function splice(a, b) {
  const n = Math.min(a.length, b.length);
  let p = 0;
  while (p < n && a[p] === b[p]) p++;
  let q = 0;
  while (q < n - p && a[a.length - 1 - q] === b[b.length - 1 - q]) q++;
  return { start: p, end: a.length - q, text: b.slice(p, b.length - q) };
}

/**
 * Three-way merge of two edits of `base`: both applied when they touch different places (the
 * usual case: a line added at the end on one side, a word typed in the middle on the other);
 * `mine` when they overlap.
 */
export function merge3(base, mine, theirs) {
  if (theirs === base || theirs === mine) return mine;
  if (mine === base) return theirs;
  const m = splice(base, mine);
  const t = splice(base, theirs);
  if (t.end <= m.start) return base.slice(0, t.start) + t.text + base.slice(t.end, m.start) + m.text + base.slice(m.end);
  if (m.end <= t.start) return base.slice(0, m.start) + m.text + base.slice(m.end, t.start) + t.text + base.slice(t.end);
  return mine;
}
