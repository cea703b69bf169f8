// The job's checklist: progress, and one control per item by its kind (pass/fail, choice,
// number, text, photo), each saved as it is answered and marked ✓ once committed.

import { el, fill, append, cameraIcon, guard, showError } from "../../dom.js";
import { api, locked } from "../../api.js";
import { num, photoItem } from "../../format.js";
import { app } from "../../sync-bar.js";
import { thumb } from "./photos.js";

/** `job`: what the job screen shares with its sections (see screens/job.js). */
export function checklistSection(job) {
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
          const c = checklistItem(job, i);
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

function checklistItem(job, item) {
  const { base, write } = job;
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
        control.update(before, lastLock, job.detail || {});
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
