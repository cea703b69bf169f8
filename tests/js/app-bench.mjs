// The technician app's figures, in headless Chromium (Debian's, driven by playwright-core):
//
// 1. Cold start: `mobile-shell serve` spawned on a device holding many jobs (DATA_DIR), the clock
//    started at the spawn, until the frame showing the whole job list (filter All) was painted,
//    stamped by the page itself (the wall clock, shared with this process), in a page that was
//    waiting on about:blank; the page navigates as soon as the shell's port accepts. Median and max over RUNS (default 10); the shell is stopped
//    (SIGTERM) after each run.
// 2. Tap → saved: on the first job's first pass_fail item, TAPS (default 200) taps alternately on
//    Pass and Fail, each timed inside the page from the click to the item's `data-saved`
//    becoming "true" again for the new value (the page clears it synchronously on the tap and
//    sets it when the local API answered the write). p50, p99, max.
//
// Settings: MOBILE_SHELL (the binary), DATA_DIR (a device data dir, e.g. `mobile-shell demo
// --jobs 500`), RUNS, TAPS, JOBS (how many rows to wait for; default 500). Prints a table and one
// JSON line. Exits non-zero with the reason on failure.
import { env, launch } from "./browser.mjs";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";

const shellBin = env("MOBILE_SHELL");
const dataDir = env("DATA_DIR");
const runs = Number(process.env.RUNS || 10);
const taps = Number(process.env.TAPS || 200);
const jobs = Number(process.env.JOBS || 500);
assert.ok(runs >= 1 && taps >= 2 && jobs >= 1, "RUNS >= 1, TAPS >= 2, JOBS >= 1");

/** A port nobody listens on right now (the OS picks it; closed again for the shell to take). */
const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

