// The driver app: a vehicle, online and offline, the car's position (this device's, or a
// simulated drive for demos), offers with a countdown, accept or decline, arrive, start,
// complete, rate the rider, and earnings.

import { LiveSocket, clearErrors, distance, el, idempotencyKey, metresBetween, money, showError } from "./api.js";
import { createMap, dot, siteConfig } from "./map.js";
import { startPage } from "./page.js";
import { ratingForm } from "./rating.js";

const $ = (id) => document.getElementById(id);
const DRIVING = new Set(["driver_assigned", "arrived", "in_progress"]);
const STATUS = {
  driver_assigned: "Drive to the pickup",
  arrived: "Waiting for the rider at the pickup",
  in_progress: "Driving to the drop-off",
  completed: "Trip completed",
  cancelled: "Trip cancelled",
  searching: "You cancelled: the trip goes to another driver",
};

startPage("driver", { onReady: start });

async function start(client) {
  const map = await createMap($("map"));
  const config = await siteConfig();
  const markers = {};
  let position = null;
  let online = false;
  let offer = null;
  let trip = null;
  let watch = null;

  function mark(name, at, colour, radius = 7) {
    if (!at) {
      markers[name]?.remove();
      delete markers[name];
      return;
    }
    if (markers[name]) markers[name].setLatLng(at);
    else markers[name] = dot(at, { color: colour, radius, className: `marker-${name}` }).bindTooltip(name === "car" ? "You" : name).addTo(map);
  }

  // The vehicle.
  const vehicleForm = $("vehicle-form");
  const me = await client.call("GET", "/v1/me");
  if (me.vehicle) {
    $("package").value = me.vehicle.package;
    $("plate").value = me.vehicle.plate;
    $("model").value = me.vehicle.model;
  }
  vehicleForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(vehicleForm);
    const data = new FormData(vehicleForm);
    try {
      const account = await client.call("PUT", "/v1/drivers/me/vehicle", { package: data.get("package"), plate: data.get("plate"), model: data.get("model") });
      $("vehicle-saved").textContent = `Saved: ${account.vehicle.model}, ${account.vehicle.plate} (${account.vehicle.package}).`;
    } catch (e) {
      showError(vehicleForm, e);
    }
  });

  // Position: simulated or the device's.
  const source = () => document.querySelector('input[name="source"]:checked').value;
  function share() {
    if (!position) return;
    mark("car", position, "#1d4ed8", 9);
    $("position-text").textContent = `Sharing ${position.lat.toFixed(5)}, ${position.lng.toFixed(5)}`;
    if (!live.send({ type: "location", lat: position.lat, lng: position.lng })) {
      client.call("POST", "/v1/drivers/me/location", { lat: position.lat, lng: position.lng }).catch((e) => showError($("shift"), e));
    }
  }
  map.on("click", (event) => {
    if (source() !== "simulate") return;
    position = { lat: event.latlng.lat, lng: event.latlng.lng };
    share();
  });
  for (const radio of document.querySelectorAll('input[name="source"]')) {
    radio.addEventListener("change", () => {
      if (watch != null) navigator.geolocation.clearWatch(watch);
      watch = null;
      if (source() === "device") {
        watch = navigator.geolocation.watchPosition(
          (p) => {
            position = { lat: p.coords.latitude, lng: p.coords.longitude };
            share();
          },
          (e) => showError($("shift"), new Error(`this device's location is not available (${e.message}); use the simulated drive`)),
          { enableHighAccuracy: true },
        );
      }
    });
  }
  // Every second: the simulated car moves towards where the trip needs it, and is shared.
  setInterval(() => {
    if (!online && !(trip && DRIVING.has(trip.status))) return;
    if (source() === "simulate" && position && trip) {
      const target = trip.status === "driver_assigned" ? trip.pickup : trip.status === "in_progress" ? trip.dropoff : null;
      if (target) {
        const metres = metresBetween(position, target);
        const step = Number($("speed").value);
        const f = metres <= step ? 1 : step / metres;
        position = { lat: position.lat + (target.lat - position.lat) * f, lng: position.lng + (target.lng - position.lng) * f };
      }
    }
    share();
    if (trip) showNext();
  }, 1000);

  // Online and offline.
  async function setOnline(want) {
    clearErrors($("shift"));
    try {
      if (want && !position && source() === "simulate") {
        // Somewhere near the city's centre, until the map is clicked.
        const [lat, lng] = config.centre;
        position = { lat: lat + (Math.random() - 0.5) * 0.02, lng: lng + (Math.random() - 0.5) * 0.02 };
      }
      if (want) share();
      await client.call("POST", "/v1/drivers/me/status", { status: want ? "online" : "offline" });
      online = want;
      localStorage.setItem(onlineKey, want ? "1" : "");
      $("online-state").textContent = online ? "Online: waiting for offers" : "Offline";
      $("online-button").textContent = online ? "Go offline" : "Go online";
      $("online-button").classList.toggle("secondary", online);
    } catch (e) {
      showError($("shift"), e);
    }
  }
  $("online-button").addEventListener("click", () => setOnline(!online));
  const onlineKey = `rickshaw.online.${client.account.id}`;

  // Offers.
  function showOffer(next) {
    offer = next;
    $("offer-card").hidden = false;
    clearErrors($("offer-card"));
    $("offer-fare").textContent = money(offer.fare);
    $("offer-pickup").textContent = position ? `${distance(metresBetween(position, offer.pickup))} away` : "nearby";
    $("offer-route").textContent = `${distance(offer.route.distance_m)}, about ${Math.max(1, Math.round(offer.route.duration_s / 60))} min`;
    mark("pickup", offer.pickup, "#15803d");
    mark("dropoff", offer.dropoff, "#be123c");
    countDown();
    $("accept-button").focus();
  }
  function hideOffer() {
    offer = null;
    $("offer-card").hidden = true;
    if (!trip) {
      mark("pickup", null);
      mark("dropoff", null);
    }
  }
  function countDown() {
    if (!offer) return;
    const left = Math.ceil((offer.offer_expires_at - Date.now()) / 1000);
    if (left <= 0) hideOffer();
    else $("offer-countdown").textContent = `${left} s to answer`;
  }
  setInterval(countDown, 250);
  $("accept-button").addEventListener("click", async () => {
    try {
      const accepted = await client.call("POST", `/v1/trips/${offer.id}/accept`, undefined, { "Idempotency-Key": idempotencyKey() });
      hideOffer();
      showTrip(accepted);
    } catch (e) {
      showError($("offer-card"), e);
    }
  });
  $("decline-button").addEventListener("click", async () => {
    try {
      await client.call("POST", `/v1/trips/${offer.id}/decline`, undefined, { "Idempotency-Key": idempotencyKey() });
    } catch (e) {
      showError($("offer-card"), e);
      return;
    }
    hideOffer();
  });

  // The trip.
  function showNext() {
    const target = trip.status === "driver_assigned" ? trip.pickup : trip.status === "in_progress" ? trip.dropoff : null;
    $("trip-next").textContent = target && position ? `${distance(metresBetween(position, target))} to go` : trip.status === "arrived" ? "start when the rider is in" : "—";
  }
  function showTrip(next) {
    if (trip && next.id === trip.id && next.version < trip.version) return;
    trip = next;
    const card = $("trip-card");
    card.hidden = false;
    card.dataset.status = trip.status;
    let status = STATUS[trip.status] || trip.status.replaceAll("_", " ");
    if (trip.status === "cancelled") {
      status = trip.cancelled_by === "driver" ? "You cancelled: the rider did not come" : "The rider cancelled";
      if (trip.cancellation_fee?.amount) status += ` (fee ${money(trip.cancellation_fee)})`;
    }
    $("trip-status").textContent = status;
    $("trip-fare").textContent = money(trip.fare);
    $("arrive-button").hidden = trip.status !== "driver_assigned";
    $("start-button").hidden = trip.status !== "arrived";
    $("complete-button").hidden = trip.status !== "in_progress";
    $("cancel-button").hidden = !["driver_assigned", "arrived"].includes(trip.status);
    $("done-button").hidden = DRIVING.has(trip.status);
    mark("pickup", DRIVING.has(trip.status) ? trip.pickup : null, "#15803d");
    mark("dropoff", DRIVING.has(trip.status) ? trip.dropoff : null, "#be123c");
    showNext();
    if (trip.status === "completed") {
      if (!$("rate-form") && !$("rated")) ratingForm($("rate-slot"), client, trip.id, "rider");
      loadEarnings();
    }
  }
  for (const action of ["arrive", "start", "complete", "cancel"]) {
    $(`${action}-button`).addEventListener("click", async () => {
      clearErrors($("trip-card"));
      try {
        showTrip(await client.call("POST", `/v1/trips/${trip.id}/${action}`, undefined, { "Idempotency-Key": idempotencyKey() }));
      } catch (e) {
        showError($("trip-card"), e);
      }
    });
  }
  $("done-button").addEventListener("click", () => {
    trip = null;
    $("trip-card").hidden = true;
    $("rate-slot").replaceChildren();
  });

  async function loadEarnings() {
    try {
      const earnings = await client.call("GET", "/v1/drivers/me/earnings");
      $("earnings-total").textContent = `${money(earnings.total)} in all`;
      $("earnings-days").replaceChildren(
        ...earnings.days.map((d) => el("li", {}, `${d.day}: ${money(d.amount)} from ${d.trips} ${d.trips === 1 ? "trip" : "trips"}`)),
      );
    } catch (e) {
      showError($("shift"), e);
    }
  }

  const live = new LiveSocket(client, "/v1/ws", (frame) => {
    if (!frame.type?.startsWith("trip.") || !frame.trip) return;
    if (frame.type === "trip.offered") showOffer(frame.trip);
    else if (frame.type === "trip.offer_withdrawn") {
      if (offer?.id === frame.trip.id) hideOffer();
    } else showTrip(frame.trip);
  }, { onState: (s) => ($("live-state").textContent = `Live updates: ${s}`) });
  live.open();
  // Online before a reload: online again (going online twice is harmless).
  if (localStorage.getItem(onlineKey)) setOnline(true);

  loadEarnings();
  const { trips } = await client.call("GET", "/v1/trips?limit=5");
  const current = trips.find((t) => DRIVING.has(t.status));
  if (current) showTrip(current);
  const offered = trips.find((t) => t.status === "offered" && t.offer_expires_at > Date.now());
  if (offered && !current) showOffer(offered);
}
