// The signature pad: a canvas the customer signs on (Pointer Events), redrawn sharp at any size,
// and the signature as a PNG.

/** A canvas the customer signs on with a finger, a pen or a mouse (Pointer Events). */
export function signaturePad(canvas, onStroke) {
  const strokes = [];
  let current = null;
  let ratio = 1;
  const ctx = canvas.getContext("2d");

  function size() {
    const rect = canvas.getBoundingClientRect();
    const w = Math.max(1, Math.round(rect.width));
    const h = Math.max(1, Math.round(rect.height));
    ratio = Math.max(1, Math.min(3, window.devicePixelRatio || 1));
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    redraw(ctx, ratio, canvas.width, canvas.height);
  }

  function style(c, r) {
    c.lineCap = "round";
    c.lineJoin = "round";
    c.strokeStyle = "#0a1a3a";
    c.fillStyle = "#0a1a3a";
    c.lineWidth = 2.6 * r;
  }

  function redraw(c, r, w, h) {
    c.save();
    c.setTransform(1, 0, 0, 1, 0, 0);
    c.fillStyle = "#ffffff";
    c.fillRect(0, 0, w, h);
    c.restore();
    style(c, r);
    for (const s of strokes) {
      if (s.length === 1) {
        c.beginPath();
        c.arc(s[0][0] * r, s[0][1] * r, 1.4 * r, 0, Math.PI * 2);
        c.fill();
        continue;
      }
      c.beginPath();
      c.moveTo(s[0][0] * r, s[0][1] * r);
      for (let i = 1; i < s.length; i++) c.lineTo(s[i][0] * r, s[i][1] * r);
      c.stroke();
    }
  }

  const point = (e) => {
    const rect = canvas.getBoundingClientRect();
    return [e.clientX - rect.left, e.clientY - rect.top];
  };

  function down(e) {
    if (current || (e.pointerType === "mouse" && e.button !== 0)) return;
    e.preventDefault();
    try {
      canvas.setPointerCapture(e.pointerId);
    } catch {
      /* capture is a nicety */
    }
    current = { id: e.pointerId, pts: [point(e)] };
    strokes.push(current.pts);
    style(ctx, ratio);
    const [x, y] = current.pts[0];
    ctx.beginPath();
    ctx.arc(x * ratio, y * ratio, 1.4 * ratio, 0, Math.PI * 2);
    ctx.fill();
    onStroke();
  }
  function move(e) {
    if (!current || e.pointerId !== current.id) return;
    e.preventDefault();
    const evs = typeof e.getCoalescedEvents === "function" ? e.getCoalescedEvents() : [];
    style(ctx, ratio);
    for (const ev of evs.length ? evs : [e]) {
      const p = point(ev);
      const last = current.pts[current.pts.length - 1];
      current.pts.push(p);
      ctx.beginPath();
      ctx.moveTo(last[0] * ratio, last[1] * ratio);
      ctx.lineTo(p[0] * ratio, p[1] * ratio);
      ctx.stroke();
    }
  }
  function up(e) {
    if (!current || e.pointerId !== current.id) return;
    current = null;
  }
  canvas.addEventListener("pointerdown", down);
  canvas.addEventListener("pointermove", move);
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  canvas.addEventListener("lostpointercapture", up);
  const ro = typeof ResizeObserver === "function" ? new ResizeObserver(() => size()) : null;
  if (ro) ro.observe(canvas);
  requestAnimationFrame(size);

  return {
    resize: () => requestAnimationFrame(size),
    empty: () => strokes.length === 0,
    clear() {
      strokes.length = 0;
      current = null;
      redraw(ctx, ratio, canvas.width, canvas.height);
    },
    /** The signature as a PNG (white background, at most 2× the drawn size), base64. */
    async pngBase64() {
      const rect = canvas.getBoundingClientRect();
      const r = Math.min(2, ratio);
      const out = document.createElement("canvas");
      out.width = Math.max(1, Math.round(rect.width * r));
      out.height = Math.max(1, Math.round(rect.height * r));
      redraw(out.getContext("2d"), r, out.width, out.height);
      const blob = await new Promise((resolve, reject) =>
        out.toBlob((b) => (b ? resolve(b) : reject(new Error("The signature could not be saved as an image."))), "image/png"));
      const bytes = new Uint8Array(await blob.arrayBuffer());
      let bin = "";
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
      return btoa(bin);
    },
    destroy() {
      if (ro) ro.disconnect();
    },
  };
}
