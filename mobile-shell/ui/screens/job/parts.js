// The job's parts: the lines used (quantity, remove) and the catalog search that adds them.

import { el, fill, guard, showError } from "../../dom.js";
import { api, locked } from "../../api.js";
import { money, num } from "../../format.js";

/** `job`: what the job screen shares with its sections (see screens/job.js). */
export function partsSection(job) {
  const { base, write } = job;
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
    if (my !== searchSeq || job.destroyed) return;
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
