// The job's notes: saved as they are typed (debounced), on blur and as the page goes away, merged
// with what reached the API meanwhile so that no one's words are dropped.

import { el } from "../../dom.js";
import { api } from "../../api.js";
import { merge3 } from "../../text.js";
import { app } from "../../sync-bar.js";

/** `job`: what the job screen shares with its sections (see screens/job.js). */
export function notesSection(job) {
  const { base, write, later } = job;
  const ta = el("textarea", { id: "notes", "data-testid": "notes", rows: 4, autocomplete: "off", spellcheck: "true", placeholder: "Gate code, what you found, what the customer said…" });
  const state = el("span", { class: "save-state", "aria-live": "polite" }, "");
  const node = el("section", { class: "card", "aria-label": "Notes" },
    el("div", { class: "label-row" }, el("label", { for: "notes", class: "h2" }, "Notes"), state), ta);
  // The field is never rewritten while it has focus. What is saved is the technician's text
  // merged with what reached the API meanwhile (a note from the CLI, a dispatcher's line
  // synced in), so neither side's words are dropped.
  let ancestor = null; // the text the field and the API last agreed on
  let theirs = null; // the API's text, as last read or written
  let timer = 0;
  let seq = 0;
  let failed = false;
  let sending = null; // the text of the request on its way
  const focused = () => document.activeElement === ta;
  const dirty = () => ancestor !== null && ta.value !== ancestor;

  function setState(text, cls) {
    state.textContent = text;
    state.className = `save-state${cls ? ` ${cls}` : ""}`;
  }

  function save({ keepalive = false } = {}) {
    clearTimeout(timer);
    timer = 0;
    if (ancestor === null || (!dirty() && !failed)) return;
    const mine = ta.value;
    const text = merge3(ancestor, mine, theirs ?? ancestor);
    if (text === sending) return;
    sending = text;
    const my = ++seq;
    setState("Saving…");
    const req = keepalive
      ? api("PUT", `${base}/notes`, { notes: text }, { keepalive: true })
      : write("PUT", `${base}/notes`, { notes: text });
    req.finally(() => {
      if (sending === text) sending = null;
    }).catch(() => {});
    req.then(() => {
      if (my !== seq) return;
      failed = false;
      theirs = text;
      ancestor = mine;
      if (!focused() && ta.value === mine) {
        ta.value = text;
        ancestor = text;
      }
      if (ta.value === mine || ta.value === text) setState("✓ Saved", "ok");
    }).catch((e) => {
      if (my !== seq) return;
      failed = true;
      setState(`Not saved: ${e.message}`, "error");
      later(() => { if (failed) save(); }, 3000);
    });
  }
  /** Bring in what the API holds, when nothing typed is waiting and the field is not in use. */
  function catchUp() {
    if (ancestor === null || focused() || timer || sending !== null || dirty()) return;
    if (theirs !== null && ta.value !== theirs) ta.value = theirs;
    ancestor = ta.value;
  }
  ta.addEventListener("input", () => {
    setState("Editing…");
    clearTimeout(timer);
    timer = setTimeout(save, 400);
  });
  ta.addEventListener("blur", () => {
    save();
    catchUp();
  });
  const flush = () => {
    if (dirty() || timer) save({ keepalive: true });
  };
  app.flushers.add(flush);
  return {
    node,
    flush,
    update(d) {
      const text = d.notes ?? "";
      theirs = text;
      if (ancestor === null) {
        ta.value = text;
        ancestor = text;
        return;
      }
      catchUp();
    },
    destroy() {
      app.flushers.delete(flush);
      if (dirty() || timer) save({ keepalive: true });
      clearTimeout(timer);
    },
  };
}
