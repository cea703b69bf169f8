// The dispatcher's /board page in headless Chromium (Debian's, driven by playwright-core), run
// by tests/tests/board.rs, which drives the devices and checks the server afterwards:
// 1. sign in (a wrong password first); today's job shows in Ana's column and the live
//    indicator is on; it is past its SLA (the test set a one-second acknowledge limit), so its
//    card carries the breach badge;
// 2. prints READY; the test then has Ana's device move the job on and add a part, offline-first
//    through a normal sync; the card shows both without the page being reloaded;
// 3. reschedules the job to 23:30 and reassigns it to Ben from the page, each choice surviving
//    a redraw before it is applied; prints ASSIGNED once the card sits in Ben's column (the test then checks Ben's device receives it).
// Settings come from the environment. Exits non-zero with the reason on the first failure.
import { env, launch } from "./browser.mjs";
import assert from "node:assert/strict";

const url = env("FIELDSYNC_URL");
const user = env("BOARD_USER");
const password = env("BOARD_PASSWORD");
const jobId = env("JOB_ID");
const ana = env("ANA");
const ben = env("BEN");

const browser = await launch();
const pageErrors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(15000);
  page.on("pageerror", (e) => pageErrors.push(e.message));
  let navigations = 0;
  page.on("framenavigated", (f) => { if (f === page.mainFrame()) navigations += 1; });

  await page.goto(`${url}/board`);
  const form = page.locator("#signin");
  await form.waitFor();
  await form.locator("input[name=name]").fill(user);
  await form.locator("input[name=password]").fill("not the password");
  await form.locator("button[type=submit]").click();
  await page.locator("#signin-error").filter({ hasText: /password/i }).waitFor();
  await form.locator("input[name=password]").fill(password);
  await form.locator("button[type=submit]").click();

  const column = (name) => page.locator(`[data-testid=column][data-tech="${name}"]`);
  const card = page.locator(`[data-testid=job][data-job-id="${jobId}"]`);
  await column(ana).locator(`[data-job-id="${jobId}"]`).waitFor();
  await page.locator("#live.on").waitFor();
  // The KPI strip of the last 30 days: nothing completed yet.
  assert.equal(await page.locator("[data-testid=kpi-completed] b").textContent(), "0");
  assert.equal(await card.locator("[data-testid=status]").textContent(), "assigned");
  // Not acknowledged within its SLA (a second): the breach badge (the page redraws every 15 s).
  await card.locator("[data-testid=sla][data-state=breached]", { hasText: "acknowledge" })
    .waitFor({ timeout: 20000 });
  assert.equal(await card.locator("[data-testid=parts]").textContent(), "parts 0");
  const before = navigations;

  // The device works the job; the card follows without a reload.
  console.log("READY");
  await card.locator("[data-testid=status]", { hasText: "en route" }).waitFor({ timeout: 20000 });
  await card.locator("[data-testid=parts]", { hasText: "parts 1" }).waitFor({ timeout: 20000 });
  assert.equal(navigations, before, "the page was reloaded");

  // Reschedule to 23:30 today, then reassign to Ben.
  const today = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  const local = `${today.getFullYear()}-${pad(today.getMonth() + 1)}-${pad(today.getDate())}T23:30`;
  // Each choice survives a redraw before it is applied (the board redraws on every event and
  // every 15 s, whatever has the focus): redraw on purpose between choosing and applying.
  const redraw = () => page.evaluate(() => { document.activeElement?.blur(); return reload(); });
  await card.locator("[data-testid=start]").fill(local);
  await redraw();
  await card.locator("[data-testid=reschedule]").click();
  await card.locator("[data-testid=time]", { hasText: "23:30" }).waitFor();
  await card.locator("[data-testid=assignee]").selectOption(ben);
  await redraw();
  assert.equal(await card.locator("[data-testid=assignee]").inputValue(), ben, "the redraw kept the choice");
  await card.locator("[data-testid=assign]").click();
  await column(ben).locator(`[data-job-id="${jobId}"]`).waitFor();
  await column(ana).locator(`[data-job-id="${jobId}"]`).waitFor({ state: "detached" });
  await column(ben).locator(`[data-job-id="${jobId}"]`).waitFor();
  console.log("ASSIGNED");

  // A bad reschedule says why and changes nothing.
  const moved = column(ben).locator(`[data-job-id="${jobId}"]`);
  await moved.locator("[data-testid=start]").fill("");
  await moved.locator("[data-testid=reschedule]").click();
  await moved.locator("[role=alert]", { hasText: "choose a start time" }).waitFor();

  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  assert.deepEqual(pageErrors, []);
  console.log("board page: ok");
} finally {
  await browser.close();
}
