// Screen: one job (#/job/{id}): the screen (its reads and writes, made once and updated in
// place) and its head, status, sign-off state and sign-off link; the other sections are in
// screens/job/.

import { main, el, fill, guard, serial, showError } from "../dom.js";
import { api, jobPath, normalizeDetail, isDetail } from "../api.js";
import { STATUS_LABEL, PRIORITY_LABEL, ACTION_ORDER, PRIMARY, actionLabel, when, timeFmt, fullFmt, uploadState } from "../format.js";
import { timeSection } from "./job/time.js";
import { notesSection } from "./job/notes.js";
import { checklistSection } from "./job/checklist.js";
import { partsSection } from "./job/parts.js";
import { photosSection } from "./job/photos.js";

export const jobScreen = (route) => {
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

  // What the sections in screens/job/ share with the screen: the job's API path, its writes, its
  // timers (stopped with the screen), and the detail shown and whether the screen is gone, as
  // they are when read.
  const job = {
    id,
    base,
    write,
    later,
    get detail() {
      return detail;
    },
    get destroyed() {
      return destroyed;
    },
  };

  function build() {
    const root = el("div", { class: "job" });
    const head = headSection();
    const status = statusSection();
    const signed = signedSection();
    const time = timeSection(job);
    const notes = notesSection(job);
    const checklist = checklistSection(job);
    const parts = partsSection(job);
    const photos = photosSection(job);
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
