// The technician's app (mobile-shell/ui, served by `mobile-shell serve`) in headless Chromium
// (Debian's, driven by playwright-core) on a 390×844 touch screen. Two phases, run by the harness
// around one device:
//
// PHASE=offline (the sync server is stopped): the top bar says offline; the job JOB_ID is listed
//   and opened; assigned → en_route → in_progress with the status buttons; notes typed and a
//   reload keeps them; the timer started and stopped; the sign-off screen lists exactly the
//   required items not done; every checklist item answered by kind (one number out of range
//   first: the API's message shows next to it), each with its saved mark; parts searched, added
//   (qty 2 → 3), added again and that second line removed; a general photo; the unsynced badge
//   and the pending count; the customer signs with the mouse; the job shows signed and locked.
//   On every screen: no horizontal scroll at 390 px, every visible control named and at least
//   44×44 px. No page error.
// PHASE=online (the harness started the server): the top bar reaches online, 0 changes and 0
//   uploads waiting by itself (nothing is clicked).
//
// Settings: APP_URL, JOB_ID, PHOTO_PATH, PART_SKU, SIGNER, PHASE, ARTIFACTS (optional: a folder
// for a full-page screenshot of each screen). Prints one JSON line on success; exits non-zero
// with the reason on the first failure.
import { env, launch } from "./browser.mjs";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";

const url = env("APP_URL").replace(/\/$/, "");
const phase = env("PHASE");
assert.ok(["signin", "offline", "online"].includes(phase), `PHASE must be signin, offline or online, not ${phase}`);
const artifacts = process.env.ARTIFACTS || "";
if (artifacts) fs.mkdirSync(artifacts, { recursive: true });

