//! The product bot: whole trips through the product API (`/v1`). Drivers sign up, log in, set a
//! vehicle, go online, report a position and listen on `/v1/ws`; an offer is declined with a set
//! probability, else accepted, and the trip is driven (arrive, start, complete, with positions sent
//! over the socket on the way). Riders sign up, log in, listen, then preview a random trip, book it
//! and wait for its end — again and again until the run ends. It reports completed trips per second
//! and checks that no driver ever held two trips at once, that every fare is the quoted one, and
//! that no notice arrives twice. Like the course bot it speaks only the public protocol.

mod agents;
mod client;
mod summary;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use agents::{Ready, driver_loop, rider_loop, set_up_driver, set_up_rider};
use summary::Setup;
pub use summary::{ErrorExample, ProductChecks, ProductProgress, ProductSummary};

const PACKAGES: [&str; 4] = ["bike", "auto", "car", "premium"];
const PASSWORD: &str = "rickshaw bot password";
/// Metres per degree of latitude.
const M_PER_DEG: f64 = 111_320.0;
/// After the run winds down, how long a rider still waits for its trip before cancelling it.
const WIND_DOWN_GRACE: Duration = Duration::from_secs(3);
/// A waiting rider reads its trip after this long without a notice about it.
const POLL_AFTER: Duration = Duration::from_secs(5);
/// How long a trip found ended by reading it may take to be pushed before it counts as missed:
/// a notice whose instance stopped before publishing it is relayed by another after the outbox's
/// grace (3 s) and cycle (0.5 s; `platform::outbox::RelayPace`), so it may come that late and
/// still not be lost.
const NOTICE_GRACE: Duration = Duration::from_secs(5);
/// Idle drivers report their position this often (the dispatcher forgets stale positions).
const POSITION_REFRESH: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
pub struct ProductBotConfig {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub target: String,
    pub riders: u32,
    pub drivers: u32,
    /// How long riders keep booking, from when every rider and driver is ready; `None`: until
    /// cancelled.
    pub duration: Option<Duration>,
    /// Ends the booking when cancelled, as `duration` running out does: the last trips then run
    /// to their end (up to `drain`). The `stop` given to [`run_product`] ends the run at once.
    pub end_booking: CancellationToken,
    /// Centre of the area, (lat, lng); every position is drawn uniformly within `radius_m` of it.
    pub centre: (f64, f64),
    /// 2.5 km by default: any two points are then within the dispatcher's 5 km reach.
    pub radius_m: f64,
    /// Chance that a driver declines an offer.
    pub decline_probability: f64,
    /// Driver `n`'s vehicle is of package `packages[n % len]`; riders book one of these at
    /// random. Default: `car` only, so every trip can be served by every driver.
    pub packages: Vec<String>,
    /// Mean pause before each of a driver's steps (accept or decline, arrive, start, complete),
    /// drawn from 0.5× to 1.5× of it.
    pub step_delay: Duration,
    /// A rider cancels a trip that has not ended this long after booking.
    pub trip_timeout: Duration,
    /// After booking stops, how long riders wait for their last trips to end.
    pub drain: Duration,
    /// Print a progress line (to stderr) every `progress_every`.
    pub progress_every: Option<Duration>,
    /// Sign-ups and logins in flight at once (each costs the server an Argon2 hash).
    pub setup_concurrency: usize,
    /// The server's `payment.commission_bps`: a driver earns each fare less this share.
    pub commission_bps: u32,
}

