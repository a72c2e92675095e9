// The rider app: choose pickup and drop-off on the map, see every package's fare, book (paying
// with one of the provider's test cards), watch the search, the offer and the driver coming,
// cancel with the fee shown first, rate the driver, and read past trips and receipts.

import { ApiError, LiveSocket, clearErrors, dateTime, distance, el, idempotencyKey, metresBetween, money, showError, time } from "./api.js";
import { createMap, dot } from "./map.js";
import { startPage } from "./page.js";
import { ratingForm } from "./rating.js";

const $ = (id) => document.getElementById(id);
const OPEN = new Set(["searching", "offered", "driver_assigned", "arrived", "in_progress"]);
const CANCELLABLE = new Set(["searching", "offered", "driver_assigned", "arrived"]);
const STATUS = {
  searching: "Finding you a driver…",
  offered: "Asking a driver nearby…",
  driver_assigned: "Your driver is on the way",
  arrived: "Your driver is at the pickup",
  in_progress: "On your way to the drop-off",
  completed: "You have arrived",
  cancelled: "Cancelled",
  no_drivers_found: "No driver was free nearby; try again in a moment",
};
const COLOURS = { pickup: "#15803d", dropoff: "#be123c", driver: "#1d4ed8" };

startPage("rider", { onReady: start });

const round = (x) => Math.round(x * 1e5) / 1e5;
const packageName = (p) => p.charAt(0).toUpperCase() + p.slice(1);

/// "23.78, 90.40" → {lat, lng}; anything else is sent as typed, for the API to name.
function parsePlace(text) {
  const trimmed = text.trim();
  if (!trimmed) return undefined;
  const parts = trimmed.split(",").map((s) => Number(s.trim()));
  return parts.length === 2 && parts.every(Number.isFinite) ? { lat: parts[0], lng: parts[1] } : trimmed;
}