const browser = await launch();
const pageErrors = [];
let shot = 0;
try {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    isMobile: true,
    hasTouch: true,
    deviceScaleFactor: 2,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  // The page talks to the shell only: no request to the sync server or anywhere else.
  const outside = [];
  context.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(`${url}/`) && !u.startsWith("data:") && !u.startsWith("blob:") && u !== "about:blank") outside.push(u);
  });

  /** A full-page screenshot in ARTIFACTS, numbered in order. */
  const screenshot = async (name) => {
    if (!artifacts) return;
    shot += 1;
    await page.screenshot({ path: path.join(artifacts, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
  };
  const tid = (id) => page.locator(`[data-testid="${id}"]`);

  /** No horizontal scroll; every visible control named and at least 44×44 px. */
  const checkScreen = async (where) => {
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `${where}: the page is ${width} px wide at 390 px (horizontal scroll)`);
    const offenders = await page.evaluate(() => {
      const name = (e) => {
        const t = (s) => (s || "").replace(/\s+/g, " ").trim();
        if (t(e.getAttribute("aria-label"))) return t(e.getAttribute("aria-label"));
        const by = e.getAttribute("aria-labelledby");
        if (by) {
          const s = t(by.split(/\s+/).map((id) => document.getElementById(id)?.textContent).join(" "));
          if (s) return s;
        }
        if (e.labels && e.labels.length) {
          const s = t([...e.labels].map((l) => l.textContent).join(" "));
          if (s) return s;
        }
        if (e.tagName === "BUTTON" || e.tagName === "A") {
          if (t(e.textContent)) return t(e.textContent);
        }
        if (e.tagName === "INPUT" && ["submit", "button"].includes(e.type) && t(e.value)) return t(e.value);
        return t(e.getAttribute("title"));
      };
      const out = [];
      for (const e of document.querySelectorAll("button, input, select, textarea, a[href]")) {
        if (e.type === "hidden") continue;
        const r = e.getBoundingClientRect();
        const cs = getComputedStyle(e);
        if (r.width === 0 || r.height === 0 || cs.visibility === "hidden" || cs.display === "none") continue;
        const what = `${e.tagName.toLowerCase()}${e.dataset.testid ? `[data-testid=${e.dataset.testid}]` : ""} "${(e.textContent || e.getAttribute("aria-label") || "").trim().slice(0, 40)}"`;
        if (!name(e)) out.push(`${what}: no accessible name`);
        if (r.height < 44 - 0.5 || r.width < 44 - 0.5) out.push(`${what}: ${Math.round(r.width)}×${Math.round(r.height)} px`);
      }
      return out;
    });
    assert.deepEqual(offenders, [], `${where}: controls without a name or under 44×44 px:\n${offenders.join("\n")}`);
  };


  if (phase === "signin") {
    // A device never signed in opens on the sign-in screen; a wrong password is said, then the
    // right one lands on the job list.
    await page.goto(`${url}/#/`);
    await page.waitForURL(/#\/signin$/);
    const form = page.locator("#signin");
    await form.locator("input[name=server]").fill(env("SERVER_URL"));
    await form.locator("input[name=user]").fill(env("USER_NAME"));
    await form.locator("input[name=password]").fill("not the password");
    await form.locator("button[type=submit]").click();
    await page.locator("#signin-error", { hasText: "wrong user name or password" }).waitFor();
    await checkScreen("sign-in");
    await screenshot("signin");
    await form.locator("input[name=password]").fill(env("PASSWORD"));
    await form.locator("button[type=submit]").click();
    await page.waitForURL(/#\/$/);
    await page.waitForFunction(() => document.querySelector("[data-testid=sync-online]")?.dataset.online === "true", null, { timeout: 30000 });
    assert.equal(await form.count(), 0, "the sign-in form is gone once signed in");
    assert.deepEqual(outside, [], "requests outside the shell");
    assert.deepEqual(pageErrors, [], "errors in the page");
    console.log(JSON.stringify({ ok: true }));
  } else if (phase === "online") {
    await page.goto(`${url}/#/`);
    await tid("sync-online").waitFor();
    // Where the bar's slots and the content start, before the sync moves what the bar says.
    const layout = () => page.evaluate(() => {
      const rect = (e) => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height].map(Math.round).join(","); };
      const slots = ["sync-online", "sync-pending", "sync-uploads", "sync-last"]
        .map((id) => `${id}:${rect(document.querySelector(`[data-testid="${id}"]`))}`);
      return [...slots, `main:${Math.round(document.querySelector("main").getBoundingClientRect().y)}`];
    });
    const before = await layout();
    await page.waitForFunction(() => document.querySelector("[data-testid=sync-online]")?.dataset.online === "false");
    const shown = await page.evaluate(() => document.querySelector("[data-testid=sync-online]").textContent.trim());
    // The harness starts the server once the page is open and offline.
    console.log("READY");
    try {
      await page.waitForFunction(() => {
        const q = (id) => document.querySelector(`[data-testid="${id}"]`);
        return q("sync-online").dataset.online === "true"
          && q("sync-online").textContent.trim() === "online"
          && q("sync-pending").dataset.count === "0"
          && /^0\b/.test(q("sync-pending").textContent.trim())
          && q("sync-uploads").dataset.waiting === "0";
      }, null, { timeout: 60000, polling: 250 });
    } catch {
      const bar = await page.evaluate(() => ["sync-online", "sync-pending", "sync-uploads", "sync-last"]
        .map((id) => `${id}=${JSON.stringify(document.querySelector(`[data-testid="${id}"]`).textContent)}`).join(" "));
      assert.fail(`the top bar did not reach online, 0 pending, 0 uploads within 60 s: ${bar}`);
    }
    await screenshot("online");
    // The bar changed what it says (offline → online, counts to 0) without moving anything.
    assert.equal(shown, "offline", "the page opened while the app was offline");
    assert.deepEqual(await layout(), before, "the sync bar's change moved the layout");
    // The back office reviews the photos now on the server (the harness does, on SYNCED); the
    // open job screen shows the result without being touched.
    await page.goto(`${url}/#/job/${env("JOB_ID")}`);
    await tid("photo").first().waitFor();
    console.log("SYNCED");
    await page.waitForFunction(() => [...document.querySelectorAll("[data-testid=review-state]")]
      .some((r) => !r.hidden && r.dataset.state === "rejected" && r.textContent.includes("retake")), null, { timeout: 60000 })
      .catch(() => assert.fail("the back office's review did not show on the job"));
    await screenshot("reviewed");
    assert.deepEqual(outside, [], "requests outside the shell");
    assert.deepEqual(pageErrors, [], "errors in the page");
    console.log(JSON.stringify({ ok: true }));
    process.exitCode = 0;
  } else {
    const jobId = env("JOB_ID");
    const photoPath = env("PHOTO_PATH");
    const sku = env("PART_SKU");
    const signer = env("SIGNER");
    assert.ok(fs.existsSync(photoPath), `PHOTO_PATH ${photoPath} does not exist`);

    /** The job as the local API shows it (the page's own origin). */
    const detail = async () => {
      const res = await fetch(`${url}/api/jobs/${encodeURIComponent(jobId)}`);
      assert.equal(res.status, 200, `GET /api/jobs/${jobId}: ${res.status}`);
      return res.json();
    };

    // -- the job list, offline ------------------------------------------------------------------
    await page.goto(`${url}/#/`);
    await page.waitForFunction(() => document.querySelector("[data-testid=sync-online]")?.dataset.online === "false");
    assert.equal((await tid("sync-online").textContent()).trim(), "offline", "the top bar says offline");
    await page.locator("[data-testid=filter-tab][data-filter=all]").click();
    const row = page.locator(`[data-testid=job-row][data-job-id="${jobId}"]`);
    await row.waitFor();
    await checkScreen("job list");
    await screenshot("jobs");

    // -- the job: status, notes (with a reload), timer -------------------------------------------
    await row.click();
    await page.waitForURL(new RegExp(`#/job/${jobId}$`));
    const status = tid("job-status");
    await status.filter({ hasText: /^assigned$/ }).waitFor();
    await checkScreen("job");
    await screenshot("job");
    for (const to of ["en_route", "in_progress"]) {
      const btn = page.locator(`[data-testid=status-button][data-status="${to}"]`);
      await btn.waitFor();
      await btn.click();
      await page.waitForFunction((want) => document.querySelector("[data-testid=job-status]")?.textContent.trim() === want, to);
    }
    assert.equal((await detail()).status, "in_progress", "the API holds in_progress");

    const notesText = `Gate code 4711. Dog in the yard (test ${Date.now()}).`;
    await tid("notes").fill(notesText);
    await page.reload(); // straight away: the page must not lose what was typed
    await tid("notes").waitFor();
    try {
      await page.waitForFunction((want) => document.querySelector("[data-testid=notes]")?.value === want, notesText, { timeout: 10000 });
    } catch {
      assert.fail(`the notes were lost on reload: ${JSON.stringify(await tid("notes").inputValue())}`);
    }
    assert.equal((await detail()).notes, notesText, "the API holds the notes");

    const timer = tid("timer-toggle");
    await timer.click();
    await page.waitForFunction(() => document.querySelector("[data-testid=timer-toggle]")?.dataset.running === "true");
    await page.waitForTimeout(1100);
    await timer.click();
    await page.waitForFunction(() => document.querySelector("[data-testid=timer-toggle]")?.dataset.running === "false");
    const entries = (await detail()).time_entries || [];
    assert.ok(entries.length >= 1, "a time entry was recorded");
    assert.ok(entries.every((t) => t.stopped_at ?? t.end), "no time entry left running");

    // -- sign-off before the checklist is done: exactly the missing required items -----------------
    let job = await detail();
    const items = job.checklist.items;
    const expectedMissing = items.filter((i) => i.required && i.value == null).map((i) => i.label).sort();
    await tid("signoff-button").click();
    await page.waitForURL(new RegExp(`#/job/${jobId}/signoff$`));
    if (expectedMissing.length) {
      await tid("missing-item").first().waitFor();
      const shown = (await tid("missing-item").allTextContents()).map((s) => s.trim()).sort();
      assert.deepEqual(shown, expectedMissing, "the sign-off lists exactly the required items not done");
      assert.ok(await tid("signoff-submit").isDisabled(), "submit is disabled while items are missing");
    }
    await checkScreen("sign-off (items missing)");
    await screenshot("signoff-missing");
    await page.goBack();
    await page.waitForURL(new RegExp(`#/job/${jobId}$`));
    await tid("checklist-item").first().waitFor();

    // -- every checklist item, by kind ----------------------------------------------------------
    const itemLoc = (id) => page.locator(`[data-testid=checklist-item][data-item-id="${id}"]`);
    const waitSaved = async (id, what) => {
      try {
        await page.locator(`[data-testid=checklist-item][data-item-id="${id}"][data-saved="true"]`).waitFor({ timeout: 15000 });
      } catch {
        const err = await itemLoc(id).locator("[data-testid=item-error]").textContent().catch(() => "");
        assert.fail(`item ${id} (${what}) not saved${err ? `: ${err}` : ""}`);
      }
    };
    let outOfRangeTried = false;
    const answers = {};
    for (const it of items) {
      const loc = itemLoc(it.id);
      await loc.waitFor();
      assert.equal(await loc.getAttribute("data-kind"), it.kind, `item ${it.id} kind`);
      if (it.required) {
        const marker = await loc.locator(".req, [data-required], [aria-label*=equired]").count();
        assert.ok(marker > 0 || /required/i.test(await loc.innerText()), `item ${it.id} shows it is required`);
      }
      switch (it.kind) {
        case "pass_fail":
          await loc.locator('button[data-value="pass"]').click();
          answers[it.id] = "pass";
          break;
        case "text": {
          const field = loc.locator("textarea, input").first();
          await field.fill(`Checked ${it.label.toLowerCase()}; all fine.`);
          await field.blur();
          answers[it.id] = `Checked ${it.label.toLowerCase()}; all fine.`;
          break;
        }
        case "number": {
          const field = loc.locator("input").first();
          const hasMin = it.min != null;
          const hasMax = it.max != null;
          if (!outOfRangeTried && (hasMin || hasMax)) {
            outOfRangeTried = true;
            const bad = hasMax ? it.max + 1000 : it.min - 1000;
            await field.fill(String(bad));
            await field.blur();
            const err = loc.locator("[data-testid=item-error]");
            await err.waitFor({ state: "visible" });
            const msg = (await err.textContent()).trim();
            assert.ok(msg.length > 0, `item ${it.id}: an out-of-range ${bad} shows the API's message`);
            assert.notEqual(await loc.getAttribute("data-saved"), "true", `item ${it.id}: an out-of-range value is not marked saved`);
            const held = (await detail()).checklist.items.find((i) => i.id === it.id).value;
            assert.notEqual(held, bad, `item ${it.id}: the out-of-range value was refused`);
          }
          const good = hasMin && hasMax ? Math.round((it.min + it.max) / 2) : hasMin ? it.min + 1 : hasMax ? it.max - 1 : 42;
          await field.fill(String(good));
          await field.blur();
          answers[it.id] = good;
          break;
        }
        case "choice": {
          const first = it.choices[0];
          const select = loc.locator("select");
          if (await select.count()) await select.selectOption(first);
          else await loc.locator(`button[data-value="${first.replace(/"/g, '\\"')}"]`).click();
          answers[it.id] = first;
          break;
        }
        case "photo_required":
          await loc.locator("[data-testid=photo-input]").setInputFiles(photoPath);
          answers[it.id] = "photo";
          break;
        default:
          assert.fail(`item ${it.id}: unknown kind ${it.kind}`);
      }
      await waitSaved(it.id, it.kind);
      if (it.kind === "number") {
        assert.equal(await loc.locator("[data-testid=item-error]").isVisible(), false, `item ${it.id}: the error is gone once a valid value is saved`);
      }
    }
    if (!outOfRangeTried) console.error("note: the job's checklist has no number item with a range; the out-of-range check was skipped");
    job = await detail();
    for (const it of job.checklist.items) {
      assert.notEqual(it.value, null, `item ${it.id} holds a value in the API`);
      if (answers[it.id] !== "photo") assert.equal(String(it.value), String(answers[it.id]), `item ${it.id} holds what was entered`);
    }

    // -- parts: search, add 2, change to 3, a second line added and removed -----------------------
    await tid("part-search").fill(sku);
    const result = page.locator(`[data-testid=catalog-result][data-sku="${sku}"]`);
    await result.waitFor();
    await result.locator("input").fill("2");
    await result.locator("button").click();
    const lines = page.locator(`[data-testid=part-line][data-sku="${sku}"]`);
    await lines.first().waitFor();
    assert.equal(await lines.count(), 1, "one line after the first add");
    assert.equal(await lines.first().locator("[data-testid=part-qty]").inputValue(), "2", "the line's quantity is 2");
    const firstLine = await lines.first().getAttribute("data-line-id");
    await lines.first().locator("[data-testid=part-qty]").fill("3");
    await lines.first().locator("[data-testid=part-qty]").blur();
    await page.locator(`[data-testid=part-line][data-line-id="${firstLine}"][data-qty="3"]`).waitFor();
    assert.equal((await detail()).parts.find((l) => l.id === firstLine)?.qty, 3, "the API holds quantity 3");
    await result.locator("button").click();
    await page.waitForFunction((s) => document.querySelectorAll(`[data-testid=part-line][data-sku="${s}"]`).length === 2, sku);
    const secondLine = (await lines.evaluateAll((ls) => ls.map((l) => l.dataset.lineId))).find((id) => id !== firstLine);
    assert.ok(secondLine, "a second line");
    await page.locator(`[data-testid=part-line][data-line-id="${secondLine}"] [data-testid=part-remove]`).click();
    await page.locator(`[data-testid=part-line][data-line-id="${secondLine}"]`).waitFor({ state: "detached" });
    const partsNow = (await detail()).parts.filter((l) => l.sku === sku);
    assert.deepEqual(partsNow.map((l) => [l.id, l.qty]), [[firstLine, 3]], "the API holds the one line, qty 3");

    // -- a general photo -------------------------------------------------------------------------
    const photosBefore = await tid("photo").count();
    await tid("photo-input-general").setInputFiles(photoPath);
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=photo]").length === n + 1, photosBefore);
    const photoCards = tid("photo");
    for (let i = 0; i < (await photoCards.count()); i++) {
      const st = (await photoCards.nth(i).locator("[data-testid=upload-state]").textContent()).trim();
      assert.match(st, /waiting|%|uploaded|refused/, `photo ${i} shows its upload state`);
    }
    await checkScreen("job (filled in)");
    await screenshot("job-filled");

    // -- a second tab: an answer given there shows here live, and back ----------------------------
    {
      const other = await context.newPage();
      other.on("pageerror", (e) => pageErrors.push(`second tab: ${e.message}`));
      await other.goto(`${url}/#/job/${jobId}`);
      const firstPassFail = items.find((it) => it.kind === "pass_fail");
      const here = page.locator(`[data-testid=checklist-item][data-item-id="${firstPassFail.id}"]`);
      const there = other.locator(`[data-testid=checklist-item][data-item-id="${firstPassFail.id}"]`);
      await there.locator('button[data-value="fail"]').click();
      await page.waitForFunction((id) => document.querySelector(`[data-testid=checklist-item][data-item-id="${id}"]`)?.dataset.value === "fail", firstPassFail.id, { timeout: 10000 })
        .catch(() => assert.fail("an answer given in a second tab did not show in the first"));
      await here.locator('button[data-value="pass"]').click();
      await other.waitForFunction((id) => document.querySelector(`[data-testid=checklist-item][data-item-id="${id}"]`)?.dataset.value === "pass", firstPassFail.id, { timeout: 10000 })
        .catch(() => assert.fail("the first tab's answer did not show in the second"));
      await other.close();
      assert.equal((await detail()).checklist.items.find((it) => it.id === firstPassFail.id).value, "pass");
    }

    // -- what is waiting: the row's badge and the top bar ------------------------------------------
    await page.goto(`${url}/#/?filter=all`);
    const badge = page.locator(`[data-testid=job-row][data-job-id="${jobId}"] [data-testid=unsynced-badge]`);
    await badge.waitFor();
    const unsynced = parseInt((await badge.textContent()).replace(/\D+/g, ""), 10);
    assert.ok(unsynced > 0, `the job's unsynced badge shows a count > 0 (${unsynced})`);
    const pendingText = await tid("sync-pending").textContent();
    assert.ok(parseInt(pendingText.replace(/\D+/g, ""), 10) > 0, `the top bar counts pending changes (${pendingText})`);
    await screenshot("jobs-pending");

    // -- the customer signs -------------------------------------------------------------------------
    await page.goto(`${url}/#/job/${jobId}`);
    await tid("signoff-button").click();
    await page.waitForURL(new RegExp(`#/job/${jobId}/signoff$`));
    await tid("signer-name").waitFor();
    assert.equal(await tid("missing-item").count(), 0, "nothing missing once the checklist is done");
    const summaryText = await page.locator("main").innerText();
    for (const it of items) assert.ok(summaryText.includes(it.label), `the summary shows "${it.label}"`);
    assert.ok(summaryText.includes(sku), "the summary shows the part");
    await tid("signer-name").fill(signer);
    const pad = tid("signature-pad");
    await pad.scrollIntoViewIfNeeded();
    const box = await pad.boundingBox();
    assert.ok(box && box.width > 200 && box.height > 100, "a signature pad big enough to sign on");
    const strokes = [
      [[0.1, 0.6], [0.2, 0.3], [0.3, 0.7], [0.4, 0.35]],
      [[0.45, 0.6], [0.55, 0.4], [0.65, 0.65], [0.75, 0.3]],
      [[0.15, 0.8], [0.5, 0.75], [0.9, 0.78]],
    ];
    for (const s of strokes) {
      await page.mouse.move(box.x + s[0][0] * box.width, box.y + s[0][1] * box.height);
      await page.mouse.down();
      for (const [x, y] of s.slice(1)) await page.mouse.move(box.x + x * box.width, box.y + y * box.height, { steps: 8 });
      await page.mouse.up();
    }
    const inked = await pad.evaluate((c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] < 128) n++;
      return n;
    });
    assert.ok(inked > 200, `the strokes show on the pad (${inked} dark pixels)`);
    await checkScreen("sign-off");
    await screenshot("signoff");
    await tid("signoff-submit").click();
    await page.waitForURL(new RegExp(`#/job/${jobId}$`));
    const signed = tid("signed");
    await signed.waitFor();
    assert.ok((await signed.textContent()).includes(signer), `the job shows it was signed by ${signer}`);
    job = await detail();
    assert.equal(job.signoff?.signer_name, signer, "the API holds the sign-off");
    assert.equal(job.locked, true, "the API says the job is locked");

    // Locked: no checklist or parts control can be used.
    await page.waitForFunction(() => [...document.querySelectorAll("[data-testid=checklist-item] button, [data-testid=checklist-item] input, [data-testid=checklist-item] select, [data-testid=checklist-item] textarea")].every((c) => c.disabled));
    const usable = await page.evaluate(() => {
      const vis = (e) => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== "hidden";
      return [...document.querySelectorAll("[data-testid=part-line] button, [data-testid=part-line] input, [data-testid=part-search], [data-testid=catalog-result] button")]
        .filter((c) => vis(c) && !c.disabled).map((c) => c.dataset.testid || c.outerHTML.slice(0, 60));
    });
    assert.deepEqual(usable, [], "parts controls are disabled or hidden once signed");
    const photos = await tid("photo").count();
    await checkScreen("job (signed)");
    await screenshot("job-signed");

    assert.deepEqual(outside, [], "requests outside the shell");
    const pageProblem = await page.locator(".page-error:not([hidden])").count();
    assert.equal(pageProblem, 0, "no page-level error shown");
    assert.deepEqual(pageErrors, [], "errors in the page");
    console.log(JSON.stringify({ ok: true, signer, photos }));
  }
} catch (e) {
  if (artifacts) {
    try {
      const pages = browser.contexts().flatMap((c) => c.pages());
      if (pages[0]) await pages[0].screenshot({ path: path.join(artifacts, "failure.png"), fullPage: true });
    } catch {
      /* the screenshot is a nicety */
    }
  }
  if (pageErrors.length) console.error(`page errors: ${pageErrors.join(" | ")}`);
  throw e;
} finally {
  await browser.close();
}