impl Default for ProductBotConfig {
    fn default() -> Self {
        Self {
            target: "http://127.0.0.1:8080".to_owned(),
            riders: 20,
            drivers: 20,
            duration: Some(Duration::from_secs(30)),
            end_booking: CancellationToken::new(),
            centre: (23.7808, 90.4067),
            radius_m: 2_500.0,
            decline_probability: 0.1,
            packages: vec!["car".to_owned()],
            step_delay: Duration::from_millis(300),
            trip_timeout: Duration::from_secs(150),
            drain: Duration::from_secs(15),
            progress_every: Some(Duration::from_secs(1)),
            setup_concurrency: 8,
            commission_bps: 2_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct LatLng {
    lat: f64,
    lng: f64,
}

impl LatLng {
    fn json(self) -> Value {
        json!({"lat": self.lat, "lng": self.lng})
    }

    fn of(value: &Value) -> Option<Self> {
        Some(Self {
            lat: value["lat"].as_f64()?,
            lng: value["lng"].as_f64()?,
        })
    }

    fn towards(self, other: Self, share: f64) -> Self {
        Self {
            lat: self.lat + (other.lat - self.lat) * share,
            lng: self.lng + (other.lng - self.lng) * share,
        }
    }

    /// Metres, on a local flat approximation (good enough for a few km).
    fn distance_m(self, other: Self) -> f64 {
        let dy = (other.lat - self.lat) * M_PER_DEG;
        let dx = (other.lng - self.lng) * M_PER_DEG * self.lat.to_radians().cos();
        dx.hypot(dy)
    }
}

/// One step of a trip's life as a notice showed it.
#[derive(Clone, Debug)]
struct TripStep {
    kind: String,
    at: i64,
    driver: Option<String>,
}

#[derive(Debug, Default)]
struct Tally {
    progress: ProductProgress,
    checks: ProductChecks,
    assigned_ms: Vec<f64>,
    completed_ms: Vec<f64>,
    error_examples: BTreeMap<String, ErrorExample>,
    /// trip id → version → step, from every notice any socket of this run received.
    trips: HashMap<String, BTreeMap<u64, TripStep>>,
}

type Shared = Arc<Mutex<Tally>>;

fn lock(tally: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    tally.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tally {
    fn example(&mut self, kind: String, first: impl FnOnce() -> String) {
        self.error_examples
            .entry(kind)
            .and_modify(|e| e.count += 1)
            .or_insert_with(|| ErrorExample {
                count: 1,
                first: first(),
            });
    }

    /// Drivers' assignments, as intervals `[assigned, ended)` per driver, must never overlap.
    fn overlapping_assignments(&self) -> u64 {
        let mut held: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
        for steps in self.trips.values() {
            let mut open: Option<(&str, i64)> = None;
            for step in steps.values() {
                match step.kind.as_str() {
                    "trip.driver_assigned" | "trip.driver_arrived" | "trip.started" => {
                        if let Some(driver) = step.driver.as_deref()
                            && open.is_none_or(|(d, _)| d != driver)
                        {
                            if let Some((d, since)) = open.take() {
                                held.entry(d).or_default().push((since, step.at));
                            }
                            open = Some((driver, step.at));
                        }
                    }
                    "trip.completed"
                    | "trip.cancelled"
                    | "trip.redispatched"
                    | "trip.no_drivers_found" => {
                        if let Some((d, since)) = open.take() {
                            held.entry(d).or_default().push((since, step.at));
                        }
                    }
                    _ => {}
                }
            }
            if let Some((d, since)) = open {
                held.entry(d).or_default().push((since, i64::MAX));
            }
        }
        overlaps(held)
    }

    /// Offers that overlapped: a trip offered again while its last offer was still open (two
    /// drivers at once), or a driver offered a trip while holding an offer of another.
    fn double_offers(&self) -> u64 {
        let mut count = 0;
        let mut held: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
        for steps in self.trips.values() {
            // An offer closes with the trip's next change (withdrawn, assigned, cancelled);
            // another offer first means two at once.
            let mut open: Option<(&str, i64)> = None;
            let mut previous: Option<&str> = None;
            for step in steps.values() {
                if let Some((driver, since)) = open.take() {
                    held.entry(driver).or_default().push((since, step.at));
                }
                if step.kind == "trip.offered" {
                    if previous == Some("trip.offered") {
                        count += 1;
                    }
                    open = step.driver.as_deref().map(|d| (d, step.at));
                }
                previous = Some(&step.kind);
            }
            if let Some((driver, since)) = open {
                held.entry(driver).or_default().push((since, i64::MAX));
            }
        }
        count + overlaps(held)
    }

    /// How long trips searched before each offer: from the booking, a withdrawn offer or a
    /// redispatch to the next offer (ms).
    fn offer_waits(&self) -> Vec<f64> {
        let mut waits = Vec::new();
        for steps in self.trips.values() {
            let mut searching_since = None;
            for step in steps.values() {
                match step.kind.as_str() {
                    "trip.requested" | "trip.offer_withdrawn" | "trip.redispatched" => {
                        searching_since = Some(step.at);
                    }
                    "trip.offered" => {
                        if let Some(since) = searching_since.take() {
                            waits.push((step.at - since) as f64);
                        }
                    }
                    _ => searching_since = None,
                }
            }
        }
        waits
    }
}

/// Intervals `[from, to)` per holder that overlap another of the same holder.
fn overlaps(mut held: HashMap<&str, Vec<(i64, i64)>>) -> u64 {
    let mut overlaps = 0;
    for intervals in held.values_mut() {
        intervals.sort_unstable();
        for pair in intervals.windows(2) {
            if pair[1].0 < pair[0].1 {
                overlaps += 1;
            }
        }
    }
    overlaps
}

/// What every agent shares.
struct Ctx {
    http: reqwest::Client,
    base: String,
    ws_base: String,
    run_id: String,
    config: ProductBotConfig,
    tally: Shared,
    tasks: TaskTracker,
    /// Riders book no new trip.
    booking_over: CancellationToken,
    /// Riders give their last trips `WIND_DOWN_GRACE`, drivers stop pausing and accepting.
    wind_down: CancellationToken,
    /// Every rider is done: drivers go offline.
    drivers_stop: CancellationToken,
    /// Sockets close.
    sockets_stop: CancellationToken,
}

impl Ctx {
    fn random_position(&self) -> LatLng {
        random_position(self.config.centre, self.config.radius_m)
    }

    /// A random pause of about `step_delay`, cut short when the run winds down.
    async fn step_pause(&self) {
        if self.wind_down.is_cancelled() || self.config.step_delay.is_zero() {
            return;
        }
        let pause = self.config.step_delay.mul_f64(rand::random_range(0.5..1.5));
        tokio::select! {
            () = self.wind_down.cancelled() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }

    /// A pause after a failed request, so a failing server is not hammered.
    async fn error_pause(&self, cut_short: &CancellationToken) {
        tokio::select! {
            () = cut_short.cancelled() => {}
            () = tokio::time::sleep(Duration::from_millis(rand::random_range(300..900))) => {}
        }
    }
}

/// Uniformly within `radius_m` of `centre` (lat, lng).
fn random_position(centre: (f64, f64), radius_m: f64) -> LatLng {
    let (lat, lng) = centre;
    let r = radius_m * rand::random::<f64>().sqrt();
    let theta = rand::random_range(0.0..std::f64::consts::TAU);
    LatLng {
        lat: lat + r * theta.cos() / M_PER_DEG,
        lng: lng + r * theta.sin() / (M_PER_DEG * lat.to_radians().cos()),
    }
}

/// Runs the bot: sets up `riders` and `drivers`, books trips for `duration` (or until
/// `end_booking`), waits up to `drain` for the last ones, and summarises; `stop` winds it down at
/// once (the riders cancel what is still open). Server errors are counted, not fatal.
pub async fn run_product(
    config: ProductBotConfig,
    stop: CancellationToken,
) -> anyhow::Result<ProductSummary> {
    let base = config.target.trim_end_matches('/').to_owned();
    let ws_base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        bail!("--target must start with http:// or https://, got {base:?}");
    };
    if config.packages.is_empty() {
        bail!("give the drivers at least one package");
    }
    if let Some(unknown) = config
        .packages
        .iter()
        .find(|p| !PACKAGES.contains(&p.as_str()))
    {
        bail!("unknown package {unknown:?}; expected bike, auto, car or premium");
    }
    if !(0.0..=1.0).contains(&config.decline_probability) {
        bail!(
            "the decline probability must be between 0 and 1, got {}",
            config.decline_probability
        );
    }
    // Idle connections are dropped well before the server closes them (its header-read
    // deadline, 10 s by default), so a request never races the server's close.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(4))
        .build()
        .context("building the HTTP client")?;
    // Fail fast, with a clear message, when nothing listens there.
    http.get(format!("{base}/openapi.json"))
        .send()
        .await
        .with_context(|| format!("cannot reach {base}; is Rickshaw running there?"))?;

    let run_id = format!("{:06x}", rand::random_range(0..0xff_ffff_u32));
    let ctx = Arc::new(Ctx {
        http,
        base,
        ws_base,
        run_id: run_id.clone(),
        config: config.clone(),
        tally: Arc::default(),
        tasks: TaskTracker::new(),
        booking_over: CancellationToken::new(),
        wind_down: CancellationToken::new(),
        drivers_stop: CancellationToken::new(),
        sockets_stop: CancellationToken::new(),
    });
    let progress = config.progress_every;

    // Set everyone up, a few at a time.
    let setup_started = Instant::now();
    let gate = Arc::new(Semaphore::new(config.setup_concurrency.max(1)));
    let mut setups: JoinSet<Result<Ready, String>> = JoinSet::new();
    for n in 0..config.drivers {
        let (ctx, gate) = (ctx.clone(), gate.clone());
        let package = config.packages[n as usize % config.packages.len()].clone();
        setups.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            set_up_driver(ctx, n, package).await.map(Ready::Driver)
        });
    }
    for n in 0..config.riders {
        let (ctx, gate) = (ctx.clone(), gate.clone());
        setups.spawn(async move {
            let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
            set_up_rider(ctx, n).await.map(Ready::Rider)
        });
    }
    let (mut drivers, mut riders, mut failures) = (Vec::new(), Vec::new(), 0_u64);
    let mut first_failure = None;
    loop {
        let joined = tokio::select! {
            () = stop.cancelled() => break,
            joined = setups.join_next() => joined,
        };
        match joined {
            None => break,
            Some(Ok(Ok(Ready::Driver(d)))) => drivers.push(d),
            Some(Ok(Ok(Ready::Rider(r)))) => riders.push(r),
            Some(Ok(Err(e))) => {
                failures += 1;
                first_failure.get_or_insert(e);
            }
            Some(Err(e)) => {
                failures += 1;
                first_failure.get_or_insert(format!("setup task: {e}"));
            }
        }
    }
    setups.abort_all();
    if let Some(e) = &first_failure {
        lock(&ctx.tally).example("setup".to_owned(), || e.clone());
    }
    let setup = Setup {
        riders: riders.len() as u64,
        drivers: drivers.len() as u64,
        failures,
        took: setup_started.elapsed(),
    };
    if progress.is_some() {
        crate::report::print_line(&format!(
            "product bot {run_id}: {} riders and {} drivers ready in {:.1} s{}",
            setup.riders,
            setup.drivers,
            setup.took.as_secs_f64(),
            first_failure
                .as_deref()
                .map(|e| format!(" ({failures} failed: {e})"))
                .unwrap_or_default()
        ));
        crate::report::finish_progress(true);
    }

    // Drive trips.
    let load_started = Instant::now();
    let mut rider_tasks = JoinSet::new();
    let mut driver_tasks = JoinSet::new();
    if !stop.is_cancelled() {
        for driver in drivers.drain(..) {
            driver_tasks.spawn(driver_loop(ctx.clone(), driver));
        }
        for rider in riders.drain(..) {
            rider_tasks.spawn(rider_loop(ctx.clone(), rider));
        }
    }
    let mut check = tokio::time::interval(Duration::from_millis(100));
    let mut next_progress = progress.map(|every| load_started + every);
    let mut last_completed = (load_started, 0_u64);
    let mut booking_ended_at: Option<Instant> = None;
    let mut load_ended = None;
    loop {
        tokio::select! {
            () = stop.cancelled(), if !ctx.wind_down.is_cancelled() => {
                ctx.booking_over.cancel();
                ctx.wind_down.cancel();
            }
            joined = rider_tasks.join_next() => {
                if joined.is_none() {
                    load_ended.get_or_insert_with(Instant::now);
                    break;
                }
                // The end of the last rider's last trip ends the measured run.
                if rider_tasks.is_empty() {
                    load_ended = Some(Instant::now());
                }
            }
            _ = check.tick() => {}
        }
        let now = Instant::now();
        if !ctx.booking_over.is_cancelled()
            && (config.duration.is_some_and(|d| now >= load_started + d)
                || config.end_booking.is_cancelled())
        {
            ctx.booking_over.cancel();
        }
        if ctx.booking_over.is_cancelled() {
            let ended = *booking_ended_at.get_or_insert(now);
            if now >= ended + config.drain {
                ctx.wind_down.cancel();
            }
        }
        if let (Some(at), Some(every)) = (next_progress, progress)
            && now >= at
        {
            let snapshot = snapshot(&ctx.tally, load_started);
            let (since, before) = last_completed;
            let secs = now.duration_since(since).as_secs_f64();
            let per_sec = if secs > 0.0 {
                (snapshot.trips_completed - before) as f64 / secs
            } else {
                0.0
            };
            summary::print_progress(&snapshot, per_sec);
            last_completed = (now, snapshot.trips_completed);
            next_progress = Some(at + every);
        }
    }
    let load_ended = load_ended.unwrap_or_else(Instant::now);

    // Drivers finish (no pauses now) and go offline; then the sockets close.
    ctx.booking_over.cancel();
    ctx.wind_down.cancel();
    ctx.drivers_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while driver_tasks.join_next().await.is_some() {}
    })
    .await;
    driver_tasks.abort_all();
    ctx.sockets_stop.cancel();
    ctx.tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), ctx.tasks.wait()).await;
    if progress.is_some() {
        crate::report::finish_progress(true);
    }

    let mut t = lock(&ctx.tally);
    let mut counts = t.progress.clone();
    counts.elapsed = load_ended.duration_since(load_started);
    let mut checks = t.checks.clone();
    checks.overlapping_assignments = t.overlapping_assignments();
    checks.double_offers = t.double_offers();
    let examples = std::mem::take(&mut t.error_examples);
    Ok(ProductSummary::new(
        run_id,
        setup,
        counts,
        checks,
        (&t.assigned_ms, &t.completed_ms, &t.offer_waits()),
        examples,
    ))
}

