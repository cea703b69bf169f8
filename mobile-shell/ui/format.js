// Words and numbers: status and priority labels, the status buttons' words and order, dates and
// times, durations, money, numbers, a checklist answer as the customer reads it, and the upload
// state of a photo.

export const STATUS_LABEL = {
  pending: "Pending",
  assigned: "Assigned",
  en_route: "On the way",
  in_progress: "In progress",
  on_hold: "On hold",
  completed: "Completed",
  cancelled: "Cancelled",
};

export function actionLabel(from, to) {
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
export const ACTION_ORDER = ["en_route", "in_progress", "completed", "on_hold", "assigned", "pending", "cancelled"];
export const PRIMARY = new Set(["en_route", "in_progress", "completed"]);

export const PRIORITY_LABEL = { low: "Low", medium: "Medium", high: "High", urgent: "Urgent" };

/** An Intl formatter made on first use: each costs milliseconds to make (locale data), and the
 * job list at a cold start needs two of them. */
function lazyFormat(make) {
  let made = null;
  return { format: (x) => (made ??= make()).format(x) };
}

export const timeFmt = lazyFormat(() => new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" }));
export const fullFmt = lazyFormat(() => new Intl.DateTimeFormat(undefined, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" }));

function startOfDay(d) {
  const x = new Date(d);
  x.setHours(0, 0, 0, 0);
  return x;
}

const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const two = (n) => String(n).padStart(2, "0");

/** "Today 14:00", "Tomorrow 09:30", "Mon 3 Dec 10:00", in the device's time zone. Written out
 * rather than through Intl: the job list shows hundreds, and the first Intl formatter alone
 * costs ~40 ms of a cold start (its locale data); the page's words are English anyway. */
export function when(iso) {
  if (!iso) return "Not scheduled";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const days = Math.round((startOfDay(d) - startOfDay(new Date())) / 86400000);
  const t = `${two(d.getHours())}:${two(d.getMinutes())}`;
  if (days === 0) return `Today ${t}`;
  if (days === 1) return `Tomorrow ${t}`;
  if (days === -1) return `Yesterday ${t}`;
  return `${WEEKDAYS[d.getDay()]} ${d.getDate()} ${MONTHS[d.getMonth()]} ${t}`;
}

export function relTime(iso) {
  if (!iso) return "never";
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "never";
  const s = (Date.now() - t) / 1000;
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.max(1, Math.round(s / 60))}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`;
}

export function duration(ms) {
  const m = Math.round(ms / 60000);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

const moneyFmt = lazyFormat(() => new Intl.NumberFormat(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 }));
export const money = (cents) => (cents == null ? "" : moneyFmt.format(cents / 100));

const numFmt = lazyFormat(() => new Intl.NumberFormat(undefined, { maximumFractionDigits: 3 }));
export const num = (n) => (n == null || n === "" ? "" : typeof n === "number" ? numFmt.format(n) : String(n));

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An answer as the customer reads it. */
export function answerText(value, unit) {
  if (value == null || value === "") return "—";
  if (value === "pass") return "Pass";
  if (value === "fail") return "Fail";
  if (value === "na") return "N/A";
  if (typeof value === "string" && UUID_RE.test(value)) return "Photo taken";
  return unit ? `${num(value)} ${unit}` : num(value);
}

/** A time entry's start and end, whichever names the answer uses. */
export const entryStart = (t) => t.started_at ?? t.start ?? null;
export const entryEnd = (t) => t.stopped_at ?? t.end ?? null;

/** The item a photo answers, whichever name the answer uses. */
export const photoItem = (p) => p.checklist_item ?? p.item ?? null;

/** [text, class] of a photo's upload state. */
export function uploadState(sha, uploads, fallback) {
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
