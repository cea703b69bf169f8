// Fieldsync: the technician's app. Screens over the local API of `mobile-shell serve` (see
// README.md beside this file); no framework, no build step, no request anywhere but that API.
//
// Routes (location.hash): #/ (my jobs; ?filter=today|upcoming|all), #/job/{id},
// #/job/{id}/signoff, #/signin.
//
// Rules the code below keeps:
// - Everything shown comes from the API; a write's answer (or the next read) is what is shown.
// - A field the user is typing in is never overwritten by a refresh (focus or unsent text).
// - Reads that started before a write are not applied over that write's answer.
// - Nothing typed is lost: notes save as you type (debounced), on blur, and on pagehide /
//   visibilitychange with keepalive requests.

// ---------------------------------------------------------------------------------------------
// Small helpers

const main = document.getElementById("main");

/** Create an element: props are attributes, except on* (listeners) and a few properties. */
function el(tag, props, ...children) {
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
function fill(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

function append(parent, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return parent;
}

const esc = (s) =>
  String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

const SVG_NS = "http://www.w3.org/2000/svg";
/** A small camera drawn inline (no icon font, no image request). */
function cameraIcon() {
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
function showError(node, err) {
  if (!node) return;
  const msg = err == null ? "" : typeof err === "string" ? err : err.message || String(err);
  node.textContent = msg;
  node.hidden = !msg;
}

/** Wrap an event handler so a failure is shown, never an unhandled rejection. */
const guard = (fn, errNode) => async (...args) => {
  try {
    await fn(...args);
  } catch (e) {
    if (errNode) showError(errNode, e);
    else showPageError(e);
  }
};

/** Run `fn` at most once at a time; a call during a run schedules one more run after it. */
function serial(fn) {
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
function merge3(base, mine, theirs) {
  if (theirs === base || theirs === mine) return mine;
  if (mine === base) return theirs;
  const m = splice(base, mine);
  const t = splice(base, theirs);
  if (t.end <= m.start) return base.slice(0, t.start) + t.text + base.slice(t.end, m.start) + m.text + base.slice(m.end);
  if (m.end <= t.start) return base.slice(0, m.start) + m.text + base.slice(m.end, t.start) + t.text + base.slice(t.end);
  return mine;
}

// ---------------------------------------------------------------------------------------------
// The local API

class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
  /** The labels of a 409 checklist-incomplete, wherever the answer put them. */
  get missing() {
    const b = this.body || {};
    return (b.error && Array.isArray(b.error.missing) && b.error.missing) || (Array.isArray(b.missing) && b.missing) || null;
  }
}

/**
 * One request to the local API. JSON in and out unless `raw` (then `body` is sent as is with
 * `contentType`). Throws ApiError with the answer's message.
 */
async function api(method, path, body, { raw = false, contentType, keepalive = false } = {}) {
  const init = { method, headers: { accept: "application/json" }, keepalive, cache: "no-store" };
  if (body !== undefined) {
    if (raw) {
      init.body = body;
      init.headers["content-type"] = contentType || "application/octet-stream";
    } else {
      init.body = JSON.stringify(body);
      init.headers["content-type"] = "application/json";
    }
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, "unreachable", "The app’s local service is not answering. Try again in a moment.");
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const e = data && data.error;
    const code = (e && typeof e === "object" && e.code) || (typeof e === "string" && e) || `http-${res.status}`;
    const message =
      (e && typeof e === "object" && e.message) ||
      (data && typeof data.message === "string" && data.message) ||
      `The app answered ${res.status}${res.statusText ? ` ${res.statusText}` : ""}.`;
    throw new ApiError(res.status, code, message, data);
  }
  return data;
}

const jobPath = (id) => `/api/jobs/${encodeURIComponent(id)}`;

/** A JobDetail, flat (tolerates `{job: JobView, ...extras}` too). */
function normalizeDetail(d) {
  if (d && d.job && typeof d.job === "object" && d.title === undefined) return { ...d.job, ...d, job: undefined };
  return d;
}

const isDetail = (d) => d && typeof d === "object" && (d.checklist !== undefined || (d.job && d.job.checklist !== undefined));

// ---------------------------------------------------------------------------------------------
// Words and numbers

const STATUS_LABEL = {
  pending: "Pending",
  assigned: "Assigned",
  en_route: "On the way",
  in_progress: "In progress",
  on_hold: "On hold",
  completed: "Completed",
  cancelled: "Cancelled",
};

function actionLabel(from, to) {
  switch (to) {
    case "en_route": return "Start driving";
    case "in_progress": return from === "on_hold" ? "Resume work" : "Start work";
    case "on_hold": return "Put on hold";
    case "completed": return "Complete job";
    case "assigned": return from === "en_route" ? "Turn around" : "Back to assigned";
    case "pending": return "Return to dispatch";
    case "cancelled": return "Cancel job";
    default: return to;
  }
}

// The forward step first, the ones that undo or stop last.
const ACTION_ORDER = ["en_route", "in_progress", "completed", "on_hold", "assigned", "pending", "cancelled"];
const PRIMARY = new Set(["en_route", "in_progress", "completed"]);

const PRIORITY_LABEL = { low: "Low", medium: "Medium", high: "High", urgent: "Urgent" };

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short" });
const fullFmt = new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });

function startOfDay(d) {
  const x = new Date(d);
  x.setHours(0, 0, 0, 0);
  return x;
}

/** "Today 14:00", "Tomorrow 09:30", "Mon 3 Dec 10:00". */
function when(iso) {
  if (!iso) return "Not scheduled";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const days = Math.round((startOfDay(d) - startOfDay(new Date())) / 86400000);
  const t = timeFmt.format(d);
  if (days === 0) return `Today ${t}`;
  if (days === 1) return `Tomorrow ${t}`;
  if (days === -1) return `Yesterday ${t}`;
  return `${dayFmt.format(d)} ${t}`;
}

