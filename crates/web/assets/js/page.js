// What every app page does first: sign in (or find the session kept from last time), then show
// the app; the header names the account and logs out.

import { Client } from "./api.js";
import { mountAuth } from "./auth.js";

export function startPage(role, { signUp = true, onReady }) {
  const client = new Client(role);
  const auth = document.getElementById("auth");
  const app = document.getElementById("app");
  const who = document.getElementById("who");
  const logout = document.getElementById("logout");
  const show = (account) => {
    auth.hidden = true;
    app.hidden = false;
    who.textContent = `${account.name} · ${account.email}`;
    logout.hidden = false;
    onReady(client, account);
  };
  client.onSignedOut = () => location.reload();
  logout.addEventListener("click", async () => {
    await client.logOut();
    location.reload();
  });
  if (client.session) show(client.account);
  else mountAuth(auth, client, { signUp, onReady: show });
}
