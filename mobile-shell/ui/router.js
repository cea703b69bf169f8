// Routing: the screens by route name (app.js registers them) and showing the one the location
// names, on start and on every hashchange.

import { main, fill, clearPageError } from "./dom.js";
import { app, renderNotices } from "./sync-bar.js";
import { parseRoute } from "./route.js";

export const screens = {};

export function show() {
  let route = parseRoute();
  // Not signed in: the app opens on the sign-in screen (deep links still show what the device holds).
  if (app.firstRoute && app.state && app.state.signed_in === false && route.name === "list" && route.bare) {
    app.firstRoute = false;
    location.replace("#/signin");
    return;
  }
  app.firstRoute = false;
  const prevName = app.screen && app.screen.name;
  if (app.screen && app.screen.destroy) app.screen.destroy();
  app.screen = null;
  clearPageError();
  fill(main);
  const screen = screens[route.name](route, main);
  screen.name = route.name + (route.id || "");
  app.screen = screen;
  if (prevName !== screen.name) window.scrollTo(0, 0);
  renderNotices();
}

window.addEventListener("hashchange", show);
