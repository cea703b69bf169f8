// The job's time section: the technician's timer (start, stop, running time) and the time
// logged on the job.

import { el, fill, guard, showError } from "../../dom.js";
import { clock, duration, entryStart, entryEnd } from "../../format.js";
import { app } from "../../sync-bar.js";

/** `job`: what the job screen shares with its sections (see screens/job.js). */
export function timeSection(job) {
  const { base, write } = job;
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
      btn.disabled = !!(job.detail && (job.detail.status === "completed" || job.detail.status === "cancelled")) && btn.dataset.running !== "true";
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
