// The job's photos: each with its caption, the item it answers, its upload and review state; and
// adding one. Also the thumbnail the checklist's photo items show.

import { el, cameraIcon, guard, showError } from "../../dom.js";
import { locked } from "../../api.js";
import { when, photoItem, uploadState } from "../../format.js";

/** A photo held on the device, small; "no copy" once it was pruned. */
export function thumb(p, alt) {
  const img = el("img", { class: "thumb", src: `/api/blobs/${encodeURIComponent(p.sha256)}`, alt: alt || p.caption || "Photo", loading: "lazy", decoding: "async", width: 96, height: 96 });
  img.addEventListener("error", () => {
    img.replaceWith(el("span", { class: "thumb placeholder", role: "img", "aria-label": "Photo not kept on this device" }, "no copy"));
  });
  return img;
}

/** `job`: what the job screen shares with its sections (see screens/job.js). */
export function photosSection(job) {
  const { base, write } = job;
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