function relTime(iso) {
  if (!iso) return "never";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "never";
  const s = (Date.now() - t) / 1000;
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.max(1, Math.round(s / 60))}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`;
}

function duration(ms) {
  const m = Math.round(ms / 60000);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

const moneyFmt = new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const money = (cents) => (cents == null ? "" : moneyFmt.format(cents / 100));

const numFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 });
const num = (n) => (n == null || n === "" ? "" : typeof n === "number" ? numFmt.format(n) : String(n));

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An answer as the customer reads it. */
function answerText(value, unit) {
  if (value == null || value === "") return "—";
  if (value === "pass") return "Pass";
  if (value === "fail") return "Fail";
  if (value === "na") return "N/A";
  if (typeof value === "string" && UUID_RE.test(value)) return "Photo taken";
  return unit ? `${num(value)} ${unit}` : num(value);
}

/** A time entry's start and end, whichever names the answer uses. */
const entryStart = (t) => t.started_at ?? t.start ?? null;
const entryEnd = (t) => t.stopped_at ?? t.end ?? null;

/** The item a photo answers, whichever name the answer uses. */
const photoItem = (p) => p.checklist_item ?? p.item ?? null;

/** [text, class] of a photo's upload state. */
function uploadState(sha, uploads, fallback) {
  const u = uploads && sha ? uploads[sha] : null;
  if (u) {
    if (u.state === "done" || u.state === "uploaded") return ["uploaded", "done"];
    if (u.state === "refused") return [`refused: ${u.reason || "no reason given"}`, "refused"];
    if (u.sent > 0 && u.size > 0) return [`uploading ${Math.min(99, Math.floor((100 * u.sent) / u.size))} %`, "progress"];
    return ["waiting to upload", "waiting"];
  }
  if (fallback === "uploaded") return ["uploaded", "done"];
  return ["waiting to upload", "waiting"];
}

// ---------------------------------------------------------------------------------------------
// App state: the indicator state, the top bar, notices

const app = {
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

function renderBar() {
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

const noticesBox = document.getElementById("notices");
let noticesKey = "";

function renderNotices() {
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

let pageErrorBox = null;
function showPageError(e) {
  if (!pageErrorBox) {
    pageErrorBox = el("p", { class: "page-error", role: "alert" });
    noticesBox.after(pageErrorBox);
  }
  showError(pageErrorBox, e);
}
function clearPageError() {
  if (pageErrorBox) showError(pageErrorBox, null);
}

function setState(s) {
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

async function loadState() {
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
function connectEvents() {
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

// ---------------------------------------------------------------------------------------------
// Routing

function parseRoute() {
  const h = location.hash.replace(/^#/, "") || "/";
  const [path, query = ""] = h.split("?");
  const params = new URLSearchParams(query);
  let m;
  if (path === "/signin") return { name: "signin" };
  if ((m = path.match(/^\/job\/([^/]+)\/signoff\/?$/))) return { name: "signoff", id: decodeURIComponent(m[1]) };
  if ((m = path.match(/^\/job\/([^/]+)\/?$/))) return { name: "job", id: decodeURIComponent(m[1]) };
  const f = params.get("filter");
  return { name: "list", filter: ["today", "upcoming", "all"].includes(f) ? f : "today", bare: (path === "/" || path === "") && !query };
}

const screens = {};

function show() {
  let route = parseRoute();
  // Not signed in: the app opens on the sign-in screen (deep links still show what the device holds).
  if (app.firstRoute && app.state && app.state.signed_in === false && route.name === "list" && route.bare) {
    app.firstRoute = false;
    location.replace("#/signin");
    return;
  }
  app.firstRoute = false;
  const prevName = app.screen && app.screen.name;
  if (app.screen && app.screen.destroy) app.screen.destroy();
  app.screen = null;
  clearPageError();
  fill(main);
  const screen = screens[route.name](route, main);
  screen.name = route.name + (route.id || "");
  app.screen = screen;
  if (prevName !== screen.name) window.scrollTo(0, 0);
  renderNotices();
}

window.addEventListener("hashchange", show);

// ---------------------------------------------------------------------------------------------
// Screen: sign in

screens.signin = () => {
  const s = app.state || {};
  const err = el("p", { class: "error", role: "alert", hidden: true, id: "signin-error" });
  const server = el("input", { id: "f-server", name: "server", type: "url", required: true, autocomplete: "url", inputmode: "url", value: s.server || "", placeholder: "https://fieldsync.example.com" });
  const user = el("input", { id: "f-user", name: "user", required: true, autocomplete: "username", autocapitalize: "none", spellcheck: "false", value: (s.signed_in && s.user) || "" });
  const password = el("input", { id: "f-password", name: "password", type: "password", required: true, autocomplete: "current-password" });
  const submit = el("button", { type: "submit", class: "btn primary wide" }, "Sign in");
  const form = el("form", { class: "card form", id: "signin", novalidate: true },
    el("h1", {}, "Sign in"),
    s.signed_in ? el("p", { class: "muted" }, `Signed in as ${s.user || "?"} on ${s.server || "?"}. Sign in again to change.`) : el("p", { class: "muted" }, "Once signed in, the app works without signal."),
    el("label", { for: "f-server" }, "Server address"), server,
    el("label", { for: "f-user" }, "User name"), user,
    el("label", { for: "f-password" }, "Password"), password,
    err, submit);
  form.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    showError(err, null);
    const body = { server: server.value.trim(), user: user.value.trim(), password: password.value };
    if (!body.server || !body.user || !body.password) {
      showError(err, "Enter the server address, your user name and your password.");
      return;
    }
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      const st = await api("POST", "/api/login", body);
      password.value = "";
      if (st && typeof st === "object" && "signed_in" in st) setState(st);
      else await loadState();
      location.hash = "#/";
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  }, err));
  main.append(form, el("p", { class: "center" }, el("a", { class: "btn link", href: "#/?filter=all" }, "Open the jobs on this device")));
  (s.server ? (user.value ? password : user) : server).focus({ preventScroll: true });
  return { refresh() {} };
};

// ---------------------------------------------------------------------------------------------
// Screen: my jobs

screens.list = (route) => {
  const filter = route.filter;
  const tabs = el("nav", { class: "segmented", "aria-label": "Which jobs" },
    ["today", "upcoming", "all"].map((f) =>
      el("a", {
        href: f === "today" ? "#/" : `#/?filter=${f}`,
        class: "seg",
        "data-testid": "filter-tab",
        "data-filter": f,
        "aria-current": f === filter ? "page" : null,
      }, { today: "Today", upcoming: "Upcoming", all: "All" }[f])));
  const err = el("p", { class: "error", role: "alert", hidden: true });
  const list = el("ul", { class: "jobs", "aria-label": "Jobs" });
  const empty = el("p", { class: "empty", hidden: true }, {
    today: "No jobs for today.",
    upcoming: "No upcoming jobs.",
    all: "No jobs on this device yet. They arrive with the next sync.",
  }[filter]);
  const count = el("span", { class: "count muted" });
  // Why the device is not syncing, when it tried and failed (the bar has no room for it).
  const problem = el("p", { class: "sync-problem muted", hidden: true });
  const showProblem = (s) => {
    const why = s && !s.online && s.signed_in !== false && s.problem ? `Not syncing: ${s.problem}` : "";
    problem.textContent = why;
    problem.hidden = !why;
  };
  showProblem(app.state);
  main.append(el("div", { class: "screen-head" }, el("h1", {}, "My jobs"), count), problem, tabs, err, empty, list);

  const rows = new Map(); // id -> {li, html}
  let loaded = false;

  function rowHtml(j) {
    const prio = j.priority || "medium";
    const prioMark = prio === "urgent" || prio === "high" ? `<span class="prio prio-${esc(prio)}">${esc(PRIORITY_LABEL[prio])}</span>` : "";
    const badge = j.unsynced > 0
      ? `<span class="badge" data-testid="unsynced-badge" title="${esc(j.unsynced)} changes not synced yet"><span class="sr">Not synced: </span>${esc(j.unsynced)}</span>`
      : "";
    const total = j.checklist_total || 0;
    const done = j.checklist_done || 0;
    const pct = total ? Math.round((100 * done) / total) : 0;
    return `<a class="job-row p-${esc(prio)}" href="#/job/${encodeURIComponent(j.id)}" data-testid="job-row" data-job-id="${esc(j.id)}" data-status="${esc(j.status)}">`
      + `<span class="r1">${prioMark}<strong class="title">${esc(j.title)}</strong>${badge}</span>`
      + `<span class="r2">${esc(j.customer)}${j.site ? ` · ${esc(j.site)}` : ""}</span>`
      + `<span class="r3"><span class="when">${esc(when(j.scheduled_start))}</span>`
      + `<span class="chip st-${esc(j.status)}">${esc(STATUS_LABEL[j.status] || j.status)}</span>`
      + (j.signed_off ? `<span class="chip signed-chip">Signed</span>` : "")
      + `</span>`
      + `<span class="r4"><span class="progress" aria-hidden="true"><span style="width:${pct}%"></span></span>`
      + `<span class="prog-text">Checklist ${esc(done)}/${esc(total)}${j.parts_lines ? ` · ${esc(j.parts_lines)} part${j.parts_lines === 1 ? "" : "s"}` : ""}</span></span>`
      + (j.broken ? `<span class="r5 error">Cannot be read on this device: ${esc(j.broken)}</span>` : "")
      + `</a>`;
  }

  const load = serial(async () => {
    let jobs;
    try {
      jobs = await api("GET", `/api/jobs?filter=${filter}`);
      showError(err, null);
    } catch (e) {
      showError(err, `Could not load the jobs: ${e.message}`);
      return;
    }
    if (!Array.isArray(jobs)) jobs = [];
    if (rows.size === 0 && jobs.length) {
      // First paint: one parse for the whole list (hundreds of rows on a phone).
      const htmls = jobs.map(rowHtml);
      list.innerHTML = htmls.map((h) => `<li>${h}</li>`).join("");
      let li = list.firstElementChild;
      for (let i = 0; i < jobs.length && li; i++, li = li.nextElementSibling) rows.set(String(jobs[i].id), { li, html: htmls[i] });
      empty.hidden = true;
      count.textContent = `${jobs.length} job${jobs.length === 1 ? "" : "s"}`;
      loaded = true;
      return;
    }
    const seen = new Set();
    let prev = null;
    for (const j of jobs) {
      const id = String(j.id);
      seen.add(id);
      const html = rowHtml(j);
      let r = rows.get(id);
      if (!r) {
        const li = document.createElement("li");
        li.innerHTML = html;
        r = { li, html };
        rows.set(id, r);
      } else if (r.html !== html) {
        r.li.innerHTML = html;
        r.html = html;
      }
      // Keep the server's order (soonest first) without moving rows that are in place.
      const want = prev ? prev.nextSibling : list.firstChild;
      if (want !== r.li) list.insertBefore(r.li, want);
      prev = r.li;
    }
    for (const [id, r] of rows) {
      if (!seen.has(id)) {
        r.li.remove();
        rows.delete(id);
      }
    }
    empty.hidden = jobs.length > 0;
    count.textContent = jobs.length ? `${jobs.length} job${jobs.length === 1 ? "" : "s"}` : "";
    loaded = true;
  });

  load();
  return { refresh: load, onState: showProblem, get loaded() { return loaded; } };
};

