// What the browser tests share: settings from the environment, and Debian's Chromium launched
// headless by playwright-core with the flags this machine's closed network needs (without the
// background-networking ones Chromium keeps trying to reach Google's hosts).
import { chromium } from "playwright-core";

/** The environment variable `name`; throws when it is not set. */
export const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

/** Chromium from $CHROMIUM (default /usr/bin/chromium), headless. */
export const launch = () =>
  chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
