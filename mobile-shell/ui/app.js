// Fieldsync: the technician's app. Screens over the local API of `mobile-shell serve` (see
// README.md beside this file); no framework, no build step, no request anywhere but that API.
// This module is the entry: it registers the screens and starts the app. The rest is in small
// modules named for what they hold (dom.js, text.js, api.js, format.js, sync-bar.js, route.js,
// router.js, signature-pad.js, screens/).
//
// Routes (location.hash): #/ (my jobs; ?filter=today|upcoming|all), #/job/{id},
// #/job/{id}/signoff, #/signin.
//
// Rules the code keeps:
// - Everything shown comes from the API; a write's answer (or the next read) is what is shown.
// - A field the user is typing in is never overwritten by a refresh (focus or unsent text).
// - Reads that started before a write are not applied over that write's answer.
// - Nothing typed is lost: notes save as you type (debounced), on blur, and on pagehide /
//   visibilitychange with keepalive requests.

import { showPageError } from "./dom.js";
import { renderBar, loadState, connectEvents } from "./sync-bar.js";
import { screens, show } from "./router.js";
import { parseRoute } from "./route.js";
import { prefetch } from "./api.js";
import { signinScreen } from "./screens/signin.js";
import { jobsScreen } from "./screens/jobs.js";
import { jobScreen } from "./screens/job.js";
import { signoffScreen } from "./screens/signoff.js";

screens.signin = signinScreen;
screens.list = jobsScreen;
screens.job = jobScreen;
screens.signoff = signoffScreen;

window.addEventListener("unhandledrejection", (e) => {
  showPageError(e.reason instanceof Error ? e.reason : String(e.reason));
});

async function start() {
  renderBar();
  // The job list is asked for while the state loads, not after it (a cold start's critical path).
  const first = parseRoute();
  if (first.name === "list") prefetch(`/api/jobs?filter=${first.filter}`);
  await loadState();
  connectEvents();
  show();
}

start();
