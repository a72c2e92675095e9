// The operations map: drivers by state, riders waiting, demand and supply per H3 cell, the
// headline figures, the course protocol's pool and every match as it happens. Frames from
// `/v1/admin/city/live` are queued and applied once per animation frame, so hundreds of updates
// a second cost one redraw.

import { LiveSocket, el, time } from "./api.js";
import { createMap, dot } from "./map.js";
import { startPage } from "./page.js";

const $ = (id) => document.getElementById(id);
const COLOURS = { free: "#15803d", offered: "#b45309", on_trip: "#1d4ed8", waiting: "#be123c" };
const WAITING = new Set(["searching", "offered"]);

startPage("admin", { signUp: false, onReady: start });

async function start(client) {
  const map = await createMap($("map"), { canvas: true });
  const cellsLayer = L.layerGroup().addTo(map);
  const tripsLayer = L.layerGroup().addTo(map);
  const driversLayer = L.layerGroup().addTo(map);
  const drivers = new Map(); // id → {dot, marker}
  const trips = new Map(); // id → {trip, marker}
  let queue = [];
  let flashes = 0;
  let scheduled = false;
  // For tests and the curious: what the page holds.
  window.rickshawOps = { drivers, trips, frames: 0, updates: 0 };

  function putDriver(d) {
    const known = drivers.get(d.id);
    if (!d.position) {
      if (known) known.dot = d;
      else drivers.set(d.id, { dot: d, marker: null });
      return;
    }
    const colour = COLOURS[d.state];
    if (known?.marker) {
      known.marker.setLatLng(d.position);
      if (known.dot.state !== d.state) known.marker.setStyle({ color: colour, fillColor: colour });
      known.dot = d;
    } else {
      const marker = dot(d.position, { color: colour, radius: 5 }).bindTooltip(() => `Driver ${d.id.slice(-6)}: ${drivers.get(d.id)?.dot.state.replace("_", " ")}`);
      marker.addTo(driversLayer);
      drivers.set(d.id, { dot: d, marker });
    }
  }
  function dropDriver(id) {
    drivers.get(id)?.marker?.remove();
    drivers.delete(id);
  }
  function putTrip(t) {
    const known = trips.get(t.id);
    if (known) {
      known.trip = t;
      if (!WAITING.has(t.status)) {
        known.marker?.remove();
        known.marker = null;
      }
      return;
    }
    const marker = WAITING.has(t.status) ? dot(t.pickup, { color: COLOURS.waiting, radius: 4 }).addTo(tripsLayer) : null;
    trips.set(t.id, { trip: t, marker });
  }
  function dropTrip(id) {
    trips.get(id)?.marker?.remove();
    trips.delete(id);
  }
  function addMatch(m) {
    const text = m.protocol === "course"
      ? `${time(m.at)} · course: ${m.rider} with ${m.driver}, ${m.pickup_distance.toFixed(1)} units away`
      : `${time(m.at)} · trip ${m.trip_id.slice(-6)} assigned after ${(m.wait_ms / 1000).toFixed(1)} s`;
    const list = $("matches");
    list.prepend(el("li", {}, text));
    while (list.children.length > 20) list.lastChild.remove();
    // A pairing flashes as a line from the driver to the pickup (at most 50 at once).
    if (m.protocol === "product" && m.driver_position && flashes < 50) {
      const line = L.polyline([m.driver_position, m.pickup], { color: COLOURS.offered, weight: 2 }).addTo(tripsLayer);
      flashes += 1;
      setTimeout(() => {
        line.remove();
        flashes -= 1;
      }, 3000);
    }
  }
  function showFigures(figures) {
    for (const [key, value] of Object.entries(figures)) {
      const slot = $(`fig-${key}`);
      if (!slot) continue;
      slot.textContent = value == null ? "—" : key.endsWith("_ms") ? `${(value / 1000).toFixed(1)} s` : String(value);
    }
    for (const [key, value] of Object.entries(figures.course)) {
      const slot = $(`course-${key}`);
      if (slot) slot.textContent = String(value);
    }
  }
  function showCells(cells) {
    cellsLayer.clearLayers();
    for (const c of cells) {
      const pressure = c.riders_waiting - c.drivers_free;
      const colour = pressure > 0 ? COLOURS.waiting : COLOURS.free;
      const opacity = Math.min(0.5, 0.08 + 0.06 * Math.abs(pressure));
      L.polygon(c.boundary, { color: colour, weight: 1, opacity: 0.5, fillColor: colour, fillOpacity: opacity })
        .bindTooltip(`${c.riders_waiting} waiting, ${c.drivers_free} free`)
        .addTo(cellsLayer);
    }
  }
  function drawCourse(course) {
    const canvas = $("course-plot");
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, canvas.width, canvas.height);
    const points = [...course.riders, ...course.drivers];
    if (points.length === 0) return;
    const xs = points.map((p) => p.x);
    const ys = points.map((p) => p.y);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const sx = (canvas.width - 10) / Math.max(x1 - x0, 1);
    const sy = (canvas.height - 10) / Math.max(y1 - y0, 1);
    for (const [list, colour] of [[course.drivers, COLOURS.free], [course.riders, COLOURS.waiting]]) {
      g.fillStyle = colour;
      for (const p of list) g.fillRect(5 + (p.x - x0) * sx - 1.5, canvas.height - 5 - (p.y - y0) * sy - 1.5, 3, 3);
    }
  }
  function apply(frame) {
    if (frame.type === "snapshot") {
      const s = frame.snapshot;
      for (const id of [...drivers.keys()]) dropDriver(id);
      for (const id of [...trips.keys()]) dropTrip(id);
      s.drivers.forEach(putDriver);
      s.trips.forEach(putTrip);
      $("matches").replaceChildren();
      s.matches.forEach(addMatch);
      showFigures(s.figures);
      showCells(s.cells);
      drawCourse(s.course);
    } else if (frame.type === "changes") {
      const c = frame.changes;
      c.drivers.forEach(putDriver);
      c.drivers_gone.forEach(dropDriver);
      c.trips.forEach(putTrip);
      c.trips_gone.forEach(dropTrip);
      c.matches.forEach(addMatch);
      window.rickshawOps.updates += c.drivers.length + c.drivers_gone.length + c.trips.length + c.trips_gone.length + c.matches.length;
    } else if (frame.type === "figures") {
      showFigures(frame.figures);
      showCells(frame.cells);
      drawCourse(frame.course);
    }
  }
  function flush() {
    scheduled = false;
    const frames = queue;
    queue = [];
    for (const frame of frames) apply(frame);
    window.rickshawOps.frames += frames.length;
    const counts = { free: 0, offered: 0, on_trip: 0 };
    for (const { dot: d } of drivers.values()) counts[d.state] += 1;
    for (const [state, n] of Object.entries(counts)) $(`count-${state}`).textContent = String(n);
    let waiting = 0;
    for (const { trip } of trips.values()) if (WAITING.has(trip.status)) waiting += 1;
    $("count-waiting").textContent = String(waiting);
  }

  const live = new LiveSocket(client, "/v1/admin/city/live", (frame) => {
    queue.push(frame);
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(flush);
    }
  }, { replay: false, onState: (s) => ($("live-state").textContent = `Live updates: ${s}`) });
  live.open();
}
