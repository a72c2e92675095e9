//! The product bot's riders and drivers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::client::{Agent, Failed, Socket};
use super::{Ctx, LatLng, NOTICE_GRACE, POLL_AFTER, POSITION_REFRESH, WIND_DOWN_GRACE, lock};

pub(super) enum Ready {
    Driver(Driver),
    Rider(Rider),
}

pub(super) struct Driver {
    agent: Arc<Agent>,
    socket: Socket,
    package: String,
    position: LatLng,
}

pub(super) struct Rider {
    agent: Arc<Agent>,
    socket: Socket,
}

pub(super) async fn set_up_driver(
    ctx: Arc<Ctx>,
    n: u32,
    package: String,
) -> Result<Driver, String> {
    let agent = Arc::new(
        Agent::create(&ctx, "driver", n)
            .await
            .map_err(|e| format!("driver sign-up or login: {e}"))?,
    );
    let vehicle = json!({
        "package": package,
        "plate": format!("BOT-{}-{n}", ctx.run_id),
        "model": "Toyota Axio",
    });
    agent
        .call(Method::PUT, "/v1/drivers/me/vehicle", Some(&vehicle))
        .await
        .map_err(|e| format!("setting a vehicle: {e}"))?;
    // Listening before going online, so no offer is missed.
    let socket = Socket::open(agent.clone()).await?;
    agent
        .call(
            Method::POST,
            "/v1/drivers/me/status",
            Some(&json!({"status": "online"})),
        )
        .await
        .map_err(|e| format!("going online: {e}"))?;
    let position = ctx.random_position();
    agent
        .call(
            Method::POST,
            "/v1/drivers/me/location",
            Some(&position.json()),
        )
        .await
        .map_err(|e| format!("reporting a position: {e}"))?;
    Ok(Driver {
        agent,
        socket,
        package,
        position,
    })
}

pub(super) async fn set_up_rider(ctx: Arc<Ctx>, n: u32) -> Result<Rider, String> {
    let agent = Arc::new(
        Agent::create(&ctx, "rider", n)
            .await
            .map_err(|e| format!("rider sign-up or login: {e}"))?,
    );
    let socket = Socket::open(agent.clone()).await?;
    Ok(Rider { agent, socket })
}

/// Answers offers until the run ends, then goes offline.
pub(super) async fn driver_loop(ctx: Arc<Ctx>, mut driver: Driver) {
    let mut refresh = tokio::time::interval(POSITION_REFRESH);
    refresh.tick().await;
    // The trips this driver completed, with their fares, for the earnings check at the end.
    let mut completed: Vec<(String, u64)> = Vec::new();
    loop {
        let notice = tokio::select! {
            () = ctx.drivers_stop.cancelled() => break,
            _ = refresh.tick() => {
                driver.socket.send_location(driver.position);
                continue;
            }
            notice = driver.socket.inbox.recv() => match notice {
                Some(notice) => notice,
                None => break,
            },
        };
        if notice["type"] != "trip.offered"
            || notice["trip"]["driver_id"].as_str() != Some(driver.agent.id.as_str())
        {
            continue;
        }
        let trip = &notice["trip"];
        let Some(trip_id) = trip["id"].as_str() else {
            continue;
        };
        {
            let mut t = lock(&ctx.tally);
            t.progress.offers_received += 1;
            if trip["package"].as_str() != Some(driver.package.as_str()) {
                t.checks.package_mismatches += 1;
                t.example("offer of another package".to_owned(), || {
                    format!("a {} driver was offered {trip}", driver.package)
                });
            }
        }
        if ctx.wind_down.is_cancelled() {
            continue; // let it lapse: the riders are cancelling
        }
        // An offer that reached the driver after it lapsed (its notice was relayed late) is gone,
        // as a driver's app shows it: nothing to answer.
        if trip["offer_expires_at"]
            .as_i64()
            .is_some_and(|expires| expires <= now_ms())
        {
            lock(&ctx.tally).progress.offers_lapsed_unseen += 1;
            continue;
        }
        ctx.step_pause().await;
        if rand::random_bool(ctx.config.decline_probability) {
            let path = format!("/v1/trips/{trip_id}/decline");
            if driver.agent.call(Method::POST, &path, None).await.is_ok() {
                lock(&ctx.tally).progress.offers_declined += 1;
            }
            continue;
        }
        if !step(&ctx, &driver.agent, trip_id, "accept").await {
            continue;
        }
        lock(&ctx.tally).progress.offers_accepted += 1;
        if drive(&ctx, &mut driver, trip_id, trip).await {
            rate(&ctx, &driver.agent, trip_id).await;
            if let Some(fare) = trip["fare"]["amount"].as_u64() {
                completed.push((trip_id.to_owned(), fare));
            }
        }
    }
    check_earnings(&ctx, &driver.agent, &completed).await;
    let _ = driver
        .agent
        .call(
            Method::POST,
            "/v1/drivers/me/status",
            Some(&json!({"status": "offline"})),
        )
        .await;
}

