// DOM helpers: the page's fixed elements, making and filling elements (el, fill, append, esc),
// the inline icons, errors shown as text (near what failed, or for the whole page), and the
// wrappers that keep a failure from going unseen (guard, serial).

/** Where the screens go. */
export const main = document.getElementById("main");
/** The notices over the screen (sync-bar.js fills it); the page's error goes under it. */
export const noticesBox = document.getElementById("notices");

/** Create an element: props are attributes, except on* (listeners) and a few properties. */
export function el(tag, props, ...children) {
  const e = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v == null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k === "value" || k === "disabled" || k === "hidden" || k === "checked") e[k] = v;
      else if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(e, children);
  return e;
}

/** Replace `parent`'s children (null and false are skipped, as in `el`). */
export function fill(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

export function append(parent, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return parent;
}

export const esc = (s) =>
  String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const SVG_NS = "http://www.w3.org/2000/svg";
/** A small camera drawn inline (no icon font, no image request). */
export function cameraIcon() {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "22");
  svg.setAttribute("height", "22");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", "M4 7h3l2-2.5h6L17 7h3a1 1 0 0 1 1 1v10a1 1 0 0 1-1 1H4a1 1 0 0 1-1-1V8a1 1 0 0 1 1-1zm8 2.5a4 4 0 1 0 0 8 4 4 0 0 0 0-8z");
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "2");
  path.setAttribute("stroke-linejoin", "round");
  svg.append(path);
  return svg;
}

/** The same error, shown as text near what failed. */
export function showError(node, err) {
  if (!node) return;
  const msg = err == null ? "" : typeof err === "string" ? err : err.message || String(err);
  node.textContent = msg;
  node.hidden = !msg;
}

/** Wrap an event handler so a failure is shown, never an unhandled rejection. */
export const guard = (fn, errNode) => async (...args) => {
  try {
    await fn(...args);
  } catch (e) {
    if (errNode) showError(errNode, e);
    else showPageError(e);
  }
};

/** Run `fn` at most once at a time; a call during a run schedules one more run after it. */
export function serial(fn) {
  let running = null;
  let again = false;
  return function run() {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await fn();
        } while (again);
      } catch (e) {
        showPageError(e);
      } finally {
        running = null;
      }
    })();
    return running;
  };
}

let pageErrorBox = null;
export function showPageError(e) {
  if (!pageErrorBox) {
    pageErrorBox = el("p", { class: "page-error", role: "alert" });
    noticesBox.after(pageErrorBox);
  }
  showError(pageErrorBox, e);
}
export function clearPageError() {
  if (pageErrorBox) showError(pageErrorBox, null);
}
