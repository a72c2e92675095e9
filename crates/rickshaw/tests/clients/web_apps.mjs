// The web apps in headless Chromium (Debian's), driven by playwright-core from npm:
//   node web_apps.mjs <base url> <admin email> <admin password> <bot drivers> <screenshot dir>
// A rider and a driver, in two browser contexts, complete a trip through the pages alone; every
// form shows the API's message beside the field a bad input names; the operations map shows the
// bot's drivers and agrees with `GET /v1/admin/city`; no page logs an error. Screenshots of each
// page go to <screenshot dir>. Exits 1 with the reason on the first failed check.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [base, adminEmail, adminPassword, botDriversArg, shots] = process.argv.slice(2);
const botDrivers = Number(botDriversArg);
mkdirSync(shots, { recursive: true });
const stamp = Date.now().toString(36);
const PASSWORD = "correct horse battery";

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
  console.log(`ok: ${message}`);
}

async function api(method, path, body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
// A 4xx the page asked for (the bad inputs below) is logged by Chromium as a failed resource:
// expected. Anything else logged as an error, or thrown, fails the test.
const expected = /^Failed to load resource: the server responded with a status of 4\d\d/;

async function open(name, path, viewport = { width: 1280, height: 860 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error" && !expected.test(msg.text())) errors.push(`${name}: console: ${msg.text()}`);
  });
  page.on("pageerror", (error) => errors.push(`${name}: ${error.message}`));
  page.on("requestfailed", (request) => {
    if (!request.url().startsWith(base)) errors.push(`${name}: fetched from elsewhere: ${request.url()}`);
  });
  await page.goto(base + path);
  return page;
}

/// Submits `form` and returns the text shown in `slot`, which must become visible.
async function errorShown(page, submit, slot) {
  await page.click(submit);
  await page.waitForSelector(`${slot}:not([hidden])`, { timeout: 10_000 });
  return (await page.textContent(slot)).trim();
}

async function signUp(page, role, name) {
  const email = `${role}-${stamp}@example.com`;
  // A password too short: the API's message, beside the password.
  await page.fill("#signup-name", name);
  await page.fill("#signup-email", email);
  await page.fill("#signup-password", "short");
  const expectedMessage = (await api("POST", "/v1/auth/signup", { email: `probe-${stamp}@example.com`, password: "short", name, role })).body.error.message;
  const shown = await errorShown(page, "#signup-form button[type=submit]", "#signup-password-error");
  check(shown === expectedMessage, `${role} sign-up: "${shown}" beside the password`);
  check((await page.getAttribute("#signup-password", "aria-invalid")) === "true", `${role} sign-up: the password is marked invalid`);
  await page.fill("#signup-password", PASSWORD);
  await page.click("#signup-form button[type=submit]");
  await page.waitForSelector("#app:not([hidden])", { timeout: 15_000 });
  return email;
}

