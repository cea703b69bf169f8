// The back office's /review page in headless Chromium (Debian's, driven by playwright-core):
// sign-in (a wrong password first), the job with its photo's thumbnail, EXIF time and place, the
// full-size view, a rejection refused without a comment and accepted with one, the signature and
// its summary check, and the review still shown after a reload. Run by tests/tests/review_page.rs,
// which sets up the data and checks the server's side afterwards; settings come from the
// environment. Exits non-zero with the reason on the first failure.
import { env, launch } from "./browser.mjs";
import assert from "node:assert/strict";

const url = env("FIELDSYNC_URL");
const user = env("REVIEW_USER");
const password = env("REVIEW_PASSWORD");
const jobId = env("JOB_ID");
const photoId = env("PHOTO_ID");
const note = env("REVIEW_NOTE");

const browser = await launch();
const pageErrors = [];
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(15000);
  page.on("pageerror", (e) => pageErrors.push(e.message));

  await page.goto(`${url}/review`);
  const form = page.locator("#signin");
  await form.waitFor();
  await form.locator("input[name=name]").fill(user);
  await form.locator("input[name=password]").fill("not the password");
  await form.locator("button[type=submit]").click();
  await page.locator("#signin-error", { hasText: "wrong user name or password" }).waitFor();

  await form.locator("input[name=password]").fill(password);
  await form.locator("button[type=submit]").click();
  const job = page.locator(`[data-testid=job][data-job-id="${jobId}"]`);
  await job.waitFor();
  assert.equal(await form.isVisible(), false, "the sign-in form is hidden once signed in");

  const card = job.locator(`[data-testid=photo][data-photo-id="${photoId}"]`);
  const thumb = card.locator("[data-testid=thumbnail]");
  await page.waitForFunction((img) => img.complete && img.naturalWidth > 0, await thumb.elementHandle());
  assert.equal(await thumb.evaluate((img) => img.naturalWidth), 320, "the thumbnail is the 320 px one");

  const exif = await card.locator("[data-testid=exif]").textContent();
  assert.match(exif, /48\.8566\d, -2\.35000/, `EXIF place shown: ${exif}`);
  assert.match(exif, /640×480/, `dimensions shown: ${exif}`);
  assert.match(
    await card.locator("[data-testid=review-state]").textContent(),
    /waiting for review/,
  );

  await thumb.click();
  const viewer = page.locator("#viewer.open img");
  await viewer.waitFor();
  await page.waitForFunction((img) => img.complete && img.naturalWidth > 0, await viewer.elementHandle());
  assert.equal(await viewer.evaluate((img) => img.naturalWidth), 640, "the full-size original");
  await page.locator("#viewer").click();
  await page.locator("#viewer.open").waitFor({ state: "detached" });

  await card.locator("button.reject").click();
  await card.locator("[data-testid=review-error]", { hasText: "required when rejecting" }).waitFor();
  await card.locator("[data-testid=note]").fill(note);
  await card.locator("button.reject").click();
  await card.locator("[data-testid=review-state]", { hasText: `rejected by ${user}` }).waitFor();
  assert.match(await card.locator("[data-testid=review-state]").textContent(), new RegExp(note));
  assert.equal(await card.locator("[data-testid=review-error]").textContent(), "");

  const signature = job.locator("[data-testid=signature]");
  await page.waitForFunction((img) => img.complete && img.naturalWidth > 0, await signature.elementHandle());
  assert.equal(await signature.evaluate((img) => img.naturalWidth), 60);
  assert.equal(await job.locator("[data-testid=summary-match]").textContent(), "matches what was signed");
  assert.match(await job.locator("[data-testid=signoff]").textContent(), /Signed by Dana Customer/);

  // A reload keeps the session (the tab's storage) and shows the stored review.
  await page.reload();
  await page
    .locator(`[data-testid=photo][data-photo-id="${photoId}"] [data-testid=review-state]`, { hasText: note })
    .waitFor();
  assert.equal(await form.isVisible(), false, "still signed in after a reload");
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });

  // Signing out forgets the token: the API is not called with it again.
  await page.locator("#signout").click();
  await form.waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("fieldsync.token")), null);
  assert.deepEqual(pageErrors, [], "no script errors on the page");
  console.log("review page: ok");
} finally {
  await browser.close();
}
