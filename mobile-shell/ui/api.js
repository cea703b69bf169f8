// The local API (README.md beside this file): one request (`api`, throwing ApiError with the
// answer's message), the job paths, and what a JobDetail answer says.

export class ApiError extends Error {
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
// GETs started before they are asked for (the first screen's data, while the state loads).
const prefetched = new Map();

/** Start `GET path` now; the next `api("GET", path)` gets its answer instead of asking again. */
export function prefetch(path) {
  if (prefetched.has(path)) return;
  const answer = api("GET", path);
  answer.catch(() => {}); // said by whoever takes it; unused, it is no page error
  prefetched.set(path, answer);
}

export async function api(method, path, body, { raw = false, contentType, keepalive = false } = {}) {
  if (method === "GET" && prefetched.has(path)) {
    const answer = prefetched.get(path);
    prefetched.delete(path);
    return answer;
  }
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

export const jobPath = (id) => `/api/jobs/${encodeURIComponent(id)}`;

/** A JobDetail, flat (tolerates `{job: JobView, ...extras}` too). */
export function normalizeDetail(d) {
  if (d && d.job && typeof d.job === "object" && d.title === undefined) return { ...d.job, ...d, job: undefined };
  return d;
}

export const isDetail = (d) => d && typeof d === "object" && (d.checklist !== undefined || (d.job && d.job.checklist !== undefined));

/** A JobDetail whose checklist and parts can no longer change: signed off or closed. */
export const locked = (d) => !!d.locked || !!d.signoff || d.status === "completed" || d.status === "cancelled";