// ---------------------------------------------------------------------------------------------
// Screen: one job

screens.job = (route) => {
  const id = route.id;
  const base = jobPath(id);
  let detail = null;
  let destroyed = false;
  const timers = new Set();
  const later = (fn, ms) => {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!destroyed) fn();
    }, ms);
    timers.add(t);
    return t;
  };

  // Writes and reads: a read that started before a write is not shown over it.
  let writeSeq = 0;
  let writesInFlight = 0;
  let reloadAfterWrites = false;

  async function write(method, path, body, opts) {
    const seq = ++writeSeq;
    writesInFlight += 1;
    try {
      const d = await api(method, path, body, opts);
      if (isDetail(d)) {
        if (seq === writeSeq) apply(normalizeDetail(d));
        else reloadAfterWrites = true;
      }
      return d;
    } finally {
      writesInFlight -= 1;
      if (writesInFlight === 0 && reloadAfterWrites && !destroyed) {
        reloadAfterWrites = false;
        load();
      }
    }
  }

  const pageErr = el("p", { class: "error", role: "alert", hidden: true });
  const loading = el("p", { class: "loading" }, "Loading the job…");
  const back = el("a", { class: "back", href: "#/" }, "‹ My jobs");
  main.append(back, pageErr, loading);

  const load = serial(async () => {
    const seqAtStart = writeSeq;
    let d;
    try {
      d = normalizeDetail(await api("GET", base));
    } catch (e) {
      loading.hidden = true;
      if (e.status === 404) {
        showError(pageErr, "This job is no longer on this device (it may have been unassigned).");
        if (built) built.root.hidden = true;
      } else {
        showError(pageErr, `Could not load the job: ${e.message}`);
      }
      return;
    }
    if (destroyed) return;
    showError(pageErr, null);
    if (writesInFlight > 0) {
      reloadAfterWrites = true;
      return;
    }
    if (seqAtStart !== writeSeq) {
      later(load, 0);
      return;
    }
    apply(d);
  });

  let built = null;

  function apply(d) {
    if (destroyed || !d) return;
    detail = d;
    loading.hidden = true;
    if (!built) built = build();
    built.root.hidden = false;
    built.update(d);
  }

  // -- the screen's parts, made once and updated in place --------------------------------------

  function build() {
    const root = el("div", { class: "job" });
    const head = headSection();
    const status = statusSection();
    const signed = signedSection();
    const time = timeSection();
    const notes = notesSection();
    const checklist = checklistSection();
    const parts = partsSection();
    const photos = photosSection();
    const signoff = signoffSection();
    root.append(head.node, status.node, signed.node, time.node, notes.node, checklist.node, parts.node, photos.node, signoff.node);
    main.append(root);
    const sections = [head, status, signed, time, notes, checklist, parts, photos, signoff];
    return {
      root,
      sections,
      update(d) {
        for (const s of sections) s.update(d);
      },
    };
  }

  const locked = (d) => !!d.locked || !!d.signoff || d.status === "completed" || d.status === "cancelled";

  function headSection() {
    const node = el("section", { class: "card head", "aria-label": "Job" });
    let key = "";
    return {
      node,
      update(d) {
        const k = JSON.stringify([d.title, d.status, d.priority, d.schedule, d.customer, d.site, d.asset, d.description, d.unsynced]);
        if (k === key) return;
        key = k;
        const c = d.customer || {};
        const site = d.site || {};
        const a = d.asset;
        const assetBits = a
          ? [a.name, [a.make, a.model].filter(Boolean).join(" "), a.serial && `S/N ${a.serial}`, a.vin && `VIN ${a.vin}`].filter(Boolean)
          : [];
        const prio = d.priority || "medium";
        fill(node,
          el("div", { class: "head-top" },
            el("span", { class: "chip status-chip st-" + d.status, "data-testid": "job-status", title: STATUS_LABEL[d.status] || "" }, d.status),
            prio === "urgent" || prio === "high" ? el("span", { class: `prio prio-${prio}` }, PRIORITY_LABEL[prio]) : el("span", { class: "muted" }, `${PRIORITY_LABEL[prio] || prio} priority`),
            d.unsynced > 0 ? el("span", { class: "badge", title: "Changes not synced yet" }, el("span", { class: "sr" }, "Not synced: "), d.unsynced) : null),
          el("h1", { class: "job-title" }, d.title),
          el("p", { class: "when-line" }, when(d.schedule && d.schedule.start), d.schedule && d.schedule.end ? ` – ${timeFmt.format(new Date(d.schedule.end))}` : ""),
          d.description ? el("p", { class: "desc" }, d.description) : null,
          el("dl", { class: "facts" },
            el("dt", {}, "Customer"),
            el("dd", {}, el("span", { class: "strong" }, c.name || "—"),
              c.phone ? el("a", { class: "btn link-btn", href: `tel:${c.phone.replace(/[^+\d]/g, "")}`, "aria-label": `Call ${c.name || "the customer"} at ${c.phone}` }, "☎ ", c.phone) : null,
              c.email ? el("a", { class: "btn link-btn", href: `mailto:${c.email}`, title: c.email, "aria-label": `Email ${c.email}` }, "✉ Email") : null),
            el("dt", {}, "Site"),
            el("dd", {}, el("span", { class: "strong" }, site.name || "—"), site.address ? el("span", { class: "addr" }, site.address) : null),
            assetBits.length ? [el("dt", {}, "Asset"), el("dd", {}, assetBits.join(" · "))] : null));
      },
    };
  }

  function statusSection() {
    const buttons = el("div", { class: "actions" });
    const err = el("p", { class: "error", role: "alert", hidden: true });
    const node = el("section", { class: "card", "aria-label": "Status" }, buttons, err);
    let key = "";
    let busy = false;
    let confirmCancel = false;
    function render(d) {
      const next = (Array.isArray(d.next_statuses) ? d.next_statuses : [])
        .slice()
        .sort((a, b) => (ACTION_ORDER.indexOf(a) + 99) % 99 - (ACTION_ORDER.indexOf(b) + 99) % 99);
      const k = JSON.stringify([d.status, next, busy, confirmCancel]);
      if (k === key) return;
      key = k;
      node.hidden = next.length === 0;
      fill(buttons, ...next.map((to) => {
        const label = to === "cancelled" && confirmCancel ? "Tap again to cancel the job" : actionLabel(d.status, to);
        return el("button", {
          type: "button",
          class: `btn ${PRIMARY.has(to) ? "primary" : to === "cancelled" ? "danger" : ""}`,
          "data-testid": "status-button",
          "data-status": to,
          disabled: busy,
          onclick: guard(async () => {
            if (to === "cancelled" && !confirmCancel) {
              confirmCancel = true;
              render(detail);
              later(() => { confirmCancel = false; if (detail) render(detail); }, 5000);
              return;
            }
            confirmCancel = false;
            busy = true;
            showError(err, null);
            render(detail);
            try {
              await write("POST", `${base}/status`, { status: to });
            } catch (e) {
              const missing = e.missing;
              showError(err, missing && missing.length ? `${e.message} Still to do: ${missing.join(", ")}.` : e.message);
            } finally {
              busy = false;
              if (detail) render(detail);
            }
          }, err),
        }, label);
      }));
    }
    return { node, update: render };
  }

  function signedSection() {
    const node = el("section", { class: "card signed-card", hidden: true, "aria-label": "Sign-off" });
    let key = "";
    return {
      node,
      update(d) {
        const s = d.signoff;
        const up = s ? uploadState(s.signature_sha256, d.uploads, null) : null;
        const k = JSON.stringify([s, up, d.locked]);
        if (k === key) return;
        key = k;
        node.hidden = !s;
        if (!s) return fill(node);
        fill(node,
          el("div", { "data-testid": "signed", class: "signed" },
            el("p", { class: "signed-title" }, "✓ Signed by ", el("strong", {}, s.signer_name)),
            el("p", { class: "muted" }, s.signed_at ? `on ${fullFmt.format(new Date(s.signed_at))}` : "", s.by ? ` · recorded by ${s.by}` : "")),
          s.signature_sha256 ? el("img", { class: "signature-img", src: `/api/blobs/${encodeURIComponent(s.signature_sha256)}`, alt: `Signature of ${s.signer_name}`, width: 300, height: 100 }) : null,
          el("p", { class: `upload ${up[1]}` }, `Signature ${up[0]}`),
          el("p", { class: "lock-note" }, "Locked: the checklist and parts can no longer change."));
      },
    };
  }

  function timeSection() {
    const err = el("p", { class: "error", role: "alert", hidden: true });
    const elapsed = el("span", { class: "elapsed", "aria-live": "off" }, "");
    const total = el("span", { class: "muted" }, "");
    const btn = el("button", { type: "button", class: "btn", "data-testid": "timer-toggle", "data-running": "false" }, "Start timer");
    const node = el("section", { class: "card time", "aria-label": "Time" },
      el("h2", {}, "Time"), el("div", { class: "time-row" }, btn, el("div", { class: "time-text" }, elapsed, total)), err);
    let running = null; // start time (ms) of my open entry
    let tick = 0;
    let busy = false;
    function paint() {
      elapsed.textContent = running != null ? `Running ${clock(Date.now() - running)}` : "Not running";
    }
    btn.addEventListener("click", guard(async () => {
      if (busy) return;
      busy = true;
      btn.disabled = true;
      showError(err, null);
      try {
        await write("POST", `${base}/time`, { action: btn.dataset.running === "true" ? "stop" : "start" });
      } catch (e) {
        showError(err, e.message);
      } finally {
        busy = false;
        btn.disabled = !!(detail && (detail.status === "completed" || detail.status === "cancelled")) && btn.dataset.running !== "true";
      }
    }, err));
    return {
      node,
      update(d) {
        const me = app.state && app.state.user;
        const entries = Array.isArray(d.time_entries) ? d.time_entries : [];
        const open = entries.filter((t) => !entryEnd(t) && (!me || t.by === me));
        const isRunning = d.running_timer != null ? !!d.running_timer : open.length > 0;
        const openEntry = open[open.length - 1];
        running = isRunning && openEntry ? Date.parse(entryStart(openEntry)) : isRunning ? Date.now() : null;
        btn.dataset.running = String(isRunning);
        fill(btn, el("span", { "aria-hidden": "true" }, isRunning ? "■ " : "▶ "), isRunning ? "Stop timer" : "Start timer");
        btn.classList.toggle("danger", isRunning);
        const closed = d.status === "completed" || d.status === "cancelled";
        if (!busy) btn.disabled = closed && !isRunning;
        let sum = 0;
        for (const t of entries) {
          if (me && t.by !== me) continue;
          const s = Date.parse(entryStart(t));
          const e = entryEnd(t) ? Date.parse(entryEnd(t)) : Date.now();
          if (!Number.isNaN(s) && !Number.isNaN(e)) sum += Math.max(0, e - s);
        }
        total.textContent = entries.length ? `Logged on this job: ${duration(sum)}` : "";
        paint();
        if (running != null && !tick) {
          tick = setInterval(paint, 1000);
        } else if (running == null && tick) {
          clearInterval(tick);
          tick = 0;
        }
      },
      destroy() {
        if (tick) clearInterval(tick);
      },
    };
  }

  function notesSection() {
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

  // -- checklist -------------------------------------------------------------------------------

  function checklistSection() {
    const title = el("h2", {}, "Checklist");
    const progress = el("p", { class: "muted progress-line" });
    const bar = el("div", { class: "progress big", "aria-hidden": "true" }, el("span"));
    const list = el("div", { class: "items" });
    const node = el("section", { class: "card", "aria-label": "Checklist" }, title, progress, bar, list);
    const items = new Map();
    let idsKey = "";
    // Text typed in an item but not yet sent goes out as the page goes away.
    const flush = () => {
      for (const c of items.values()) c.flush();
    };
    app.flushers.add(flush);
    return {
      node,
      update(d) {
        const cl = d.checklist || { items: [] };
        const arr = Array.isArray(cl.items) ? cl.items : [];
        title.textContent = cl.title ? `Checklist · ${cl.title}` : "Checklist";
        const done = arr.filter((i) => i.value != null).length;
        const reqLeft = arr.filter((i) => i.required && i.value == null).length;
        progress.textContent = `${done} of ${arr.length} done` + (reqLeft ? ` · ${reqLeft} required left` : arr.length ? " · all required done" : "");
        bar.firstChild.style.width = arr.length ? `${Math.round((100 * done) / arr.length)}%` : "0";
        const k = arr.map((i) => `${i.id}:${i.kind}`).join("|");
        if (k !== idsKey) {
          idsKey = k;
          items.clear();
          fill(list, ...arr.map((i) => {
            const c = checklistItem(i);
            items.set(i.id, c);
            return c.node;
          }));
        }
        const lock = locked(d);
        for (const i of arr) items.get(i.id).update(i, d, lock);
      },
      destroy() {
        app.flushers.delete(flush);
        flush();
      },
    };
  }

  function checklistItem(item) {
    const labelId = `item-${item.id}-label`;
    const errId = `item-${item.id}-error`;
    const saved = el("span", { class: "saved-mark", "aria-hidden": "true" }, "✓ saved");
    const err = el("p", { class: "item-error error", "data-testid": "item-error", id: errId, role: "alert", hidden: true });
    const node = el("div", {
      class: `item kind-${item.kind}`,
      "data-testid": "checklist-item",
      "data-item-id": item.id,
      "data-kind": item.kind,
      "data-saved": "false",
      "data-value": "",
    });
    const head = el("div", { class: "item-head" },
      el("span", { class: "item-label", id: labelId }, item.label),
      item.required ? el("span", { class: "req", title: "Required" }, "Required") : null,
      saved);
    node.append(head);

    let pending = 0;
    let seq = 0;
    let hasError = false;
    let shown = null; // the value last shown from the API or sent
    let lastLock = false;

    const setSaved = (v) => {
      node.dataset.saved = v ? "true" : "false";
    };

    /** Send a value as typed; the item shows ✓ once the API committed it. */
    function send(raw, { keepalive = false } = {}) {
      const my = ++seq;
      const before = shown;
      pending += 1;
      setSaved(false); // synchronously, on the tap itself
      node.dataset.value = String(raw);
      shown = String(raw);
      const path = `${base}/checklist/${encodeURIComponent(item.id)}`;
      const req = keepalive ? api("PUT", path, { value: String(raw) }, { keepalive: true }) : write("PUT", path, { value: String(raw) });
      return req.then(() => {
        if (my !== seq) return;
        hasError = false;
        showError(err, null);
        setSaved(true);
      }).catch((e) => {
        if (my !== seq) return;
        hasError = true;
        showError(err, e.message);
        setSaved(false);
        if (item.kind !== "number" && item.kind !== "text") {
          // A refused tap: show the answer the API still holds.
          shown = before;
          node.dataset.value = before ?? "";
          control.update(before, lastLock, detail || {});
        }
      }).finally(() => {
        pending -= 1;
      });
    }

    let control; // {update(value, locked), flush?}
    switch (item.kind) {
      case "pass_fail": control = pressButtons([["pass", "Pass", "✓ "], ["fail", "Fail", "✗ "], ["na", "N/A", ""]], "pf"); break;
      case "choice": {
        const choices = Array.isArray(item.choices) ? item.choices : [];
        control = choices.length <= 4 && choices.every((c) => c.length <= 22)
          ? pressButtons(choices.map((c) => [c, c]), "choice")
          : choiceSelect(choices);
        break;
      }
      case "number": control = numberInput(); break;
      case "photo_required": control = photoControl(); break;
      default: control = textInput(); break;
    }

    function pressButtons(options, cls) {
      const group = el("div", { class: `press-group ${cls}`, role: "group", "aria-labelledby": labelId });
      const btns = options.map(([value, label, icon]) => {
        const b = el("button", { type: "button", class: `btn press ${cls}-${value === "pass" || value === "fail" || value === "na" ? value : "opt"}`, "data-value": value, "aria-pressed": "false" },
          icon ? el("span", { "aria-hidden": "true" }, icon) : null, label);
        b.addEventListener("click", () => {
          if (b.disabled) return;
          for (const x of btns) x.setAttribute("aria-pressed", String(x === b));
          send(value);
        });
        return b;
      });
      append(group, btns);
      node.append(group);
      return {
        update(value, lock) {
          for (const b of btns) {
            b.setAttribute("aria-pressed", String(b.dataset.value === value));
            b.disabled = lock;
          }
        },
      };
    }

    function choiceSelect(choices) {
      const sel = el("select", { "aria-labelledby": labelId, "aria-describedby": errId },
        el("option", { value: "", disabled: true, selected: true }, "Choose…"),
        choices.map((c) => el("option", { value: c }, c)));
      sel.addEventListener("change", () => {
        if (sel.value) send(sel.value);
      });
      node.append(sel);
      return {
        update(value, lock) {
          if (document.activeElement !== sel) sel.value = value ?? "";
          sel.disabled = lock;
        },
      };
    }

    function numberInput() {
      const input = el("input", { type: "number", inputmode: "decimal", step: "any", "aria-labelledby": labelId, "aria-describedby": `${errId} ${labelId}-hint`, autocomplete: "off" });
      const unit = item.unit ? el("span", { class: "unit" }, item.unit) : null;
      const u = item.unit ? ` ${item.unit}` : "";
      const hint = item.min != null && item.max != null ? `Allowed ${num(item.min)} – ${num(item.max)}${u}`
        : item.min != null ? `At least ${num(item.min)}${u}`
        : item.max != null ? `At most ${num(item.max)}${u}`
        : "";
      node.append(el("div", { class: "num-row" }, input, unit), hint ? el("p", { class: "hint", id: `${labelId}-hint` }, hint) : null);
      let synced = ""; // what the field last showed from the API, or last sent
      const commit = (opts) => {
        const raw = input.value.trim();
        if (raw === "") {
          const bad = input.validity && input.validity.badInput;
          if (bad || (shown != null && shown !== "")) {
            hasError = true;
            showError(err, bad ? "Enter a number." : "An answer cannot be removed, only replaced: enter the new value.");
            setSaved(false);
          }
          return;
        }
        if (raw === shown && !hasError) return;
        synced = input.value;
        send(raw, opts);
      };
      input.addEventListener("change", () => commit());
      input.addEventListener("input", () => setSaved(false));
      return {
        update(value, lock) {
          const v = value == null ? "" : String(value);
          const typing = document.activeElement === input || input.value !== synced;
          if (!typing) {
            input.value = v;
            synced = v;
          }
          input.disabled = lock;
        },
        flush() {
          if (input.value !== synced && input.value.trim() !== "") commit({ keepalive: true });
        },
      };
    }

    function textInput() {
      const ta = el("textarea", { rows: 2, "aria-labelledby": labelId, "aria-describedby": errId, autocomplete: "off" });
      let synced = ""; // what the field last showed from the API, or last sent
      ta.addEventListener("change", () => {
        if (ta.value.trim() === "" && shown != null && shown !== "") {
          // An empty answer would still count as answered: say so instead of sending it.
          hasError = true;
          showError(err, "An answer cannot be removed, only replaced: type the new answer.");
          setSaved(false);
          return;
        }
        synced = ta.value;
        send(ta.value);
      });
      ta.addEventListener("input", () => setSaved(false));
      node.append(ta);
      return {
        update(value, lock) {
          const v = value == null ? "" : String(value);
          const typing = document.activeElement === ta || ta.value !== synced;
          if (!typing) {
            ta.value = v;
            synced = v;
          }
          ta.disabled = lock;
        },
        flush() {
          if (ta.value !== synced && ta.value.trim() !== "") {
            synced = ta.value;
            send(ta.value, { keepalive: true });
          }
        },
      };
    }

    function photoControl() {
      const thumbBox = el("div", { class: "item-photo" });
      const input = el("input", { type: "file", accept: "image/*", capture: "environment", "data-testid": "photo-input", "aria-describedby": errId });
      const text = el("span", { class: "file-text" }, "Take photo");
      const label = el("label", { class: "btn file-btn" }, cameraIcon(), text, input);
      const status = el("span", { class: "muted upload-note" });
      node.append(thumbBox, el("div", { class: "file-row" }, label, status));
      input.addEventListener("change", guard(async () => {
        const file = input.files && input.files[0];
        if (!file) return;
        const my = ++seq;
        pending += 1;
        setSaved(false);
        hasError = false;
        showError(err, null);
        status.textContent = "Saving photo…";
        try {
          await write("POST", `${base}/photos?item=${encodeURIComponent(item.id)}`, file, { raw: true, contentType: file.type || "image/jpeg" });
          if (my === seq) setSaved(true);
          status.textContent = "";
        } catch (e) {
          if (my === seq) {
            hasError = true;
            showError(err, e.message);
            setSaved(false);
          }
          status.textContent = "";
        } finally {
          pending -= 1;
          input.value = "";
        }
      }, err));
      let photoKey = "";
      return {
        update(value, lock, d) {
          const photos = Array.isArray(d.photos) ? d.photos : [];
          const p = photos.find((x) => x.id === value) || photos.filter((x) => photoItem(x) === item.id).pop();
          const k = p ? p.id + p.sha256 : "";
          if (k !== photoKey) {
            photoKey = k;
            fill(thumbBox, p ? thumb(p, `Photo for “${item.label}”`) : el("span"));
          }
          text.textContent = value != null ? "Retake photo" : "Take photo";
          input.setAttribute("aria-label", `${value != null ? "Retake" : "Take"} photo: ${item.label}`);
          input.disabled = lock;
          label.classList.toggle("disabled", lock);
          label.hidden = lock && value != null;
        },
      };
    }

    node.append(err);

    return {
      node,
      update(i, d, lock) {
        lastLock = lock;
        if (pending > 0 || hasError) {
          // A write on its way, or refused: keep showing what the technician entered.
          control.update(node.dataset.value || null, lock, d);
          return;
        }
        const v = i.value == null ? null : String(i.value);
        shown = v;
        node.dataset.value = v ?? "";
        control.update(v, lock, d);
        if (!hasError) setSaved(v != null);
      },
      flush() {
        if (control.flush) control.flush();
      },
    };
  }

  // -- parts -----------------------------------------------------------------------------------

  function partsSection() {
    const searchId = "part-search";
    const search = el("input", { id: searchId, type: "search", "data-testid": "part-search", autocomplete: "off", enterkeyhint: "search", placeholder: "Name or SKU" });
    const searchErr = el("p", { class: "error", role: "alert", hidden: true });
    const results = el("ul", { class: "results", "aria-label": "Catalog results" });
    const searchBox = el("div", { class: "part-search" }, el("label", { for: searchId }, "Add a part"), search, searchErr, results);
    const lines = el("ul", { class: "lines", "aria-label": "Parts used" });
    const empty = el("p", { class: "muted empty-parts" }, "No parts used yet.");
    const node = el("section", { class: "card", "aria-label": "Parts" }, el("h2", {}, "Parts"), lines, empty, searchBox);
    const comps = new Map();
    let searchTimer = 0;
    let searchSeq = 0;
    let lock = false;

    search.addEventListener("input", () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(runSearch, 250);
    });
    search.addEventListener("search", () => {
      clearTimeout(searchTimer);
      runSearch();
    });

    async function runSearch() {
      const q = search.value.trim();
      const my = ++searchSeq;
      if (!q) {
        fill(results);
        showError(searchErr, null);
        return;
      }
      let found;
      try {
        found = await api("GET", `/api/catalog?q=${encodeURIComponent(q)}`);
      } catch (e) {
        if (my === searchSeq) showError(searchErr, `Search failed: ${e.message}`);
        return;
      }
      if (my !== searchSeq || destroyed) return;
      showError(searchErr, null);
      found = Array.isArray(found) ? found : [];
      fill(results, ...(found.length ? found.map(resultRow) : [el("li", { class: "muted" }, `Nothing in the catalog matches “${q}”.`)]));
    }

    function resultRow(c) {
      const qid = `q-${c.sku}-${Math.random().toString(36).slice(2, 8)}`;
      const qty = el("input", { id: qid, type: "number", inputmode: "decimal", min: 0, step: "any", value: "1", "data-testid": "catalog-qty", "aria-label": `Quantity of ${c.name}` });
      const err = el("p", { class: "error", role: "alert", hidden: true });
      const added = el("span", { class: "ok added", "aria-live": "polite" });
      const add = el("button", { type: "button", class: "btn primary", "data-testid": "catalog-add", "aria-label": `Add ${c.name}` }, "Add");
      add.addEventListener("click", guard(async () => {
        const n = Number(qty.value);
        if (!qty.value.trim() || !Number.isFinite(n) || n <= 0) {
          showError(err, "Enter a quantity above 0.");
          return;
        }
        add.disabled = true;
        showError(err, null);
        added.textContent = "";
        try {
          const body = { sku: c.sku, description: c.name, qty: n };
          if (c.unit) body.unit = c.unit;
          await write("POST", `${base}/parts`, body);
          added.textContent = `✓ Added ${num(n)}`;
          qty.value = "1";
        } catch (e) {
          showError(err, e.message);
        } finally {
          add.disabled = lock;
        }
      }, err));
      const stock = c.on_hand == null ? "van stock unknown" : `${num(c.on_hand)}${c.unit ? ` ${c.unit}` : ""} in van`;
      return el("li", { class: "result", "data-testid": "catalog-result", "data-sku": c.sku },
        el("div", { class: "result-text" },
          el("strong", {}, c.name),
          el("span", { class: "muted" }, `${c.sku} · ${money(c.unit_price_cents)}${c.unit ? ` / ${c.unit}` : ""}`),
          el("span", { class: c.on_hand > 0 ? "stock in" : "stock out" }, stock)),
        el("div", { class: "result-add" }, qty, add),
        added, err);
    }

    function lineComp(l) {
      const name = l.description || l.sku;
      const qty = el("input", { type: "number", inputmode: "decimal", min: 0, step: "any", "data-testid": "part-qty", "aria-label": `Quantity of ${name}` });
      const minus = el("button", { type: "button", class: "btn step", "aria-label": `One less ${name}` }, "−");
      const plus = el("button", { type: "button", class: "btn step", "aria-label": `One more ${name}` }, "+");
      const remove = el("button", { type: "button", class: "btn danger-outline", "data-testid": "part-remove", "aria-label": `Remove ${name}` }, "Remove");
      const unit = el("span", { class: "unit" });
      const err = el("p", { class: "error", role: "alert", hidden: true });
      const desc = el("strong", {});
      const sku = el("span", { class: "muted" });
      const node = el("li", { class: "line", "data-testid": "part-line", "data-line-id": l.id, "data-sku": l.sku, "data-qty": "" },
        el("div", { class: "line-text" }, desc, sku),
        el("div", { class: "line-controls" }, minus, qty, plus, unit, remove),
        err);
      let acked = null;
      let seq = 0;
      let pending = 0;

      function sendQty(n) {
        if (!Number.isFinite(n) || n < 0) {
          showError(err, "Enter a quantity of 0 or more.");
          return;
        }
        qty.value = String(n);
        const my = ++seq;
        pending += 1;
        node.dataset.saved = "false";
        showError(err, null);
        write("PUT", `${base}/parts/${encodeURIComponent(l.id)}`, { qty: n })
          .then(() => {
            if (my !== seq) return;
            acked = n;
            node.dataset.qty = String(n);
            node.dataset.saved = "true";
          })
          .catch((e) => {
            if (my === seq) showError(err, e.message);
          })
          .finally(() => {
            pending -= 1;
          });
      }
      const current = () => {
        const n = Number(qty.value);
        return Number.isFinite(n) && qty.value.trim() !== "" ? n : acked ?? 0;
      };
      minus.addEventListener("click", () => sendQty(Math.max(0, current() - 1)));
      plus.addEventListener("click", () => sendQty(current() + 1));
      qty.addEventListener("change", () => {
        if (qty.value.trim() === "") return;
        sendQty(Number(qty.value));
      });
      remove.addEventListener("click", guard(async () => {
        remove.disabled = true;
        showError(err, null);
        try {
          await write("DELETE", `${base}/parts/${encodeURIComponent(l.id)}`);
          node.remove();
          comps.delete(l.id);
          empty.hidden = comps.size > 0;
        } catch (e) {
          remove.disabled = false;
          showError(err, e.message);
        }
      }, err));
      return {
        node,
        update(line, lk) {
          const nm = line.description || line.sku;
          desc.textContent = nm;
          sku.textContent = line.sku + (line.source ? ` · from ${line.source}` : "");
          unit.textContent = line.unit || "";
          if (pending === 0) {
            acked = line.qty;
            node.dataset.qty = String(line.qty);
            if (document.activeElement !== qty) qty.value = String(line.qty);
          }
          for (const c of [qty, minus, plus, remove]) c.disabled = lk;
          remove.hidden = lk;
        },
      };
    }

    return {
      node,
      update(d) {
        lock = locked(d);
        searchBox.hidden = lock;
        const arr = (Array.isArray(d.parts) ? d.parts : []).slice().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        const seen = new Set();
        for (const l of arr) {
          seen.add(l.id);
          let c = comps.get(l.id);
          if (!c) {
            c = lineComp(l);
            comps.set(l.id, c);
            lines.append(c.node); // new lines at the end; existing ones stay where they are
          }
          c.update(l, lock);
        }
        for (const [lid, c] of comps) {
          if (!seen.has(lid)) {
            c.node.remove();
            comps.delete(lid);
          }
        }
        empty.hidden = comps.size > 0;
      },
      destroy() {
        clearTimeout(searchTimer);
      },
    };
  }

  // -- photos ----------------------------------------------------------------------------------

  function thumb(p, alt) {
    const img = el("img", { class: "thumb", src: `/api/blobs/${encodeURIComponent(p.sha256)}`, alt: alt || p.caption || "Photo", loading: "lazy", decoding: "async", width: 96, height: 96 });
    img.addEventListener("error", () => {
      img.replaceWith(el("span", { class: "thumb placeholder", role: "img", "aria-label": "Photo not kept on this device" }, "no copy"));
    });
    return img;
  }

  function photosSection() {
    const list = el("ul", { class: "photos", "aria-label": "Photos" });
    const empty = el("p", { class: "muted" }, "No photos yet.");
    const caption = el("input", { id: "photo-caption", type: "text", autocomplete: "off", placeholder: "What it shows" });
    const input = el("input", { type: "file", accept: "image/*", capture: "environment", "data-testid": "photo-input-general", "aria-label": "Add a photo to the job" });
    const label = el("label", { class: "btn file-btn" }, cameraIcon(), "Add photo", input);
    const err = el("p", { class: "error", role: "alert", hidden: true });
    const status = el("span", { class: "muted upload-note", "aria-live": "polite" });
    const add = el("div", { class: "add-photo" },
      el("label", { for: "photo-caption" }, "Caption (optional)"), caption,
      el("div", { class: "file-row" }, label, status), err);
    const node = el("section", { class: "card", "aria-label": "Photos" }, el("h2", {}, "Photos"), list, empty, add);
    const comps = new Map();

    input.addEventListener("change", guard(async () => {
      const file = input.files && input.files[0];
      if (!file) return;
      showError(err, null);
      status.textContent = "Saving photo…";
      input.disabled = true;
      try {
        const cap = caption.value.trim();
        await write("POST", `${base}/photos${cap ? `?caption=${encodeURIComponent(cap)}` : ""}`, file, { raw: true, contentType: file.type || "image/jpeg" });
        caption.value = "";
        status.textContent = "✓ Photo saved";
      } catch (e) {
        status.textContent = "";
        showError(err, e.message);
      } finally {
        input.disabled = false;
        input.value = "";
      }
    }, err));

    function photoComp(p) {
      const up = el("span", { class: "upload", "data-testid": "upload-state" });
      const review = el("span", { class: "review", "data-testid": "review-state", hidden: true });
      const cap = el("span", { class: "caption" });
      const what = el("span", { class: "muted" });
      const node = el("li", { class: "photo", "data-testid": "photo", "data-photo-id": p.id },
        thumb(p), el("div", { class: "photo-text" }, cap, what, up, review));
      return {
        node,
        update(ph, d) {
          cap.textContent = ph.caption || (photoItem(ph) ? "" : "Photo");
          const itemId = photoItem(ph);
          const it = itemId && d.checklist && Array.isArray(d.checklist.items) ? d.checklist.items.find((i) => i.id === itemId) : null;
          what.textContent = [itemId ? `For: ${it ? it.label : itemId}` : "", ph.taken_at ? when(ph.taken_at) : ""].filter(Boolean).join(" · ");
          const [t, cls] = uploadState(ph.sha256, d.uploads, ph.upload);
          up.textContent = t;
          up.className = `upload ${cls}`;
          up.dataset.state = cls;
          const r = ph.review;
          if (r && r.state) {
            review.hidden = false;
            review.dataset.state = r.state;
            review.className = `review ${r.state}`;
            const note = r.note || r.comment || "";
            review.textContent = r.state === "approved"
              ? `Approved${r.by ? ` by ${r.by}` : ""}${note ? `: ${note}` : ""}`
              : `Rejected${r.by ? ` by ${r.by}` : ""}${note ? `: ${note}` : ""}`;
          } else {
            review.hidden = true;
            review.textContent = "";
          }
        },
      };
    }

    return {
      node,
      update(d) {
        const arr = Array.isArray(d.photos) ? d.photos : [];
        const seen = new Set();
        for (const p of arr) {
          seen.add(p.id);
          let c = comps.get(p.id);
          if (!c) {
            c = photoComp(p);
            comps.set(p.id, c);
            list.append(c.node);
          }
          c.update(p, d);
        }
        for (const [pid, c] of comps) {
          if (!seen.has(pid)) {
            c.node.remove();
            comps.delete(pid);
          }
        }
        empty.hidden = arr.length > 0;
        add.hidden = locked(d);
      },
    };
  }

  function signoffSection() {
    const link = el("a", { class: "btn primary wide", "data-testid": "signoff-button", href: `#/job/${encodeURIComponent(id)}/signoff` }, "Customer sign-off");
    const note = el("p", { class: "muted" });
    const node = el("section", { class: "card signoff-cta", "aria-label": "Customer sign-off", hidden: true }, link, note);
    return {
      node,
      update(d) {
        const show = !d.signoff && d.status === "in_progress";
        node.hidden = !show;
        const cl = d.checklist && Array.isArray(d.checklist.items) ? d.checklist.items : [];
        const left = cl.filter((i) => i.required && i.value == null).length;
        note.textContent = left ? `${left} required checklist item${left === 1 ? "" : "s"} still to do.` : "Checklist complete: ready for the customer.";
      },
    };
  }

  load();
  return {
    refresh: load,
    destroy() {
      destroyed = true;
      for (const t of timers) clearTimeout(t);
      if (built) for (const sec of built.sections) if (sec.destroy) sec.destroy();
    },
  };
};

