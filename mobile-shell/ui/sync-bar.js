// App state and the sync bar: the indicator state (`app`), the top bar, the notices, the live
// updates (one EventSource), the refresh of the screen they schedule, and the flush of unsent
// text as the page goes away.

import { el, fill, guard, noticesBox, showPageError, clearPageError } from "./dom.js";
import { api } from "./api.js";
import { relTime } from "./format.js";
import { parseRoute } from "./route.js";

export const app = {
  state: null,
  screen: null,
  firstRoute: true,
  flushers: new Set(), // run on pagehide / hidden, with keepalive requests
};

const bar = {
  online: document.querySelector("[data-testid=sync-online]"),
  pending: document.querySelector("[data-testid=sync-pending]"),
  uploads: document.querySelector("[data-testid=sync-uploads]"),
  last: document.querySelector("[data-testid=sync-last]"),
};

export function renderBar() {
  if (!app.state) return; // the bar keeps its "…" until the first state arrives
  const s = app.state;
  const online = !!s.online;
  bar.online.textContent = online ? "online" : "offline";
  bar.online.dataset.online = String(online);
  bar.online.parentElement.title = !online && s.problem ? `Not syncing: ${s.problem}` : "";
  const pending = Number(s.pending_changes) || 0;
  bar.pending.textContent = String(pending);
  bar.pending.dataset.count = String(pending);
  const up = s.uploads || {};
  const waiting = Number(up.waiting) || 0;
  const cur = up.current;
  let text = String(waiting);
  if (cur && cur.size > 0) text = `${waiting} · ${Math.min(99, Math.floor((100 * (cur.sent || 0)) / cur.size))}%`;
  bar.uploads.textContent = text;
  bar.uploads.dataset.waiting = String(waiting);
  bar.uploads.dataset.refused = String(Number(up.refused) || 0);
  bar.uploads.title = up.refused ? `${up.refused} refused by the server` : "";
  bar.last.textContent = relTime(s.last_sync_at);
  bar.last.title = s.last_sync_at ? new Date(s.last_sync_at).toLocaleString() : "";
}

let noticesKey = "";

export function renderNotices() {
  const s = app.state || {};
  const notices = Array.isArray(s.notices) ? s.notices : [];
  const route = parseRoute();
  const signedOut = s.signed_in === false && route.name !== "signin";
  const key = JSON.stringify([notices.map((n) => [n.id, n.text]), signedOut]);
  if (key === noticesKey) return;
  noticesKey = key;
  const nodes = notices.map((n) => {
    const err = el("p", { class: "error", role: "alert", hidden: true });
    const box = el("div", { class: "notice", "data-testid": "notice", "data-notice-id": n.id, role: "status" },
      el("p", { class: "notice-text" }, n.text),
      el("button", {
        type: "button",
        class: "btn small",
        "aria-label": "Dismiss notice",
        onclick: guard(async (ev) => {
          ev.currentTarget.disabled = true;
          try {
            await api("POST", `/api/notices/${encodeURIComponent(n.id)}/dismiss`);
          } catch (e) {
            ev.currentTarget.disabled = false;
            throw e;
          }
          box.remove();
          if (app.state && Array.isArray(app.state.notices)) {
            app.state.notices = app.state.notices.filter((x) => x.id !== n.id);
            noticesKey = "";
          }
        }, err),
      }, "Dismiss"),
      err);
    return box;
  });
  if (signedOut) {
    nodes.unshift(el("div", { class: "notice warn", role: "status" },
      el("p", { class: "notice-text" }, "Not signed in: your work stays on this device until you sign in."),
      el("a", { class: "btn small", href: "#/signin" }, "Sign in")));
  }
  fill(noticesBox, ...nodes);
}

export function setState(s) {
  if (!s || typeof s !== "object") return;
  const prev = app.state;
  app.state = s;
  renderBar();
  renderNotices();
  if (app.screen && app.screen.onState) app.screen.onState(s);
  // Badges and upload states follow the indicators: re-read what the screen shows when they move.
  if (
    prev &&
    (prev.pending_changes !== s.pending_changes ||
      prev.online !== s.online ||
      (prev.uploads || {}).waiting !== (s.uploads || {}).waiting ||
      (prev.uploads || {}).refused !== (s.uploads || {}).refused)
  ) {
    scheduleRefresh();
  }
}

export async function loadState() {
  try {
    setState(await api("GET", "/api/state"));
    clearPageError();
    return true;
  } catch (e) {
    showPageError(e);
    return false;
  }
}

// Live updates: one EventSource; it reconnects by itself (and is made again if it gives up).
let events = null;
export function connectEvents() {
  if (events) events.close();
  let broken = false;
  events = new EventSource("/api/events");
  events.addEventListener("state", (e) => {
    try {
      setState(JSON.parse(e.data));
    } catch {
      /* a malformed event: the next one will do */
    }
  });
  events.addEventListener("changed", () => scheduleRefresh());
  events.addEventListener("open", () => {
    if (broken) {
      broken = false;
      loadState();
      scheduleRefresh(); // what changed while the stream was down
    }
  });
  events.addEventListener("error", () => {
    broken = true;
    if (events.readyState === EventSource.CLOSED) setTimeout(connectEvents, 3000);
  });
}

let refreshTimer = 0;
function scheduleRefresh(delay = 120) {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = 0;
    if (app.screen && app.screen.refresh) app.screen.refresh();
  }, delay);
}

// Nothing typed is lost when the page goes away.
function flushAll() {
  for (const f of app.flushers) {
    try {
      f();
    } catch {
      /* best effort while the page goes away */
    }
  }
}
window.addEventListener("pagehide", flushAll);
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") flushAll();
  else {
    loadState();
    scheduleRefresh();
  }
});

setInterval(() => {
  if (app.state) bar.last.textContent = relTime(app.state.last_sync_at);
}, 15000);