fn snapshot(tally: &Shared, started: Instant) -> ProductProgress {
    let mut progress = lock(tally).progress.clone();
    progress.elapsed = started.elapsed();
    progress
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(kind: &str, at: i64, driver: Option<&str>) -> TripStep {
        TripStep {
            kind: kind.to_owned(),
            at,
            driver: driver.map(str::to_owned),
        }
    }

    #[test]
    fn overlapping_assignments_are_found_from_the_notices() {
        let mut t = Tally::default();
        let trip = |steps: &[(u64, TripStep)]| steps.iter().cloned().collect::<BTreeMap<_, _>>();
        t.trips.insert(
            "a".into(),
            trip(&[
                (1, step("trip.offered", 0, Some("d"))),
                (2, step("trip.driver_assigned", 10, Some("d"))),
                (3, step("trip.completed", 20, None)),
            ]),
        );
        // Assigned the moment the first ended: fine.
        t.trips.insert(
            "b".into(),
            trip(&[
                (2, step("trip.driver_assigned", 20, Some("d"))),
                (4, step("trip.cancelled", 30, None)),
            ]),
        );
        assert_eq!(t.overlapping_assignments(), 0);
        // Held while b was still going.
        t.trips.insert(
            "c".into(),
            trip(&[(2, step("trip.started", 25, Some("d")))]),
        );
        assert_eq!(t.overlapping_assignments(), 1);
    }

    #[test]
    fn double_offers_and_offer_waits_are_found_from_the_notices() {
        let mut t = Tally::default();
        let trip = |steps: &[(u64, TripStep)]| steps.iter().cloned().collect::<BTreeMap<_, _>>();
        t.trips.insert(
            "a".into(),
            trip(&[
                (1, step("trip.requested", 0, None)),
                (2, step("trip.offered", 400, Some("d"))),
                (3, step("trip.offer_withdrawn", 900, None)),
                (4, step("trip.offered", 2_900, Some("e"))),
                (5, step("trip.driver_assigned", 3_000, Some("e"))),
            ]),
        );
        // d is offered b once a's offer is withdrawn: fine.
        t.trips.insert(
            "b".into(),
            trip(&[
                (1, step("trip.requested", 500, None)),
                (2, step("trip.offered", 900, Some("d"))),
            ]),
        );
        assert_eq!(t.double_offers(), 0);
        let mut waits = t.offer_waits();
        waits.sort_by(f64::total_cmp);
        assert_eq!(waits, [400.0, 400.0, 2_000.0]);
        // e is offered c while holding a's offer; c is offered to two drivers at once.
        t.trips.insert(
            "c".into(),
            trip(&[
                (2, step("trip.offered", 2_950, Some("e"))),
                (3, step("trip.offered", 3_100, Some("f"))),
            ]),
        );
        assert_eq!(t.double_offers(), 2);
    }

    #[test]
    fn positions_stay_within_the_radius() {
        let config = ProductBotConfig::default();
        let centre = LatLng {
            lat: config.centre.0,
            lng: config.centre.1,
        };
        let mut farthest: f64 = 0.0;
        for _ in 0..2000 {
            let p = random_position(config.centre, config.radius_m);
            farthest = farthest.max(centre.distance_m(p));
        }
        assert!(farthest <= config.radius_m + 1.0, "{farthest}");
        assert!(farthest > config.radius_m * 0.9, "{farthest}");
    }
}