// ---------------------------------------------------------------------------------------------
// Screen: the customer's sign-off

screens.signoff = (route) => {
  const id = route.id;
  const base = jobPath(id);
  let destroyed = false;
  const back = el("a", { class: "back", href: `#/job/${encodeURIComponent(id)}` }, "‹ Back to the job");
  const err = el("p", { class: "error", role: "alert", hidden: true });
  const summaryBox = el("div", { class: "summary" }, el("p", { class: "loading" }, "Loading the summary…"));
  const missingBox = el("section", { class: "card missing", hidden: true, "aria-label": "Still to do" });
  const formBox = el("div", { class: "signoff-form" });
  main.append(back, el("h1", {}, "Customer sign-off"), err, missingBox, summaryBox, formBox);

  let form = null; // built once; never rebuilt while the customer signs
  let summaryKey = "";

  function renderSummary(s) {
    const job = normalizeDetail(s.job || {});
    const key = JSON.stringify([s.checklist, s.parts, s.show_prices, s.total_cents, job.title, job.customer, job.site]);
    if (key === summaryKey) return;
    summaryKey = key;
    const c = job.customer || {};
    const site = job.site || {};
    const checklist = Array.isArray(s.checklist) ? s.checklist : [];
    const parts = Array.isArray(s.parts) ? s.parts : [];
    const prices = !!s.show_prices;
    fill(summaryBox,
      el("section", { class: "card" },
        el("h2", {}, job.title || "Job"),
        el("p", {}, c.name || "", site.name ? ` · ${site.name}` : "", site.address ? ` · ${site.address}` : ""),
        el("p", { class: "muted" }, fullFmt.format(new Date()))),
      el("section", { class: "card" },
        el("h2", {}, "Work checked"),
        checklist.length
          ? el("table", { class: "sum-table" },
            el("tbody", {}, checklist.map((i) =>
              el("tr", {}, el("th", { scope: "row" }, i.label), el("td", { class: `ans ans-${i.value}` }, i.kind === "photo_required" && i.value != null ? "Photo taken" : answerText(i.value, i.unit))))))
          : el("p", { class: "muted" }, "No checklist.")),
      el("section", { class: "card" },
        el("h2", {}, "Parts used"),
        parts.length
          ? el("table", { class: "sum-table parts-table" },
            el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Part"), el("th", { scope: "col", class: "num" }, "Qty"),
              prices ? [el("th", { scope: "col", class: "num" }, "Price"), el("th", { scope: "col", class: "num" }, "Total")] : null)),
            el("tbody", {}, parts.map((p) =>
              el("tr", {},
                el("td", {}, p.description || p.sku, el("span", { class: "muted sku" }, p.sku)),
                el("td", { class: "num" }, num(p.qty), p.unit ? ` ${p.unit}` : ""),
                prices ? [el("td", { class: "num" }, money(p.unit_price_cents)), el("td", { class: "num" }, money(p.total_cents))] : null))),
            prices ? el("tfoot", {}, el("tr", {}, el("th", { scope: "row", colspan: 3 }, "Total"), el("td", { class: "num strong", "data-testid": "summary-total" }, money(s.total_cents)))) : null)
          : el("p", { class: "muted" }, "No parts used.")));
  }

  function renderMissing(missing) {
    missingBox.hidden = missing.length === 0;
    fill(missingBox,
      el("h2", {}, "Finish these before the customer signs"),
      el("ul", {}, missing.map((m) => el("li", { "data-testid": "missing-item" }, m))),
      el("a", { class: "btn", href: `#/job/${encodeURIComponent(id)}` }, "Back to the checklist"));
    if (form) form.setBlocked(missing.length > 0);
  }

  function buildForm(blocked) {
    const nameErr = el("p", { class: "error", role: "alert", hidden: true });
    const padErr = el("p", { class: "error", role: "alert", hidden: true });
    const submitErr = el("p", { class: "error", role: "alert", hidden: true });
    const name = el("input", { id: "signer-name", "data-testid": "signer-name", autocomplete: "name", autocapitalize: "words", enterkeyhint: "done" });
    const canvas = el("canvas", { class: "pad", "data-testid": "signature-pad", role: "img", "aria-label": "Signature pad: the customer signs here with a finger" });
    const clear = el("button", { type: "button", class: "btn", "data-testid": "signature-clear" }, "Clear");
    const submit = el("button", { type: "button", class: "btn primary wide", "data-testid": "signoff-submit" }, "Sign and finish");
    const pad = signaturePad(canvas, () => showError(padErr, null));
    clear.addEventListener("click", () => pad.clear());
    // Hidden while required items are missing: then only the disabled submit shows.
    const fields = el("div", { class: "fields" },
      el("label", { for: "signer-name" }, "Customer’s name"), name, nameErr,
      el("div", { class: "label-row pad-head" }, el("span", { class: "h2", id: "pad-label" }, "Signature"), clear),
      el("div", { class: "pad-wrap" }, canvas, el("span", { class: "pad-line", "aria-hidden": "true" }, "✕")),
      padErr,
      el("p", { class: "muted" }, "By signing, the customer confirms the work and the parts listed above."));
    const box = el("section", { class: "card", "aria-label": "Signature" }, fields, submitErr, submit);
    fields.hidden = blocked;
    if (blocked) submit.disabled = true;
    fill(formBox, box);
    submit.addEventListener("click", guard(async () => {
      showError(nameErr, null);
      showError(padErr, null);
      showError(submitErr, null);
      const signer = name.value.trim();
      if (!signer) {
        showError(nameErr, "Enter the customer’s name.");
        name.focus();
        return;
      }
      if (pad.empty()) {
        showError(padErr, "The customer signs in the box above.");
        return;
      }
      submit.disabled = true;
      submit.textContent = "Saving…";
      try {
        const png = await pad.pngBase64();
        await api("POST", `${base}/signoff`, { name: signer, signature_png: png });
        location.hash = `#/job/${encodeURIComponent(id)}`;
      } catch (e) {
        if (e.missing && e.missing.length) renderMissing(e.missing);
        showError(submitErr, e.message);
      } finally {
        submit.textContent = "Sign and finish";
        submit.disabled = blockedNow;
      }
    }, submitErr));
    let blockedNow = blocked;
    return {
      setBlocked(b) {
        blockedNow = b;
        submit.disabled = b;
        fields.hidden = b;
        if (!b) pad.resize();
      },
      destroy: pad.destroy,
    };
  }

  const load = serial(async () => {
    let s;
    try {
      s = await api("GET", `${base}/summary`);
    } catch (e) {
      showError(err, e.status === 404 ? "This job is no longer on this device." : `Could not load the summary: ${e.message}`);
      return;
    }
    if (destroyed) return;
    showError(err, null);
    const job = normalizeDetail(s.job || {});
    renderSummary(s);
    if (job.signoff) {
      missingBox.hidden = true;
      if (form) form.destroy();
      form = null;
      fill(formBox, el("section", { class: "card signed-card" },
        el("div", { "data-testid": "signed", class: "signed" }, el("p", { class: "signed-title" }, "✓ Signed by ", el("strong", {}, job.signoff.signer_name))),
        el("a", { class: "btn", href: `#/job/${encodeURIComponent(id)}` }, "Back to the job")));
      return;
    }
    const missing = Array.isArray(s.missing) ? s.missing : [];
    if (!form) form = buildForm(missing.length > 0);
    renderMissing(missing);
  });
  load();
  return {
    refresh: load,
    destroy() {
      destroyed = true;
      if (form) form.destroy();
    },
  };
};

/** A canvas the customer signs on with a finger, a pen or a mouse (Pointer Events). */
function signaturePad(canvas, onStroke) {
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

// ---------------------------------------------------------------------------------------------
// Start

window.addEventListener("unhandledrejection", (e) => {
  showPageError(e.reason instanceof Error ? e.reason : String(e.reason));
});

async function start() {
  renderBar();
  await loadState();
  connectEvents();
  show();
}

start();