/// Arrive, start and complete an accepted trip, moving on the way. Stops at the first refusal
/// (the rider cancelled, say); whether the trip was completed.
async fn drive(ctx: &Ctx, driver: &mut Driver, trip_id: &str, trip: &Value) -> bool {
    let pickup = LatLng::of(&trip["pickup"]).unwrap_or(driver.position);
    let dropoff = LatLng::of(&trip["dropoff"]).unwrap_or(pickup);
    driver
        .socket
        .send_location(driver.position.towards(pickup, 0.5));
    ctx.step_pause().await;
    driver.position = pickup;
    driver.socket.send_location(pickup);
    if !arrive(ctx, driver, trip_id, pickup).await {
        return false;
    }
    ctx.step_pause().await;
    if !step(ctx, &driver.agent, trip_id, "start").await {
        return false;
    }
    driver.socket.send_location(pickup.towards(dropoff, 0.5));
    ctx.step_pause().await;
    driver.position = dropoff;
    driver.socket.send_location(dropoff);
    step(ctx, &driver.agent, trip_id, "complete").await
}

/// Arrives at `pickup`. A driver app streams its position; the bot sends one a step. If that
/// one is lost (written to a socket whose instance was stopping), the server refuses the arrival
/// as too far from the pickup while the trip still waits for it: the position is sent again and
/// the arrival tried again, as the app's next position would make it succeed.
async fn arrive(ctx: &Ctx, driver: &Driver, trip_id: &str, pickup: LatLng) -> bool {
    for _ in 0..3 {
        if step(ctx, &driver.agent, trip_id, "arrive").await {
            return true;
        }
        let path = format!("/v1/trips/{trip_id}");
        let waiting = matches!(
            driver.agent.call(Method::GET, &path, None).await,
            Ok(trip) if trip["status"] == "driver_assigned"
        );
        if !waiting {
            return false;
        }
        driver.socket.send_location(pickup);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    false
}

/// Rates the other side of a completed trip, 3 to 5 stars (best effort: a failure is counted as
/// an HTTP error like any other).
async fn rate(ctx: &Ctx, agent: &Agent, trip_id: &str) {
    let stars = rand::random_range(3..=5);
    let body = json!({"stars": stars, "tags": ["bot"]});
    let path = format!("/v1/trips/{trip_id}/rating");
    if agent.call(Method::POST, &path, Some(&body)).await.is_ok() {
        lock(&ctx.tally).progress.ratings_given += 1;
    }
}

/// How long the end-of-run checks wait for the settling of the last trips (captures follow the
/// completion notices asynchronously).
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// The rider's completed trips were each captured once, for their fare.
async fn check_payments(ctx: &Ctx, agent: &Agent, completed: &[(String, u64)]) {
    if completed.is_empty() {
        return;
    }
    let until = Instant::now() + SETTLE_WAIT;
    let mut wrong = Vec::new();
    loop {
        wrong.clear();
        match agent.call(Method::GET, "/v1/me/payments", None).await {
            Ok(list) => {
                let payments = list["payments"].as_array().cloned().unwrap_or_default();
                for (trip, fare) in completed {
                    let mine: Vec<&Value> = payments
                        .iter()
                        .filter(|p| p["trip_id"] == trip.as_str())
                        .collect();
                    let ok = mine.len() == 1
                        && mine[0]["status"] == "captured"
                        && mine[0]["captured"]["amount"].as_u64() == Some(*fare);
                    if !ok {
                        wrong.push(format!("trip {trip} (fare {fare}): {mine:?}"));
                    }
                }
            }
            Err(_) => wrong.push("GET /v1/me/payments failed".to_owned()),
        }
        if wrong.is_empty() || Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut t = lock(&ctx.tally);
    t.checks.payments_wrong += wrong.len() as u64;
    for case in wrong {
        t.example(
            "completed trip not captured once for its fare".to_owned(),
            || case,
        );
    }
}

/// The driver's earnings show each completed trip at its fare less the commission.
async fn check_earnings(ctx: &Ctx, agent: &Agent, completed: &[(String, u64)]) {
    if completed.is_empty() {
        return;
    }
    let bps = u64::from(ctx.config.commission_bps);
    let share = |fare: u64| fare - (fare * bps + 5_000) / 10_000;
    let until = Instant::now() + SETTLE_WAIT;
    let mut wrong = Vec::new();
    loop {
        wrong.clear();
        match agent
            .call(Method::GET, "/v1/drivers/me/earnings", None)
            .await
        {
            Ok(earnings) => {
                let trips = earnings["trips"].as_array().cloned().unwrap_or_default();
                for (trip, fare) in completed {
                    let earned = trips
                        .iter()
                        .find(|t| t["trip_id"] == trip.as_str())
                        .and_then(|t| t["amount"]["amount"].as_u64());
                    if earned != Some(share(*fare)) {
                        wrong.push(format!(
                            "trip {trip}: fare {fare}, earned {earned:?}, expected {}",
                            share(*fare)
                        ));
                    }
                }
            }
            Err(_) => wrong.push("GET /v1/drivers/me/earnings failed".to_owned()),
        }
        if wrong.is_empty() || Instant::now() >= until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut t = lock(&ctx.tally);
    t.checks.earnings_wrong += wrong.len() as u64;
    for case in wrong {
        t.example(
            "driver's earnings ≠ fare less commission".to_owned(),
            || case,
        );
    }
}

/// A driver's action on a trip, retried while the server does not answer or fails (5xx) — a
/// driver does not walk away from a trip because the network hiccuped. A refusal (4xx) after such
/// a failure may mean the first attempt took effect before its answer was lost (its instance
/// died): then the trip is read, and the action counts as done if the trip is where it leads.
/// False when refused otherwise (the trip changed meanwhile), or when the run is over and a few
/// retries did not help.
async fn step(ctx: &Ctx, agent: &Agent, trip_id: &str, action: &str) -> bool {
    let path = format!("/v1/trips/{trip_id}/{action}");
    let mut backoff = Duration::from_millis(200);
    let mut unanswered = false;
    for attempt in 0_u32.. {
        match agent.call(Method::POST, &path, None).await {
            Ok(_) => return true,
            Err(Failed {
                status: Some(status),
                ..
            }) if status.is_client_error() => {
                return unanswered && already_done(agent, trip_id, action).await;
            }
            Err(_) => unanswered = true,
        }
        if ctx.drivers_stop.is_cancelled() && attempt >= 2 {
            return false;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    false
}

/// Whether `trip_id` is where `action` leads (read as the driver).
async fn already_done(agent: &Agent, trip_id: &str, action: &str) -> bool {
    let reached = match action {
        "arrive" => "arrived",
        "start" => "in_progress",
        "complete" => "completed",
        _ => return false,
    };
    let path = format!("/v1/trips/{trip_id}");
    matches!(agent.call(Method::GET, &path, None).await, Ok(trip) if trip["status"] == reached)
}

/// Books trip after trip until booking is over.
pub(super) async fn rider_loop(ctx: Arc<Ctx>, mut rider: Rider) {
    // The trips this rider completed, with their fares, for the payments check at the end.
    let mut completed: Vec<(String, u64)> = Vec::new();
    while !ctx.booking_over.is_cancelled() {
        let pickup = ctx.random_position();
        let mut dropoff = ctx.random_position();
        while pickup.distance_m(dropoff) < 500.0 {
            dropoff = ctx.random_position();
        }
        let body = json!({"pickup": pickup.json(), "dropoff": dropoff.json()});
        let Ok(preview) = rider
            .agent
            .call(Method::POST, "/v1/trips/preview", Some(&body))
            .await
        else {
            ctx.error_pause(&ctx.booking_over).await;
            continue;
        };
        let package = &ctx.config.packages[rand::random_range(0..ctx.config.packages.len())];
        let quoted = preview["fares"].as_array().and_then(|fares| {
            fares
                .iter()
                .find(|f| f["package"].as_str() == Some(package.as_str()))
                .and_then(|f| f["fare"].as_u64())
        });
        let Some(quoted) = quoted else {
            lock(&ctx.tally).example("preview without the package's fare".to_owned(), || {
                format!("no {package} fare in {preview}")
            });
            ctx.error_pause(&ctx.booking_over).await;
            continue;
        };
        let body = json!({"quote_id": preview["quote_id"], "package": package});
        let booked_at = Instant::now();
        let trip = match book(&rider.agent, &body).await {
            Ok(trip) => trip,
            Err(Failed {
                status: Some(StatusCode::CONFLICT),
                ..
            }) => {
                // An open trip left over (one whose cancel failed): cancel it and go on.
                cancel_open_trips(&rider.agent).await;
                ctx.error_pause(&ctx.booking_over).await;
                continue;
            }
            Err(_) => {
                ctx.error_pause(&ctx.booking_over).await;
                continue;
            }
        };
        let Some(trip_id) = trip["id"].as_str().map(str::to_owned) else {
            lock(&ctx.tally).example("booking without a trip id".to_owned(), || trip.to_string());
            continue;
        };
        {
            let mut t = lock(&ctx.tally);
            t.progress.trips_booked += 1;
            t.progress.searching += 1;
            let fare = trip["fare"]["amount"].as_u64();
            if fare != Some(quoted) {
                t.checks.fare_mismatches += 1;
                t.example("booked fare ≠ quote".to_owned(), || {
                    format!("quoted {quoted} for {package}, booked {trip}")
                });
            }
        }
        if follow_trip(&ctx, &mut rider, &trip_id, booked_at, quoted).await {
            rate(&ctx, &rider.agent, &trip_id).await;
            completed.push((trip_id, quoted));
        }
    }
    check_payments(&ctx, &rider.agent, &completed).await;
}

/// Books a quote; when the server does not answer or fails (5xx), books the same quote again —
/// booking is idempotent per quote, so a lost reply does not leave a second trip.
async fn book(agent: &Agent, body: &Value) -> Result<Value, Failed> {
    let mut attempt = 0;
    loop {
        match agent.call(Method::POST, "/v1/trips", Some(body)).await {
            Err(Failed { status, .. })
                if attempt < 2 && status.is_none_or(|s| s.is_server_error()) =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
            }
            answer => return answer,
        }
    }
}

/// Cancels every open trip of the rider's (best effort).
async fn cancel_open_trips(agent: &Agent) {
    let Ok(list) = agent.call(Method::GET, "/v1/trips?limit=5", None).await else {
        return;
    };
    for trip in list["trips"].as_array().into_iter().flatten() {
        let open = matches!(
            trip["status"].as_str(),
            Some("searching" | "offered" | "driver_assigned" | "arrived")
        );
        if let (true, Some(id)) = (open, trip["id"].as_str()) {
            let path = format!("/v1/trips/{id}/cancel");
            if agent.call(Method::POST, &path, None).await.is_ok() {
                lock(&agent.ctx.tally).progress.abandoned += 1;
            }
        }
    }
}

/// How a followed trip ended.
enum End {
    Completed { fare: Option<u64>, pushed: bool },
    NoDrivers,
    Cancelled,
    Abandoned,
}

/// Waits for the trip's end on the socket; reads the trip when the socket has been quiet for a
/// while, and cancels it after `trip_timeout` (or when the run winds down).
/// Follows a booked trip to its end; whether it was completed.
async fn follow_trip(
    ctx: &Ctx,
    rider: &mut Rider,
    trip_id: &str,
    booked_at: Instant,
    quoted: u64,
) -> bool {
    let mut deadline = booked_at + ctx.config.trip_timeout;
    let mut wound_down = ctx.wind_down.is_cancelled();
    if wound_down {
        deadline = deadline.min(Instant::now() + WIND_DOWN_GRACE);
    }
    let mut assigned = false;
    let mut last_heard = Instant::now();
    // An end found by reading the trip, waiting `NOTICE_GRACE` for its notice.
    let mut read_end: Option<(Instant, Value)> = None;
    let end = loop {
        let wake = match &read_end {
            Some((at, _)) => *at + NOTICE_GRACE,
            None => (last_heard + POLL_AFTER).min(deadline),
        };
        let notice = tokio::select! {
            () = ctx.wind_down.cancelled(), if !wound_down => {
                wound_down = true;
                deadline = deadline.min(Instant::now() + WIND_DOWN_GRACE);
                continue;
            }
            () = tokio::time::sleep_until(wake.into()) => None,
            notice = rider.socket.inbox.recv() => match notice {
                Some(notice) => Some(notice),
                None => break End::Abandoned,
            },
        };
        let Some(notice) = notice else {
            // Quiet for a while: missed the end, or the trip is simply long?
            if let Some((_, view)) = read_end.take() {
                let mut t = lock(&ctx.tally);
                t.checks.missed_notices += 1;
                t.example("trip ended without a notice".to_owned(), || {
                    format!("GET answered {view} but no notice came")
                });
                drop(t);
                match view["status"].as_str() {
                    Some("completed") => {
                        break End::Completed {
                            fare: view["fare"]["amount"].as_u64(),
                            pushed: false,
                        };
                    }
                    Some("no_drivers_found") => break End::NoDrivers,
                    _ => break End::Cancelled,
                }
            }
            if Instant::now() >= deadline {
                break give_up(&rider.agent, trip_id).await;
            }
            last_heard = Instant::now();
            let path = format!("/v1/trips/{trip_id}");
            if let Ok(view) = rider.agent.call(Method::GET, &path, None).await
                && matches!(
                    view["status"].as_str(),
                    Some("completed" | "cancelled" | "no_drivers_found")
                )
            {
                read_end = Some((Instant::now(), view));
            }
            continue;
        };
        if notice["trip"]["id"].as_str() != Some(trip_id) {
            continue; // an older trip's late news
        }
        last_heard = Instant::now();
        match notice["type"].as_str().unwrap_or_default() {
            "trip.driver_assigned" if !assigned => {
                assigned = true;
                let mut t = lock(&ctx.tally);
                t.progress.searching = t.progress.searching.saturating_sub(1);
                t.progress.trips_assigned += 1;
                t.assigned_ms
                    .push(booked_at.elapsed().as_secs_f64() * 1000.0);
            }
            "trip.redispatched" if assigned => {
                // Back to searching (the driver cancelled).
                assigned = false;
                lock(&ctx.tally).progress.searching += 1;
            }
            "trip.completed" => {
                break End::Completed {
                    fare: notice["trip"]["fare"]["amount"].as_u64(),
                    pushed: true,
                };
            }
            "trip.no_drivers_found" => break End::NoDrivers,
            "trip.cancelled" => break End::Cancelled,
            _ => {}
        }
    };
    let mut t = lock(&ctx.tally);
    if !assigned {
        t.progress.searching = t.progress.searching.saturating_sub(1);
    }
    match end {
        End::Completed { fare, pushed } => {
            t.progress.trips_completed += 1;
            if pushed {
                t.completed_ms
                    .push(booked_at.elapsed().as_secs_f64() * 1000.0);
            }
            if fare != Some(quoted) {
                t.checks.fare_mismatches += 1;
                t.example("completed fare ≠ quote".to_owned(), || {
                    format!("trip {trip_id}: quoted {quoted}, completed with {fare:?}")
                });
            }
            true
        }
        End::NoDrivers => {
            t.progress.no_drivers_found += 1;
            false
        }
        End::Cancelled => {
            t.progress.cancelled += 1;
            false
        }
        End::Abandoned => {
            t.progress.abandoned += 1;
            false
        }
    }
}

/// Cancels a trip that took too long; if it cannot be cancelled, reads how it ended.
async fn give_up(agent: &Agent, trip_id: &str) -> End {
    let path = format!("/v1/trips/{trip_id}/cancel");
    if agent.call(Method::POST, &path, None).await.is_ok() {
        return End::Abandoned;
    }
    match agent
        .call(Method::GET, &format!("/v1/trips/{trip_id}"), None)
        .await
        .ok()
        .as_ref()
        .and_then(|v| v["status"].as_str().map(str::to_owned))
        .as_deref()
    {
        Some("no_drivers_found") => End::NoDrivers,
        Some("cancelled") => End::Cancelled,
        // Completed meanwhile (its notice may still come), or stuck in progress: not ours now.
        _ => End::Abandoned,
    }
}

/// Milliseconds since the Unix epoch (the server's `offer_expires_at` clock).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
