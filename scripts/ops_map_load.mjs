// Does the operations map keep up with the bots at full speed? Opens /app/ops in headless Chromium
// (playwright-core from target/test-node, as the tests install it) against a running Rickshaw,
// logs in as an admin, and measures for a while: map updates applied a second, socket frames a
// second, animation frames a second (60 is a page that never freezes), long tasks (> 50 ms: the
// page did not respond for that long) and their worst. docs/BENCHMARKS.md ("The operations map")
// has the recipe and the figures.
//
// usage: node scripts/ops_map_load.mjs <url> <admin email> <admin password> [seconds=30]

import { createRequire } from "node:module";

const require = createRequire(new URL("../target/test-node/", import.meta.url));
const { chromium } = require("playwright-core");

const [base, email, password, secondsArg = "30"] = process.argv.slice(2);
const seconds = Number(secondsArg);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await (await browser.newContext({ viewport: { width: 1280, height: 860 } })).newPage();
const errors = [];
page.on("pageerror", (e) => errors.push(e.message));
await page.goto(`${base}/app/ops`);
await page.fill("#login-email", email);
await page.fill("#login-password", password);
await page.click("#login-form button[type=submit]");
await page.waitForSelector("#app:not([hidden])");
await page.waitForFunction(() => window.rickshawOps && window.rickshawOps.frames > 0, undefined, { timeout: 30_000 });
await page.evaluate(() => {
  const m = (window.__load = { raf: 0, long: [], start: performance.now(), frames: window.rickshawOps.frames, updates: window.rickshawOps.updates });
  new PerformanceObserver((list) => list.getEntries().forEach((e) => m.long.push(e.duration))).observe({ type: "longtask", buffered: false });
  const tick = () => {
    m.raf += 1;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
});
for (let s = 1; s <= seconds; s += 1) {
  await page.waitForTimeout(1000);
  if (s % 10 === 0) process.stderr.write(`[${s}s] measuring…\n`);
}
const result = await page.evaluate(() => {
  const m = window.__load;
  const elapsed = (performance.now() - m.start) / 1000;
  const ops = window.rickshawOps;
  return {
    seconds: Number(elapsed.toFixed(1)),
    updates_per_s: Math.round((ops.updates - m.updates) / elapsed),
    socket_frames_per_s: Number(((ops.frames - m.frames) / elapsed).toFixed(1)),
    animation_frames_per_s: Math.round(m.raf / elapsed),
    long_tasks: m.long.length,
    worst_long_task_ms: Math.round(Math.max(0, ...m.long)),
    drivers_drawn: ops.drivers.size,
    open_trips: ops.trips.size,
  };
});
await page.screenshot({ path: "target/ops-map-load.png" });
await browser.close();
console.log(JSON.stringify({ ...result, page_errors: errors }));