try {
  // The start page and the API docs, offline.
  const home = await open("home", "/");
  await home.screenshot({ path: `${shots}/home.png` });
  const docs = await open("docs", "/docs");
  await docs.waitForSelector("text=Rickshaw product API", { timeout: 20_000 });
  await docs.screenshot({ path: `${shots}/docs.png` });

  // The driver: a vehicle (a bad one first), online, sharing a simulated position.
  const driver = await open("driver", "/app/driver");
  await signUp(driver, "driver", "Karim Driver");
  await driver.fill("#plate", "");
  await driver.fill("#model", "Toyota Axio");
  await driver.selectOption("#package", "premium");
  const plateError = await errorShown(driver, "#vehicle-form button[type=submit]", "#plate-error");
  check(plateError.length > 0 && /plate/i.test(plateError), `vehicle: "${plateError}" beside the plate`);
  await driver.fill("#plate", "DHAKA-GA-11-2233");
  await driver.click("#vehicle-form button[type=submit]");
  await driver.waitForSelector("#vehicle-saved:has-text('Saved')");
  await driver.click("#online-button");
  await driver.waitForSelector("#online-state:has-text('Online')");
  await driver.waitForSelector("#live-state:has-text('live')", { timeout: 10_000 });

  // The rider: a bad pickup first, then fares, then booking the premium package.
  const rider = await open("rider", "/app/rider");
  await signUp(rider, "rider", "Asha Rider");
  await rider.fill("#pickup", "95, 90.4067");
  await rider.fill("#dropoff", "23.7925, 90.4078");
  const pickupError = await errorShown(rider, "#trip-form button[type=submit]", "#pickup-error");
  check(/lat/i.test(pickupError), `preview: "${pickupError}" beside the pickup`);
  await rider.fill("#pickup", "23.7808, 90.4067");
  await rider.click("#trip-form button[type=submit]");
  await rider.waitForSelector("#fares input[value=premium]");
  const fares = await rider.locator("#fares label").allTextContents();
  check(fares.length === 4 && fares.every((f) => /৳\d/.test(f)), `the fare of every package, as money: ${fares.join(" | ")}`);
  await rider.check("#fares input[value=premium]");
  // A declined card: the provider's message, beside the payment method; then a good card.
  await rider.selectOption("#payment_method", "pm_card_chargeDeclined");
  const declined = await errorShown(rider, "#book-button", "#payment_method-error");
  check(/declined/i.test(declined), `booking: "${declined}" beside the payment method`);
  check((await rider.$("#trip-card:not([hidden])")) === null, "a declined card books no trip");
  await rider.selectOption("#payment_method", "pm_card_visa");
  await rider.click("#book-button");
  await rider.waitForSelector("#trip-card:not([hidden])");

  // The offer reaches the driver's page, who accepts it.
  await driver.waitForSelector("#offer-card:not([hidden])", { timeout: 30_000 });
  await driver.waitForSelector("#offer-countdown:has-text('s to answer')");
  check(/\d+ s to answer/.test(await driver.textContent("#offer-countdown")), `the offer counts down: ${await driver.textContent("#offer-countdown")}`);
  await driver.click("#accept-button");
  await driver.waitForSelector("#trip-card[data-status=driver_assigned]");
  await rider.waitForSelector("#trip-card[data-status=driver_assigned]", { timeout: 10_000 });

  // The driver's marker moves on the rider's map.
  await rider.waitForSelector("path.marker-driver", { timeout: 10_000 });
  const where = async () => rider.$eval("path.marker-driver", (p) => p.getAttribute("d"));
  const before = await where();
  await rider.waitForFunction((d) => document.querySelector("path.marker-driver")?.getAttribute("d") !== d, before, { timeout: 10_000 });
  check(true, "the driver's marker moves on the rider's map");
  check(/min/.test(await rider.textContent("#trip-eta")) || /pickup/.test(await rider.textContent("#trip-eta")), `the rider sees an ETA: ${await rider.textContent("#trip-eta")}`);

  // The cancel terms are shown before a cancel; the rider keeps the trip.
  await rider.click("#cancel-button");
  await rider.waitForSelector("#cancel-confirm:not([hidden])");
  check(/free until/.test(await rider.textContent("#cancel-terms")), `cancel terms: ${await rider.textContent("#cancel-terms")}`);
  await rider.click("#cancel-no");

  // Arrive once the simulated drive is near the pickup (a 409 names the distance until then).
  for (let i = 0; i < 40; i += 1) {
    if ((await driver.getAttribute("#trip-card", "data-status")) === "arrived") break;
    await driver.click("#arrive-button").catch(() => {});
    await driver.waitForTimeout(1000);
  }
  await driver.waitForSelector("#trip-card[data-status=arrived]");
  await rider.waitForSelector("#trip-card[data-status=arrived]", { timeout: 10_000 });
  await driver.click("#start-button");
  await rider.waitForSelector("#trip-card[data-status=in_progress]", { timeout: 10_000 });
  await driver.click("#complete-button");
  await driver.waitForSelector("#trip-card[data-status=completed]");
  await rider.waitForSelector("#trip-card[data-status=completed]", { timeout: 10_000 });

  // Both rate: without stars first (the API's message beside the stars), then five.
  for (const [page, who] of [[rider, "rider"], [driver, "driver"]]) {
    await page.waitForSelector("#rate-form");
    const starsError = await errorShown(page, "#rate-form button[type=submit]", "#rate-stars-error");
    check(/stars/.test(starsError), `${who}'s rating: "${starsError}" beside the stars`);
    await page.check('#rate-form input[name=stars][value="5"]');
    await page.click("#rate-form button[type=submit]");
    await page.waitForSelector("#rated");
  }
  await rider.screenshot({ path: `${shots}/rider.png` });
  await driver.screenshot({ path: `${shots}/driver.png` });

  // The receipt and the earnings (payment settles after the trip, from the bus).
  for (let i = 0; ; i += 1) {
    await rider.reload();
    await rider.waitForSelector("#history li");
    if (/paid ৳/.test(await rider.textContent("#history"))) break;
    check(i < 20, "the rider's history shows the paid fare");
    await rider.waitForTimeout(500);
  }
  check(true, `receipt: ${(await rider.textContent("#history li")).trim()}`);
  for (let i = 0; ; i += 1) {
    await driver.reload();
    await driver.waitForSelector("#earnings-total:has-text('৳')");
    if (!/৳0\.00/.test(await driver.textContent("#earnings-total"))) break;
    check(i < 20, "the driver's earnings grow");
    await driver.waitForTimeout(500);
  }
  check(true, `earnings: ${await driver.textContent("#earnings-total")}`);
  check(/Online/.test(await driver.textContent("#online-state")), "the driver is still online after a reload");
  // The rider's app on a phone-sized screen (the same session).
  const phone = await rider.context().newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${base}/app/rider`);
  await phone.waitForSelector("#history li");
  await phone.screenshot({ path: `${shots}/rider-phone.png`, fullPage: true });

  // The operations map: a wrong password, then the admin.
  const ops = await open("ops", "/app/ops");
  check((await ops.$("#signup-form")) === null, "no sign-up on the operations map");
  await ops.fill("#login-email", adminEmail);
  await ops.fill("#login-password", "not the password");
  const loginError = await errorShown(ops, "#login-form button[type=submit]", "#login-error");
  check(/email or password/i.test(loginError), `log-in: "${loginError}"`);
  await ops.fill("#login-password", adminPassword);
  await ops.click("#login-form button[type=submit]");
  await ops.waitForSelector("#app:not([hidden])");
  const admin = (await api("POST", "/v1/auth/login", { email: adminEmail, password: adminPassword })).body.access_token;
  let agreed = null;
  for (let i = 0; i < 40 && !agreed; i += 1) {
    await ops.waitForTimeout(500);
    const page = await ops.evaluate(() => ({
      drivers: window.rickshawOps.drivers.size,
      shown: Number(document.getElementById("fig-drivers_online").textContent),
      legend: ["free", "offered", "on_trip"].map((s) => Number(document.getElementById(`count-${s}`).textContent)).reduce((a, b) => a + b, 0),
      frames: window.rickshawOps.frames,
    }));
    const city = (await api("GET", "/v1/admin/city", undefined, admin)).body;
    if (page.drivers >= botDrivers + 1 && page.drivers === city.drivers.length && page.legend === page.drivers && page.shown === city.figures.drivers_online) {
      agreed = { page, api: city.figures };
    }
  }
  check(agreed, `the map shows the bot's ${botDrivers} drivers and ours, as the API counts them: ${JSON.stringify(agreed)}`);
  check(agreed.page.frames > 1, "the map is live (frames after the first)");
  await ops.waitForFunction(() => Number(document.getElementById("course-requests_per_minute").textContent) > 0 && document.querySelectorAll("#matches li").length > 0, undefined, { timeout: 15_000 });
  check(true, `the course panel: ${await ops.textContent("#course-requests_per_minute")} requests a minute, matches listed`);
  await ops.screenshot({ path: `${shots}/ops.png` });
  const forbidden = await api("GET", "/v1/admin/city", undefined, null);
  check(forbidden.status === 401, "the city is for admins: 401 without a token");

  check(errors.length === 0, `no errors on any page${errors.length ? `: ${errors.join("; ")}` : ""}`);
  console.log("ALL CHECKS PASSED");
} catch (e) {
  console.log(`FAILED: ${e.message}`);
  console.log(`errors seen: ${JSON.stringify(errors)}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
