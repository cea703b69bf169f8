// Screen: my jobs (#/, ?filter=today|upcoming|all): the list of jobs on this device, soonest
// first, updated in place.

import { main, el, esc, serial, showError } from "../dom.js";
import { api } from "../api.js";
import { PRIORITY_LABEL, STATUS_LABEL, when } from "../format.js";
import { app } from "../sync-bar.js";

export const jobsScreen = (route) => {
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
