// The product API as the pages use it: sessions (tokens kept per role in localStorage, refreshed
// before they expire), JSON calls whose errors become ApiError (status, code, message, field),
// errors shown next to the field they name, money shown as money, and the live socket.

export class ApiError extends Error {
  constructor(status, body, headers) {
    const error = (body && body.error) || {};
    super(error.message || `the server answered ${status}`);
    this.status = status;
    this.code = error.code || "unknown";
    this.field = error.field || null;
    this.body = body;
    this.retryAfter = Number(headers?.get?.("retry-after")) || null;
  }
}

const storeKey = (role) => `rickshaw.session.${role}`;

export function loadSession(role) {
  try {
    const raw = localStorage.getItem(storeKey(role));
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function saveSession(role, tokens, account) {
  const session = {
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token,
    expires_at: Date.now() + tokens.expires_in * 1000,
    account: account || tokens.account,
  };
  localStorage.setItem(storeKey(role), JSON.stringify(session));
  return session;
}

export function clearSession(role) {
  localStorage.removeItem(storeKey(role));
}

async function request(method, path, { body, token, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (token) init.headers.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, { error: { code: "network", message: "cannot reach Rickshaw; check your connection and try again" } });
  }
  const text = await response.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, json, response.headers);
  return json;
}

/// A signed-in user of one role: calls with its token, refreshed as needed.
export class Client {
  constructor(role) {
    this.role = role;
    this.session = loadSession(role);
    this.onSignedOut = () => {};
  }

  get account() {
    return this.session?.account || null;
  }

  async signUp(email, password, name) {
    return request("POST", "/v1/auth/signup", { body: { email, password, name, role: this.role } });
  }

  async logIn(email, password) {
    const tokens = await request("POST", "/v1/auth/login", { body: { email, password } });
    if (tokens.account.role !== this.role) {
      throw new ApiError(403, { error: { code: "forbidden", message: `this is the ${this.role}s' page; ${email} is a ${tokens.account.role}'s account`, field: "email" } });
    }
    this.session = saveSession(this.role, tokens);
    return this.session.account;
  }

  async logOut() {
    const refresh = this.session?.refresh_token;
    this.session = null;
    clearSession(this.role);
    if (refresh) {
      await request("POST", "/v1/auth/logout", { body: { refresh_token: refresh } }).catch(() => {});
    }
  }

  /// An access token valid for at least 30 more seconds.
  async token() {
    if (!this.session) throw new ApiError(401, { error: { code: "unauthorized", message: "log in first" } });
    if (this.session.expires_at - Date.now() < 30_000) {
      try {
        const tokens = await request("POST", "/v1/auth/refresh", { body: { refresh_token: this.session.refresh_token } });
        this.session = saveSession(this.role, tokens, this.session.account);
      } catch (e) {
        if (e.status === 401 || e.status === 422) {
          this.session = null;
          clearSession(this.role);
          this.onSignedOut();
        }
        throw e;
      }
    }
    return this.session.access_token;
  }

  async call(method, path, body, headers) {
    return request(method, path, { body, headers, token: await this.token() });
  }
}

/// Shows `error` next to the field it names in `form` (or at the form's top), and marks the
/// input invalid; `clearErrors` undoes it.
export function showError(form, error) {
  clearErrors(form);
  const message = error instanceof ApiError ? error.message : String(error?.message || error);
  const field = error?.field || "";
  const candidates = [field, field.split(".")[0], field.split("[")[0]].filter(Boolean);
  let slot = null;
  for (const name of candidates) {
    slot = form.querySelector(`[data-error-for="${CSS.escape(name)}"]`);
    if (slot) break;
  }
  slot = slot || form.querySelector(".form-error");
  if (!slot) return;
  slot.textContent = message;
  slot.hidden = false;
  const input = slot.dataset.errorFor && form.querySelector(`[name="${CSS.escape(slot.dataset.errorFor)}"]`);
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", slot.id);
  }
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll(".field-error, .form-error")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

const moneyFormat = new Intl.NumberFormat("en-BD", { style: "currency", currency: "BDT", currencyDisplay: "narrowSymbol" });

/// `{amount: 39000, currency: "BDT"}` (poisha) → "৳390.00".
export function money(value, currency = "BDT") {
  if (value == null) return "—";
  const amount = typeof value === "object" ? value.amount : value;
  const code = (typeof value === "object" && value.currency) || currency;
  if (code !== "BDT") return `${(amount / 100).toFixed(2)} ${code}`;
  return moneyFormat.format(amount / 100);
}

export function time(ms) {
  return ms ? new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "—";
}

export function dateTime(ms) {
  return ms ? new Date(ms).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "—";
}

export function distance(metres) {
  return metres >= 1000 ? `${(metres / 1000).toFixed(1)} km` : `${Math.round(metres)} m`;
}

/// Great-circle distance in metres.
export function metresBetween(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLng = (b.lng - a.lng) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLng / 2) ** 2;
  return 2 * 6_371_000 * Math.asin(Math.sqrt(h));
}

export function idempotencyKey() {
  return crypto.randomUUID();
}

/// `/v1/ws` (or another socket of ours), reconnecting with backoff and, for `/v1/ws`, the last
/// event id, so nothing is missed across a drop.
export class LiveSocket {
  constructor(client, path, onFrame, { replay = true, onState = () => {} } = {}) {
    this.client = client;
    this.path = path;
    this.onFrame = onFrame;
    this.onState = onState;
    this.replay = replay;
    this.lastId = null;
    // Ids received: after a reconnect the server sends the ones near lastId again (`resent`).
    this.seen = new Set();
    this.ws = null;
    this.stopped = false;
    this.delay = 500;
  }

  async open() {
    if (this.stopped) return;
    let token;
    try {
      token = await this.client.token();
    } catch {
      this.onState("signed out");
      return;
    }
    const url = new URL(this.path, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", token);
    if (this.replay && this.lastId) url.searchParams.set("last_event_id", this.lastId);
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      this.delay = 500;
      this.onState("live");
    };
    ws.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.id) {
        if (this.seen.has(frame.id)) return;
        this.seen.add(frame.id);
        if (this.seen.size > 4096) this.seen.delete(this.seen.values().next().value);
        if (!this.lastId || Number.parseFloat(frame.id) > Number.parseFloat(this.lastId)) this.lastId = frame.id;
      }
      this.onFrame(frame);
    };
    ws.onclose = () => {
      this.ws = null;
      if (this.stopped) return;
      this.onState("reconnecting");
      setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(this.delay * 2, 10_000);
    };
    ws.onerror = () => {};
    clearInterval(this.pinger);
    this.pinger = setInterval(() => this.send({ type: "ping" }), 20_000);
  }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  close() {
    this.stopped = true;
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000);
  }
}

/// Element shorthand: `el("li", {class: "x"}, "text", child)`; text is never parsed as HTML.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === false || value == null) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
