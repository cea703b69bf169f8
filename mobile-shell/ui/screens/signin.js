// Screen: sign in (#/signin): the server, the user and the password; once signed in the app
// works without signal.

import { main, el, guard, showError } from "../dom.js";
import { api } from "../api.js";
import { app, setState, loadState } from "../sync-bar.js";

export const signinScreen = () => {
  const s = app.state || {};
  const err = el("p", { class: "error", role: "alert", hidden: true, id: "signin-error" });
  const server = el("input", { id: "f-server", name: "server", type: "url", required: true, autocomplete: "url", inputmode: "url", value: s.server || "", placeholder: "https://fieldsync.example.com" });
  const user = el("input", { id: "f-user", name: "user", required: true, autocomplete: "username", autocapitalize: "none", spellcheck: "false", value: (s.signed_in && s.user) || "" });
  const password = el("input", { id: "f-password", name: "password", type: "password", required: true, autocomplete: "current-password" });
  const submit = el("button", { type: "submit", class: "btn primary wide" }, "Sign in");
  const form = el("form", { class: "card form", id: "signin", novalidate: true },
    el("h1", {}, "Sign in"),
    s.signed_in ? el("p", { class: "muted" }, `Signed in as ${s.user || "?"} on ${s.server || "?"}. Sign in again to change.`) : el("p", { class: "muted" }, "Once signed in, the app works without signal."),
    el("label", { for: "f-server" }, "Server address"), server,
    el("label", { for: "f-user" }, "User name"), user,
    el("label", { for: "f-password" }, "Password"), password,
    err, submit);
  form.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    showError(err, null);
    const body = { server: server.value.trim(), user: user.value.trim(), password: password.value };
    if (!body.server || !body.user || !body.password) {
      showError(err, "Enter the server address, your user name and your password.");
      return;
    }
    submit.disabled = true;
    submit.textContent = "Signing in…";
    try {
      const st = await api("POST", "/api/login", body);
      password.value = "";
      if (st && typeof st === "object" && "signed_in" in st) setState(st);
      else await loadState();
      location.hash = "#/";
    } finally {
      submit.disabled = false;
      submit.textContent = "Sign in";
    }
  }, err));
  main.append(form, el("p", { class: "center" }, el("a", { class: "btn link", href: "#/?filter=all" }, "Open the jobs on this device")));
  (s.server ? (user.value ? password : user) : server).focus({ preventScroll: true });
  return { refresh() {} };
};