async function start(client) {
  const map = await createMap($("map"));
  const tripForm = $("trip-form");
  const bookForm = $("book-form");
  const markers = {};
  let route = null;
  let next = "pickup";
  let preview = null;
  let trip = null;
  let driverAt = null;
  let pendingConfirm = null;

  function mark(name, at) {
    if (!at) {
      markers[name]?.remove();
      delete markers[name];
      return;
    }
    if (markers[name]) markers[name].setLatLng(at);
    else markers[name] = dot(at, { color: COLOURS[name], radius: name === "driver" ? 9 : 7, className: `marker-${name}` }).bindTooltip(name === "dropoff" ? "Drop-off" : packageName(name)).addTo(map);
  }

  function drawRoute(a, b) {
    route?.remove();
    route = a && b ? L.polyline([a, b], { color: "#0b6e4f", weight: 4, opacity: 0.7, dashArray: "6 6" }).addTo(map) : null;
  }

  function placesFromInputs() {
    const pickup = parsePlace($("pickup").value);
    const dropoff = parsePlace($("dropoff").value);
    mark("pickup", typeof pickup === "object" ? pickup : null);
    mark("dropoff", typeof dropoff === "object" ? dropoff : null);
    drawRoute(typeof pickup === "object" && pickup, typeof dropoff === "object" && dropoff);
    return { pickup, dropoff };
  }

  map.on("click", (event) => {
    if (trip && OPEN.has(trip.status)) return;
    const at = `${round(event.latlng.lat)}, ${round(event.latlng.lng)}`;
    $(next).value = at;
    next = next === "pickup" ? "dropoff" : "pickup";
    placesFromInputs();
    bookForm.hidden = true;
  });
  for (const id of ["pickup", "dropoff"]) $(id).addEventListener("change", placesFromInputs);

  tripForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(tripForm);
    const body = placesFromInputs();
    try {
      preview = await client.call("POST", "/v1/trips/preview", body);
      showFares();
    } catch (e) {
      showError(tripForm, e);
    }
  });

  function showFares() {
    const fares = preview.fares.map((f, i) =>
      el("label", { class: "choice" },
        el("input", { type: "radio", name: "package", value: f.package, checked: i === 0 }),
        packageName(f.package),
        el("span", { class: "price" }, money(f.fare, f.currency))),
    );
    $("fares").replaceChildren(...fares);
    const minutes = Math.max(1, Math.round(preview.route.duration_s / 60));
    $("route-summary").textContent = `${distance(preview.route.distance_m)}, about ${minutes} min · prices held until ${time(preview.expires_at)}`;
    clearErrors(bookForm);
    $("confirm-payment").hidden = true;
    bookForm.hidden = false;
  }

  $("change-route").addEventListener("click", () => {
    bookForm.hidden = true;
    $("pickup").focus();
  });

  async function book() {
    clearErrors(bookForm);
    const data = new FormData(bookForm);
    const body = { quote_id: preview.quote_id, package: data.get("package"), payment_method: data.get("payment_method") };
    try {
      const booked = await client.call("POST", "/v1/trips", body, { "Idempotency-Key": idempotencyKey() });
      $("confirm-payment").hidden = true;
      showTrip(booked);
    } catch (e) {
      if (e.status === 402 && e.body?.error?.next_action === "confirm") {
        pendingConfirm = e.body.error.trip_id;
        $("confirm-payment").hidden = false;
        $("confirm-button").focus();
        return;
      }
      // A declined card is the payment method's problem: say so beside it.
      if (e.status === 402 && !e.field) e.field = "payment_method";
      showError(bookForm, e);
    }
  }

  bookForm.addEventListener("submit", (event) => {
    event.preventDefault();
    book();
  });

  $("confirm-button").addEventListener("click", async () => {
    try {
      await client.call("POST", `/v1/payments/${pendingConfirm}/confirm`);
      await book();
    } catch (e) {
      showError(bookForm, e);
    }
  });

  function eta() {
    if (!trip || !driverAt || !["driver_assigned", "arrived", "in_progress"].includes(trip.status)) return "—";
    if (trip.status === "arrived") return "at the pickup";
    const target = trip.status === "in_progress" ? trip.dropoff : trip.pickup;
    const metres = metresBetween(driverAt, target);
    const speed = trip.route.duration_s > 0 ? Math.max(trip.route.distance_m / trip.route.duration_s, 3) : 7;
    const minutes = Math.max(1, Math.round(metres / speed / 60));
    return `about ${minutes} min (${distance(metres)} away)`;
  }

  function showTrip(next) {
    if (trip && next.id === trip.id && next.version < trip.version) return;
    const rating = next.driver_rating || (trip && trip.id === next.id ? trip.driver_rating : undefined);
    trip = { ...next, driver_rating: rating };
    const open = OPEN.has(trip.status);
    tripForm.hidden = open;
    bookForm.hidden = true;
    $("trip-card").hidden = false;
    $("trip-card").dataset.status = trip.status;
    let status = STATUS[trip.status] || trip.status;
    if (trip.status === "cancelled") {
      const fee = trip.cancellation_fee?.amount ? ` — a fee of ${money(trip.cancellation_fee)} was charged` : " — no fee";
      status = `Cancelled by the ${trip.cancelled_by || "rider"}${fee}`;
    }
    $("trip-status").textContent = status;
    $("trip-fare").textContent = money(trip.fare);
    $("trip-package").textContent = packageName(trip.package);
    $("trip-driver").textContent = trip.driver_id
      ? trip.driver_rating?.average != null ? `rated ${trip.driver_rating.average.toFixed(2)} ★ (${trip.driver_rating.count})` : "assigned (no ratings yet)"
      : "not yet";
    $("trip-eta").textContent = eta();
    $("cancel-button").hidden = !CANCELLABLE.has(trip.status);
    $("cancel-confirm").hidden = true;
    $("new-trip").hidden = open;
    mark("pickup", trip.pickup);
    mark("dropoff", trip.dropoff);
    drawRoute(trip.pickup, trip.dropoff);
    if (!["driver_assigned", "arrived", "in_progress"].includes(trip.status)) {
      driverAt = null;
      mark("driver", null);
    }
    if (trip.status === "completed" && !$("rate-form") && !$("rated")) ratingForm($("rate-slot"), client, trip.id, "driver");
    if (!open) loadHistory();
  }

  $("new-trip").addEventListener("click", () => {
    $("trip-card").hidden = true;
    $("rate-slot").replaceChildren();
    tripForm.hidden = false;
    trip = null;
    mark("driver", null);
  });

  $("cancel-button").addEventListener("click", async () => {
    clearErrors($("trip-card"));
    try {
      const fresh = await client.call("GET", `/v1/trips/${trip.id}`);
      showTrip(fresh);
      let terms = "Cancelling is free: no driver is on the way yet.";
      if (fresh.free_cancel_until && Date.now() > fresh.free_cancel_until) {
        terms = `Cancelling now costs ${money(fresh.late_cancel_fee)}: your driver has been on the way since ${time(fresh.assigned_at)}.`;
      } else if (fresh.free_cancel_until) {
        terms = `Cancelling is free until ${time(fresh.free_cancel_until)}; after that it costs ${money(fresh.late_cancel_fee)}.`;
      }
      $("cancel-terms").textContent = terms;
      $("cancel-confirm").hidden = false;
      $("cancel-no").focus();
    } catch (e) {
      showError($("trip-card"), e);
    }
  });
  $("cancel-no").addEventListener("click", () => {
    $("cancel-confirm").hidden = true;
  });
  $("cancel-yes").addEventListener("click", async () => {
    try {
      showTrip(await client.call("POST", `/v1/trips/${trip.id}/cancel`, undefined, { "Idempotency-Key": idempotencyKey() }));
    } catch (e) {
      showError($("trip-card"), e);
    }
  });

  async function loadHistory() {
    try {
      const [{ trips }, { payments }] = await Promise.all([
        client.call("GET", "/v1/trips?limit=20"),
        client.call("GET", "/v1/me/payments"),
      ]);
      const paid = new Map(payments.map((p) => [p.trip_id, p]));
      $("history").replaceChildren(
        ...trips.map((t) => {
          const p = paid.get(t.id);
          let receipt = "";
          if (p?.captured?.amount) receipt = ` · paid ${money(p.captured)}${p.charged_for === "fee" ? " (fee)" : ""}`;
          else if (p && ["authorized", "authorizing"].includes(p.status)) receipt = ` · ${money(p.held)} held on your card`;
          if (p?.refunded?.amount) receipt += ` · refunded ${money(p.refunded)}`;
          return el("li", { "data-trip": t.id }, `${dateTime(t.requested_at)} · ${packageName(t.package)} · ${STATUS[t.status] ? t.status.replaceAll("_", " ") : t.status} · fare ${money(t.fare)}${receipt}`);
        }),
      );
      if (trips.length === 0) $("history").replaceChildren(el("li", {}, "No trips yet."));
      return trips;
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      return [];
    }
  }

  const trips = await loadHistory();
  if (trips[0] && OPEN.has(trips[0].status)) showTrip(await client.call("GET", `/v1/trips/${trips[0].id}`));

  const live = new LiveSocket(client, "/v1/ws", (frame) => {
    if (frame.type === "driver.position" && trip && frame.driver_id === trip.driver_id) {
      driverAt = frame.position;
      mark("driver", driverAt);
      $("trip-eta").textContent = eta();
    } else if (frame.type?.startsWith("trip.") && frame.trip) {
      if (!trip || frame.trip.id === trip.id || OPEN.has(frame.trip.status)) {
        showTrip({ ...frame.trip, driver_rating: frame.driver_rating || frame.trip.driver_rating });
      }
    }
  }, { onState: (s) => ($("live-state").textContent = `Live updates: ${s}`) });
  live.open();
}
