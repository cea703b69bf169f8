// Screen: the customer's sign-off (#/job/{id}/signoff): the summary the customer is shown, what
// is still missing, and the name and signature that sign the job off.

import { main, el, fill, guard, serial, showError } from "../dom.js";
import { api, jobPath, normalizeDetail } from "../api.js";
import { fullFmt, answerText, num, money } from "../format.js";
import { signaturePad } from "../signature-pad.js";

export const signoffScreen = (route) => {
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
