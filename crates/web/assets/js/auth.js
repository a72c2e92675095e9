// Log in (and, for riders and drivers, sign up): the forms, built here once for every page.

import { clearErrors, el, showError } from "./api.js";

function field(form, name, label, type = "text", extra = {}) {
  const id = `${form}-${name}`;
  return el(
    "div",
    { class: "field" },
    el("label", { for: id }, label),
    el("input", { id, name, type, autocomplete: extra.autocomplete || "off", ...extra.attributes }),
    el("p", { class: "field-error", id: `${id}-error`, "data-error-for": name, role: "alert", hidden: true }),
  );
}

function formError(id) {
  return el("p", { class: "form-error", id: `${id}-error`, role: "alert", hidden: true });
}

/// Fills `section` with the forms; `onReady(account)` once signed in.
export function mountAuth(section, client, { signUp = true, onReady }) {
  const login = el(
    "form",
    { class: "card", id: "login-form", novalidate: true, "aria-labelledby": "login-title" },
    el("h2", { id: "login-title" }, "Log in"),
    formError("login"),
    field("login", "email", "Email", "email", { autocomplete: "username" }),
    field("login", "password", "Password", "password", { autocomplete: "current-password" }),
    el("button", { type: "submit" }, "Log in"),
  );
  section.replaceChildren(login);
  login.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(login);
    const data = new FormData(login);
    try {
      onReady(await client.logIn(data.get("email"), data.get("password")));
    } catch (e) {
      showError(login, e);
    }
  });
  if (!signUp) return;
  const signup = el(
    "form",
    { class: "card", id: "signup-form", novalidate: true, "aria-labelledby": "signup-title" },
    el("h2", { id: "signup-title" }, `New here? Sign up as a ${client.role}`),
    formError("signup"),
    field("signup", "name", "Your name", "text", { autocomplete: "name" }),
    field("signup", "email", "Email", "email", { autocomplete: "username" }),
    field("signup", "password", "Password (8 characters or more)", "password", { autocomplete: "new-password" }),
    el("button", { type: "submit" }, "Sign up"),
  );
  section.append(signup);
  signup.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(signup);
    const data = new FormData(signup);
    const [name, email, password] = ["name", "email", "password"].map((k) => data.get(k));
    try {
      await client.signUp(email, password, name);
      onReady(await client.logIn(email, password));
    } catch (e) {
      // A taken email answers sign-up like a new one; the login that follows tells.
      if (e.status === 401) e.message = "that email has an account with another password; log in instead";
      showError(signup, e);
    }
  });
}