/** Resolves once something accepts connections on `port`; rejects after `limitMs`. */
async function waitForPort(port, limitMs, child) {
  const until = Date.now() + limitMs;
  for (;;) {
    if (child.exitCode != null) throw new Error(`mobile-shell exited (${child.exitCode}) before listening: ${child.stderrText}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect({ port, host: "127.0.0.1" });
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`mobile-shell did not listen on ${port} within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function startShell(port) {
  const child = spawn(shellBin, ["serve", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  child.stderrText = "";
  child.stderr.on("data", (d) => {
    child.stderrText = (child.stderrText + d).slice(-4000);
  });
  return child;
}

/** SIGTERM, then wait for the exit (SIGKILL after 10 s, said on stderr). */
async function stopShell(child) {
  if (child.exitCode != null || child.signalCode != null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => {
    console.error(`mobile-shell (pid ${child.pid}) did not stop within 10 s of SIGTERM; killing it`);
    child.kill("SIGKILL");
  }, 10000);
  await exited;
  clearTimeout(timer);
}

const sorted = (xs) => xs.slice().sort((a, b) => a - b);
/** Nearest-rank percentile. */
const pct = (xs, p) => {
  const s = sorted(xs);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
const median = (xs) => {
  const s = sorted(xs);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (x) => `${x.toFixed(1)} ms`;

const browser = await launch();
const children = new Set();
const cleanup = async () => {
  for (const c of children) await stopShell(c);
};
process.on("SIGINT", () => cleanup().then(() => process.exit(130)));

try {
  // ---- 1. cold start ---------------------------------------------------------------------------
  const cold = [];
  for (let run = 0; run < runs; run++) {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    // The page stamps the wall clock when the frame showing every row was painted (a mutation
    // observer, then the next animation frame and a task after it), so the figure does not
    // include the driver's polling.
    await page.addInitScript((n) => {
      const watch = () => {
        const obs = new MutationObserver(() => {
          if (document.querySelectorAll("[data-testid=job-row]").length < n) return;
          obs.disconnect();
          requestAnimationFrame(() => setTimeout(() => { window.__listShownAt = performance.timeOrigin + performance.now(); }, 0));
        });
        obs.observe(document.documentElement, { childList: true, subtree: true });
      };
      if (document.documentElement) watch();
      else document.addEventListener("readystatechange", watch, { once: true });
    }, jobs);
    await page.goto("about:blank");
    const port = await freePort();
    const wall0 = performance.timeOrigin + performance.now();
    const t0 = performance.now();
    const child = startShell(port);
    children.add(child);
    try {
      await waitForPort(port, 30000, child);
      const listening = performance.now() - t0;
      await page.goto(`http://127.0.0.1:${port}/#/?filter=all`);
      try {
        await page.waitForFunction((n) => document.querySelectorAll("[data-testid=job-row]").length >= n, jobs, { timeout: 60000, polling: "raf" });
      } catch {
        const shown = await page.locator("[data-testid=job-row]").count();
        const text = (await page.locator("main").innerText().catch(() => "")).slice(0, 300);
        throw new Error(`run ${run + 1}: the list shows ${shown} rows, not ${jobs}, after 60 s: ${text}`);
      }
      await page.waitForFunction(() => window.__listShownAt !== undefined, null, { timeout: 10000 });
      const shownAt = await page.evaluate(() => window.__listShownAt);
      const t = shownAt - wall0;
      cold.push(t);
      assert.deepEqual(errors, [], `run ${run + 1}: errors in the page`);
      // Inside the page: navigation start → the `load` event → the rows shown.
      const inPage = await page.evaluate(() => {
        const nav = performance.getEntriesByType("navigation")[0];
        return { load: nav ? nav.loadEventEnd : null, now: performance.now() };
      });
      console.error(`cold start ${run + 1}/${runs}: ${ms(t)} (listening after ${ms(listening)}; in the page: load event at ${ms(inPage.load ?? 0)})`);
    } finally {
      await context.close(); // closes the page's event stream before the shell stops
      await stopShell(child);
      children.delete(child);
    }
  }

  // ---- 2. tap → saved ---------------------------------------------------------------------------
  const port = await freePort();
  const child = startShell(port);
  children.add(child);
  let tapTimes = [];
  let tapError = null;
  let jobTitle = "";
  try {
    await waitForPort(port, 30000, child);
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${port}/#/?filter=all`);
    await page.locator("[data-testid=job-row]").first().waitFor();
    // The first row; if it has no pass_fail item that can be answered, the next ones (said).
    const ids = await page.locator("[data-testid=job-row]").evaluateAll((rows) => rows.slice(0, 20).map((r) => r.dataset.jobId));
    let found = false;
    for (const [n, id] of ids.entries()) {
      await page.goto(`http://127.0.0.1:${port}/#/job/${id}`);
      await page.locator("[data-testid=checklist-item]").first().waitFor();
      const ok = await page.evaluate(() =>
        [...document.querySelectorAll('[data-testid=checklist-item][data-kind="pass_fail"]')]
          .some((i) => !i.querySelector('button[data-value="pass"]').disabled));
      if (ok) {
        if (n > 0) console.error(`rows 1–${n} have no answerable pass_fail item (locked or none); using row ${n + 1}`);
        jobTitle = await page.locator(".job-title").textContent();
        found = true;
        break;
      }
    }
    assert.ok(found, "none of the first 20 jobs has a pass_fail item that can be answered");

    // The timing lives in the page: the click and the saved mark are both seen there.
    await page.evaluate(() => {
      const item = [...document.querySelectorAll('[data-testid=checklist-item][data-kind="pass_fail"]')]
        .find((i) => !i.querySelector('button[data-value="pass"]').disabled);
      item.dataset.benchTarget = "true";
      window.__benchTap = (value) =>
        new Promise((resolve) => {
          const btn = item.querySelector(`button[data-value="${value}"]`);
          let t0 = 0;
          const done = (result) => {
            obs.disconnect();
            clearTimeout(timer);
            resolve(result);
          };
          const check = () => {
            if (item.dataset.saved === "true" && item.dataset.value === value) done({ ms: performance.now() - t0 });
            const err = item.querySelector("[data-testid=item-error]");
            if (err && !err.hidden && err.textContent) done({ error: err.textContent });
          };
          const obs = new MutationObserver(check);
          obs.observe(item, { attributes: true, attributeFilter: ["data-saved", "data-value"], subtree: true, childList: true, characterData: true });
          const timer = setTimeout(() => done({ error: `no saved mark within 10 s (data-saved=${item.dataset.saved})` }), 10000);
          t0 = performance.now();
          btn.click();
          // The page must clear the mark synchronously on the tap.
          if (item.dataset.saved !== "false") done({ error: `data-saved is "${item.dataset.saved}" right after the tap, not "false"` });
        });
      return item.dataset.itemId;
    });
    const current = await page.locator('[data-bench-target="true"]').getAttribute("data-value");
    let value = current === "pass" ? "fail" : "pass";
    for (let i = 0; i < taps; i++) {
      const r = await page.evaluate((v) => window.__benchTap(v), value);
      if (r.error) {
        tapError = r.error;
        break;
      }
      tapTimes.push(r.ms);
      value = value === "pass" ? "fail" : "pass";
    }
    assert.deepEqual(errors, [], "errors in the page");
    await context.close();
  } finally {
    await stopShell(child);
    children.delete(child);
  }
  if (tapError) console.error(`the API refused a tap: ${tapError}`);

  // ---- report ------------------------------------------------------------------------------------
  const rows = [
    ["cold start → list of " + jobs, `${cold.length} runs`, `median ${ms(median(cold))}`, `max ${ms(Math.max(...cold))}`, ""],
  ];
  if (tapTimes.length) {
    rows.push(["tap → saved", `${tapTimes.length} taps`, `p50 ${ms(pct(tapTimes, 50))}`, `p99 ${ms(pct(tapTimes, 99))}`, `max ${ms(Math.max(...tapTimes))}`]);
  } else {
    rows.push(["tap → saved", "0 taps", "", "", ""]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  console.log(`The technician's app (${runs} cold starts, ${taps} taps${jobTitle ? ` on “${jobTitle.trim()}”` : ""})`);
  for (const r of rows) console.log(r.map((x, c) => x.padEnd(widths[c])).join("  ").trimEnd());
  console.log(JSON.stringify({
    cold_start_ms: { runs: cold.length, jobs, median: +median(cold).toFixed(1), max: +Math.max(...cold).toFixed(1) },
    tap_saved_ms: tapTimes.length
      ? { taps: tapTimes.length, p50: +pct(tapTimes, 50).toFixed(1), p99: +pct(tapTimes, 99).toFixed(1), max: +Math.max(...tapTimes).toFixed(1) }
      : null,
    tap_error: tapError,
  }));
  if (tapError) process.exitCode = 1;
} finally {
  await cleanup();
  await browser.close();
}
