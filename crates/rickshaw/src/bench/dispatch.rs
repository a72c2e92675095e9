//! `rickshaw bench dispatch`: the product's dispatch under a steady stream of bookings, on the
//! real engine and stores.
//!
//! The system is built in this process on the one composition path: embedded (`rickshaw up`:
//! SQLite in a temporary directory, the in-process bus), or with `--postgres` distributed on
//! PostgreSQL (a database of its own, dropped afterwards) and NATS, as `--instances` processes
//! would run it: the first instance every service, the others the trip service only, sharing
//! the dispatch shards by leases. The bench drives the services' APIs directly, as the gateway
//! does once a token is verified: the HTTP edge is `bench edge`'s subject, and signing up
//! thousands of accounts (Argon2id) would be this one's whole run.
//!
//! - `--drivers` go online serving cars at random places of an 18 × 10 km city and send their
//!   position every `--position-every`.
//! - Riders book cars at `--rate` a second, evenly spaced (open loop): a preview, then the booking,
//!   spread over the instances. A rider books again once its trip has ended; a booking due while
//!   every rider has an open trip is counted, not sent.
//! - The drivers hear of their offers from the trip notices on the bus (what `/v1/ws` pushes),
//!   accept at once, then arrive, start and complete `--step` apart, moving to the pickup and the
//!   drop-off on the way.
//!
//! Reported: bookings, offers and completed trips a second; book → offer (from the booking call
//! to the offer's notice) p50 / p90 / p99 / max; the dispatch rounds' count and mean; the
//! authorizations, captures and webhooks of the run; the trip notices the bus refused after their
//! commit (published late by the outbox's relay) and the consumers that were behind; each SQLite
//! database's group commits; the CPU used while bookings arrived and for the drain after, a
//! booking, and the bookings a second the machine's cores would carry at that cost (with
//! `--provider-apart`, the card provider's process counted apart); errors by call and status.
//!
//! The CPU is this process's: every service, but not the HTTP edge (see above), and the bench's
//! own riders and drivers too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use domain::events::Event;
use domain::{AccountId, LatLng, Package, Role, TripId};
use platform::ApiError;
use platform::auth::Caller;
use platform::bus::{self, Handled, SharedBus, SubscribeOptions};
use pricing::PricingApi;
use serde::Serialize;
use serde_json::json;
use supply::SupplyApi;
use tokio_util::sync::CancellationToken;
use trip::{Action, BookTrip, NoticeKind, TripApi, TripNotice, TripView};

use super::instance::Instance;
use super::{Format, parse_count};
use rickshaw::system::{Services, System};

#[derive(Args)]
pub struct DispatchArgs {
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Drivers online, serving cars.
    #[arg(long, value_parser = parse_count, default_value = "5k")]
    pub drivers: usize,
    /// Riders (each has at most one open trip). Default: 8 × the rate, at least 100.
    #[arg(long, value_parser = parse_count)]
    pub riders: Option<usize>,
    /// Bookings a second, evenly spaced.
    #[arg(long, value_parser = parse_count, default_value = "1k")]
    pub rate: usize,
    /// How long bookings arrive.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// How often each driver sends its position.
    #[arg(long, default_value = "4s", value_parser = humantime::parse_duration)]
    pub position_every: Duration,
    /// A driver's pause between accept, arrive, start and complete.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub step: Duration,
    /// The dispatch period (`trips.dispatch_ms`).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub dispatch_every: Duration,
    /// A PostgreSQL server (`postgres://user@host:port`): run distributed on it and NATS, in
    /// the database `rickshaw_bench_dispatch` (dropped before and after the run).
    #[arg(long)]
    pub postgres: Option<String>,
    /// The NATS server of the distributed run.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub nats: String,
    /// Trip service instances (with `--postgres`): the first runs every service, the others
    /// the trip service alone; bookings are spread over them.
    #[arg(long, default_value_t = 1)]
    pub instances: usize,
    /// Run the card provider in a process of its own (a whole `rickshaw up`, SQLite, otherwise
    /// idle), the payment service calling it and taking its webhooks over loopback, so that the
    /// CPU the provider uses is counted apart: in a deployment it is not on the platform's
    /// machines. (This process's own provider stays, idle.)
    #[arg(long)]
    pub provider_apart: bool,
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
}

impl DispatchArgs {
    pub fn check(&self) -> Result<(), String> {
        if self.drivers == 0 || self.rate == 0 || self.riders == Some(0) {
            return Err("--drivers, --rate and --riders must be at least 1".into());
        }
        if self.duration.is_zero() || self.position_every.is_zero() {
            return Err("--duration and --position-every must be longer than zero".into());
        }
        let dispatch_ms = self.dispatch_every.as_millis();
        if !(10..=60_000).contains(&dispatch_ms) {
            return Err("--dispatch-every must be 10 ms to 60 s".into());
        }
        if self.instances == 0 || self.instances > 16 {
            return Err("--instances must be 1 to 16".into());
        }
        if self.instances > 1 && self.postgres.is_none() {
            return Err(
                "several --instances need --postgres (the embedded mode is one process)".into(),
            );
        }
        Ok(())
    }

    fn riders(&self) -> usize {
        self.riders.unwrap_or((self.rate * 8).max(100))
    }
}

/// What a run measured.
#[derive(Debug, Default, Serialize)]
pub struct DispatchReport {
    /// `embedded (SQLite)` or `PostgreSQL + NATS`.
    pub mode: String,
    pub instances: usize,
    pub drivers: usize,
    pub riders: usize,
    pub seconds: f64,
    pub rate_asked: usize,
    /// Bookings due while every rider had an open trip (not sent).
    pub no_idle_rider: u64,
    pub booked: u64,
    pub booked_per_sec: f64,
    /// The booking call (quote verified, fare held, trip stored).
    pub book_p50_ms: f64,
    pub book_p99_ms: f64,
    /// Trips booked in the window and offered by the end of the run.
    pub offered: u64,
    /// Offers (notices) sent during the window, a second; a trip offered again counts again.
    pub offers_per_sec: f64,
    /// From the booking call to its first offer's notice.
    pub book_to_offer_p50_ms: f64,
    pub book_to_offer_p90_ms: f64,
    pub book_to_offer_p99_ms: f64,
    pub book_to_offer_max_ms: f64,
    /// Booked in the window, never offered: no driver found in time, or still searching.
    pub never_offered: u64,
    /// Trips completed during the window.
    pub completed: u64,
    /// Trips completed during the window, a second.
    pub completed_per_sec: f64,
    /// Dispatch rounds of every instance during the run, and their mean length.
    pub rounds: u64,
    pub round_mean_ms: f64,
    /// Where a round's time goes (mean ms a round): reading the open trips and busy drivers,
    /// expiring lapsed offers and searches, solving, writing the offers.
    pub round_phase_mean_ms: BTreeMap<String, f64>,
    /// Offers refused at the commit (another instance took the driver first).
    pub lost_claims: u64,
    /// Trip notices the bus refused after their commit (a consumer's queue was full): the
    /// outbox's relay published them after its grace, so their drivers heard of them seconds
    /// late.
    pub notices_relayed: u64,
    /// Publishes the in-process bus refused during the run, by the consumer that was behind.
    pub refused_by: BTreeMap<String, u64>,
    /// SQLite's group commits during the run, by database: how many commits, how many
    /// transactions they carried (`store_group_commit_size`), and how many groups ran again
    /// without a transaction that failed (`store_group_reruns_total`).
    pub group_commits: BTreeMap<String, GroupCommits>,
    /// Failed calls, by `call status` (with one message of each).
    pub errors: BTreeMap<String, (u64, String)>,
    /// CPU seconds this process used while bookings arrived and for the drain after
    /// (`cpu_window_secs`): every service, its stores and the bench's own riders and drivers.
    pub cpu_secs: Option<f64>,
    pub cpu_window_secs: f64,
    pub cores: usize,
    /// With `--provider-apart`: the CPU seconds the card provider's process used in that window.
    pub provider_cpu_secs: Option<f64>,
    /// Those CPU seconds a booking taken, in milliseconds.
    pub cpu_ms_per_booking: Option<f64>,
    pub provider_cpu_ms_per_booking: Option<f64>,
    /// The bookings a second this machine's cores would carry at that CPU a booking (both
    /// processes' when the provider is apart), were nothing else running.
    pub booking_ceiling_per_sec: Option<f64>,
    /// Money during the run: authorizations asked of the provider (whatever their outcome),
    /// captures, and the provider's webhooks the payment service took.
    pub authorizations: u64,
    pub captures: u64,
    pub webhooks: u64,
}

/// What the run's CPU comes to a booking taken: this process's milliseconds, the provider's
/// (when apart), and the bookings a second `cores` would carry at their sum. No ceiling when the
/// provider runs apart and its CPU could not be read.
fn booking_costs(
    booked: u64,
    cores: usize,
    here: Option<f64>,
    provider_apart: bool,
    provider: Option<f64>,
) -> (Option<f64>, Option<f64>, Option<f64>) {
    let per_booking = |secs: f64| (booked > 0).then(|| secs * 1e3 / booked as f64);
    let here_ms = here.and_then(per_booking);
    let provider_ms = provider.and_then(per_booking);
    let total_ms = match provider_apart {
        false => here_ms,
        true => here_ms
            .zip(provider_ms)
            .map(|(here, provider)| here + provider),
    };
    let ceiling = total_ms.and_then(|ms| bench::cpu::ceiling_per_sec(cores, ms / 1e3));
    (here_ms, provider_ms, ceiling)
}

/// The group commits of one database during a run.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct GroupCommits {
    pub commits: u64,
    pub transactions: u64,
    pub reruns: u64,
}

/// `store_group_commit_size`'s count and sum, and `store_group_reruns_total`, by database, in the
/// process's metrics.
fn group_commits() -> BTreeMap<String, GroupCommits> {
    let mut by_database = BTreeMap::<String, GroupCommits>::new();
    for line in platform::telemetry::metrics_handle().render().lines() {
        let fields = [
            "store_group_commit_size_count{",
            "store_group_commit_size_sum{",
            "store_group_reruns_total{",
        ];
        let Some((field, rest)) = fields
            .iter()
            .enumerate()
            .find_map(|(i, name)| Some((i, line.strip_prefix(name)?)))
        else {
            continue;
        };
        if let Some((database, value)) = labelled(rest, "database") {
            let entry = by_database.entry(database.to_owned()).or_default();
            match field {
                0 => entry.commits = value as u64,
                1 => entry.transactions = value as u64,
                _ => entry.reruns = value as u64,
            }
        }
    }
    by_database
}

/// One trip's times.
#[derive(Default)]
struct Times {
    asked: Option<Instant>,
    booked: Option<Instant>,
    offered: Option<Instant>,
    rider: Option<AccountId>,
    ended: bool,
}

/// What the run's tasks write down.
#[derive(Default)]
struct Ledger {
    trips: HashMap<TripId, Times>,
    idle_riders: Vec<AccountId>,
    /// Offer notices seen (a relayed notice may come twice).
    offer_notices: HashSet<i64>,
    /// Offer notices and completions heard while bookings arrived.
    offers: u64,
    completed: u64,
    book_micros: Vec<u64>,
    no_idle_rider: u64,
    errors: BTreeMap<String, (u64, String)>,
}

impl Ledger {
    /// One more failure of `key`, keeping the first `message` as its example.
    fn failed(&mut self, key: String, message: impl FnOnce() -> String) {
        self.errors.entry(key).or_insert_with(|| (0, message())).0 += 1;
    }

    fn error(&mut self, call: &str, error: trip::TripError) {
        let api = ApiError::from(error);
        let key = format!("{call} {}", api.code.http_status().as_u16());
        self.failed(key, || api.message);
    }

    /// The trip ended (completed, cancelled, nobody found): its rider may book again.
    fn ended(&mut self, trip: TripId) {
        if let Some(times) = self.trips.get_mut(&trip)
            && !times.ended
        {
            times.ended = true;
            if let Some(rider) = times.rider {
                self.idle_riders.push(rider);
            }
        }
    }
}

/// Everything the agents share.
struct Run {
    ledger: Mutex<Ledger>,
    trips: Vec<Arc<dyn TripApi>>,
    pricing: Arc<dyn PricingApi>,
    supply: Arc<dyn SupplyApi>,
    /// Each driver's place, by index; `index` finds a driver's.
    places: Vec<Mutex<LatLng>>,
    index: HashMap<AccountId, usize>,
    step: Duration,
    city: City,
    stop: CancellationToken,
    /// Bookings are no longer counted once the window is over.
    in_window: AtomicBool,
}

impl Run {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_place(&self, driver: AccountId, at: LatLng) {
        if let Some(i) = self.index.get(&driver) {
            *self.places[*i]
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = at;
        }
    }

    async fn book(&self, n: u64, rider: AccountId) {
        let caller = Caller::new(rider, Role::Rider, "");
        let (pickup, dropoff) = self.city.trip(n);
        let preview = match self.pricing.preview(&caller, pickup, dropoff).await {
            Ok(preview) => preview,
            Err(e) => {
                let mut ledger = self.ledger();
                ledger.failed("preview".into(), || e.to_string());
                ledger.idle_riders.push(rider);
                return;
            }
        };
        let asked = Instant::now();
        let api = &self.trips[n as usize % self.trips.len()];
        let booked = api
            .book(
                &caller,
                BookTrip {
                    quote_id: preview.quote_id,
                    package: Package::Car,
                    payment_method: None,
                    idempotency_key: None,
                },
            )
            .await;
        let now = Instant::now();
        let mut ledger = self.ledger();
        match booked {
            Ok(view) => {
                ledger
                    .book_micros
                    .push(u64::try_from(now.duration_since(asked).as_micros()).unwrap_or(u64::MAX));
                let times = ledger.trips.entry(view.id).or_default();
                times.asked = Some(asked);
                times.booked = Some(now);
                times.rider = Some(rider);
                // Its notice may have come first.
                if times.ended {
                    times.ended = false;
                    ledger.ended(view.id);
                }
            }
            Err(e) => {
                ledger.error("book", e);
                ledger.idle_riders.push(rider);
            }
        }
    }

    /// A driver takes an offered trip through to its end.
    async fn drive(self: Arc<Self>, driver: AccountId, trip: TripView) {
        let caller = Caller::new(driver, Role::Driver, "");
        let api = &self.trips[(driver.as_uuid().as_u128() % self.trips.len() as u128) as usize];
        let steps = [
            (Action::Accept, None),
            (Action::Arrive, Some(trip.pickup)),
            (Action::Start, None),
            (Action::Complete, Some(trip.dropoff)),
        ];
        for (n, (action, move_to)) in steps.into_iter().enumerate() {
            if let Some(at) = move_to {
                self.set_place(driver, at);
                if let Err(e) = self.supply.locate(driver, at).await {
                    self.ledger().failed("locate".into(), || e.to_string());
                }
            }
            if n > 0 {
                tokio::select! {
                    () = self.stop.cancelled() => return,
                    () = tokio::time::sleep(self.step) => {}
                }
            }
            if let Err(e) = api.act(&caller, trip.id, action).await {
                self.ledger().error(action.name(), e);
                return;
            }
        }
    }

    /// What the bench does with each trip notice.
    fn heard(self: &Arc<Self>, notice: TripNotice) {
        let now = Instant::now();
        let mut ledger = self.ledger();
        match notice.kind {
            NoticeKind::Offered => {
                if !ledger.offer_notices.insert(notice.id) {
                    return;
                }
                if self.in_window.load(Ordering::Relaxed) {
                    ledger.offers += 1;
                }
                let times = ledger.trips.entry(notice.trip.id).or_default();
                times.offered.get_or_insert(now);
                drop(ledger);
                if let Some(driver) = notice.recipients.first().copied() {
                    tokio::spawn(self.clone().drive(driver, notice.trip));
                }
            }
            NoticeKind::Completed => {
                if self.in_window.load(Ordering::Relaxed) {
                    ledger.completed += 1;
                }
                ledger.ended(notice.trip.id);
            }
            NoticeKind::Cancelled | NoticeKind::NoDriversFound => {
                let id = notice.trip.id;
                if ledger.trips.contains_key(&id) {
                    ledger.ended(id);
                } else {
                    // Before the booking call returned: `book` frees the rider.
                    ledger.trips.entry(id).or_default().ended = true;
                }
            }
            _ => {}
        }
    }
}

/// The city: a deterministic stream of places in an 18 × 10 km box of Dhaka.
#[derive(Clone, Copy)]
struct City {
    seed: u64,
}

impl City {
    fn unit(&self, n: u64) -> f64 {
        // splitmix64
        let mut z = self
            .seed
            .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn place(&self, n: u64) -> LatLng {
        let lat = 23.70 + 0.16 * self.unit(2 * n);
        let lng = 90.35 + 0.10 * self.unit(2 * n + 1);
        LatLng::new(lat, lng).unwrap_or_else(|_| unreachable!("inside the box"))
    }

    /// The `n`th trip's pickup and drop-off (never the same place).
    fn trip(&self, n: u64) -> (LatLng, LatLng) {
        let base = 1 << 40;
        (self.place(base + 2 * n), self.place(base + 2 * n + 1))
    }
}

/// The systems of the run (the first runs every service) and what to clean up after it.
struct Systems {
    all: Vec<System>,
    data_dir: std::path::PathBuf,
    /// The admin URL of the distributed run's PostgreSQL.
    postgres_admin: Option<String>,
    stream_prefix: String,
    /// The card provider's process, with `--provider-apart`.
    provider: Option<Instance>,
}

const BENCH_DATABASE: &str = "rickshaw_bench_dispatch";

/// The admin URL (database `postgres`) and the bench database's URL on `server`.
fn database_urls(server: &str) -> anyhow::Result<(String, String)> {
    let mut url = reqwest::Url::parse(server).context("--postgres is not a URL")?;
    url.set_path("/postgres");
    let admin = url.to_string();
    url.set_path(&format!("/{BENCH_DATABASE}"));
    Ok((admin, url.to_string()))
}

async fn drop_database(admin: &str) -> anyhow::Result<()> {
    let pool = platform::store::open_postgres(admin, "public", 1).await?;
    platform::store::execute(
        &pool,
        format!("DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)"),
    )
    .await?;
    pool.close().await;
    Ok(())
}

async fn build(args: &DispatchArgs, progress: &impl Fn(&str)) -> anyhow::Result<Systems> {
    let data_dir =
        std::env::temp_dir().join(format!("rickshaw-bench-dispatch-{}", std::process::id()));
    let stream_prefix = format!("BENCHDISPATCH{}", std::process::id());
    // The provider apart posts its webhooks to the first system, which listens where told.
    let (provider, first_listen) = if args.provider_apart {
        // Held while the provider starts, so that its port cannot be this one; let go just before
        // the first system binds it.
        let reserved = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = reserved.local_addr()?.port();
        let webhooks = format!("http://127.0.0.1:{port}/v1/payments/webhook");
        progress("starting the card provider in a process of its own…");
        let provider = Instance::start(
            "dispatch-provider",
            &[("RICKSHAW_PROVIDER__WEBHOOK_URL", webhooks)],
            progress,
        )
        .await?;
        drop(reserved);
        (Some(provider), format!("127.0.0.1:{port}"))
    } else {
        (None, "127.0.0.1:0".to_owned())
    };
    let provider_url = provider
        .as_ref()
        .map(|provider| format!("{}/provider/v1", provider.url()));
    let config = |dir: &str, first: bool| {
        let mut overrides = json!({
            "listen": if first { first_listen.as_str() } else { "127.0.0.1:0" },
            "data_dir": data_dir.join(dir),
            "trips": {"dispatch_ms": args.dispatch_every.as_millis() as u64},
            "identity": {"signing_key": "rickshaw-bench-dispatch-signing-key-0123456789"},
            "nats": {"url": args.nats, "stream_prefix": stream_prefix, "stream_max_age_s": 3_600},
        });
        if let Some(url) = &provider_url {
            overrides["payment"] = json!({"provider_url": url});
        }
        platform::Config::load(None, overrides, &rickshaw::system::config_sections())
    };
    let Some(server) = &args.postgres else {
        let system = System::embedded(config("embedded", true)?).await?;
        return Ok(Systems {
            all: vec![system],
            data_dir,
            postgres_admin: None,
            stream_prefix,
            provider,
        });
    };
    let (admin, url) = database_urls(server)?;
    drop_database(&admin)
        .await
        .context("cannot reach PostgreSQL to drop the bench database")?;
    let with_database = |dir: &str| -> anyhow::Result<platform::Config> {
        let mut config = config(dir, dir == "instance-1")?;
        config.database.url = url.clone();
        config.database.max_connections = 16;
        Ok(config)
    };
    rickshaw::system::migrate(&with_database("migrate")?).await?;
    let mut all = vec![System::distributed(with_database("instance-1")?, &Services::all()).await?];
    let trip_only: Services = "trip".parse().map_err(anyhow::Error::msg)?;
    for n in 2..=args.instances {
        all.push(System::distributed(with_database(&format!("instance-{n}"))?, &trip_only).await?);
    }
    Ok(Systems {
        all,
        data_dir,
        postgres_admin: Some(admin),
        stream_prefix,
        provider,
    })
}

/// The figure `name` summed over its series whose labels contain `labels`, in the process's
/// metrics (every instance of the run records there).
fn metric(name: &str, labels: &str) -> f64 {
    let text = platform::telemetry::metrics_handle().render();
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter(|l| l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Authorizations asked of the provider, captures, webhooks taken, so far.
fn money() -> [f64; 3] {
    [
        "payment_authorizations_total",
        "payment_captures_total",
        "payment_webhooks_total",
    ]
    .map(|name| metric(name, ""))
}

/// The rounds' figures between two readings.
#[derive(Clone, Copy, Default)]
struct RoundFigures {
    rounds: f64,
    seconds: f64,
    lost_claims: f64,
    notices_relayed: f64,
    /// Seconds spent in each phase: read, expire, solve, write.
    phases: [f64; 4],
}

const PHASES: [&str; 4] = ["read", "expire", "solve", "write"];

/// The value of `label` (`?` if missing) and the sample's value, in a rendered metric line's
/// rest after `name{`.
fn labelled<'l>(rest: &'l str, label: &str) -> Option<(&'l str, f64)> {
    let name = rest
        .split(&format!("{label}=\""))
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("?");
    let value = rest.rsplit(' ').next()?.parse::<f64>().ok()?;
    Some((name, value))
}

/// `bus_publish_refused_total` by consumer, in the process's metrics.
fn refused_by_consumer() -> BTreeMap<String, u64> {
    let name = "bus_publish_refused_total{";
    let mut refused = BTreeMap::new();
    for line in platform::telemetry::metrics_handle().render().lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if let Some((consumer, count)) = labelled(rest, "consumer") {
            *refused.entry(consumer.to_owned()).or_default() += count as u64;
        }
    }
    refused
}

impl RoundFigures {
    fn now() -> Self {
        Self {
            rounds: metric("trip_dispatch_round_duration_seconds_count", ""),
            seconds: metric("trip_dispatch_round_duration_seconds_sum", ""),
            lost_claims: metric("trip_lost_claims_total", ""),
            notices_relayed: metric("outbox_publish_failures_total", "outbox=\"trip\""),
            phases: PHASES.map(|phase| {
                metric(
                    "trip_dispatch_phase_duration_seconds_sum",
                    &format!("phase=\"{phase}\""),
                )
            }),
        }
    }

    fn since(self, before: Self) -> Self {
        let mut phases = self.phases;
        for (now, then) in phases.iter_mut().zip(before.phases) {
            *now -= then;
        }
        Self {
            rounds: self.rounds - before.rounds,
            seconds: self.seconds - before.seconds,
            lost_claims: self.lost_claims - before.lost_claims,
            notices_relayed: self.notices_relayed - before.notices_relayed,
            phases,
        }
    }

    /// Mean milliseconds a round.
    fn mean_ms(&self, seconds: f64) -> f64 {
        if self.rounds > 0.0 {
            seconds / self.rounds * 1e3
        } else {
            0.0
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1] as f64 / 1e3
}

pub async fn run(args: DispatchArgs, progress: impl Fn(&str)) -> anyhow::Result<DispatchReport> {
    let mut mode = if args.postgres.is_some() {
        format!("PostgreSQL + NATS, {} trip instance(s)", args.instances)
    } else {
        "embedded (SQLite)".to_owned()
    };
    if args.provider_apart {
        mode.push_str(", the card provider apart");
    }
    progress(&format!("starting the system: {mode}…"));
    let Systems {
        all,
        data_dir,
        postgres_admin,
        stream_prefix,
        provider,
    } = build(&args, &progress).await?;
    let provider_pid = provider.as_ref().and_then(Instance::pid);
    let outcome = measure(&args, all, provider_pid, &progress, mode).await;
    drop(provider);
    if let Some(admin) = postgres_admin {
        if let Err(e) = drop_database(&admin).await {
            progress(&format!("could not drop {BENCH_DATABASE}: {e:#}"));
        }
        if let Err(e) = delete_streams(&args.nats, &stream_prefix).await {
            progress(&format!(
                "could not delete the NATS streams {stream_prefix}*: {e:#}"
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    outcome
}

/// Removes the run's JetStream streams (events, leases).
async fn delete_streams(url: &str, prefix: &str) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    let client = async_nats::connect(url).await?;
    let jetstream = async_nats::jetstream::new(client);
    let mut names = jetstream.stream_names();
    let mut ours = Vec::new();
    while let Some(name) = names.next().await {
        let name = name?;
        if name.contains(prefix) {
            ours.push(name);
        }
    }
    for name in ours {
        jetstream.delete_stream(&name).await?;
    }
    Ok(())
}

async fn measure(
    args: &DispatchArgs,
    systems: Vec<System>,
    provider_pid: Option<u32>,
    progress: &impl Fn(&str),
    mode: String,
) -> anyhow::Result<DispatchReport> {
    let first = systems.first().context("no system")?;
    let trips = systems
        .iter()
        .map(System::client::<Arc<dyn TripApi>>)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bus: SharedBus = first.bus();
    let notices = bus
        .subscribe(SubscribeOptions::ephemeral(TripNotice::SUBJECT))
        .await
        .context("cannot subscribe to the trip notices")?;
    let city = City { seed: args.seed };
    let drivers: Vec<AccountId> = (0..args.drivers)
        .map(|_| platform::clock::new_id())
        .collect();
    let run = Arc::new(Run {
        ledger: Mutex::new(Ledger {
            idle_riders: (0..args.riders())
                .map(|_| platform::clock::new_id())
                .collect(),
            ..Ledger::default()
        }),
        trips,
        pricing: first.client()?,
        supply: first.client()?,
        places: (0..args.drivers)
            .map(|n| Mutex::new(city.place(n as u64)))
            .collect(),
        index: drivers.iter().enumerate().map(|(i, d)| (*d, i)).collect(),
        step: args.step,
        city,
        stop: CancellationToken::new(),
        in_window: AtomicBool::new(false),
    });
    let stop = run.stop.clone();
    let _stop_on_return = stop.clone().drop_guard();
    // The systems serve (the embedded payment service calls the provider over HTTP) until the
    // measuring ends.
    let serving: Vec<_> = systems
        .into_iter()
        .map(|system| tokio::spawn(system.run(stop.clone().cancelled_owned())))
        .collect();
    let heard = run.clone();
    tokio::spawn(bus::consume(
        notices,
        stop.clone(),
        "bench.dispatch.notices",
        move |notice: TripNotice, _| {
            heard.heard(notice);
            async { Handled::Done }
        },
    ));

    // Drivers online, at their places.
    progress(&format!(
        "{} drivers going online, {} riders…",
        args.drivers,
        args.riders()
    ));
    {
        use futures_util::StreamExt;
        let supply = run.supply.clone();
        let failures = futures_util::stream::iter(drivers.iter().enumerate())
            .map(|(i, driver)| {
                let supply = supply.clone();
                let at = city.place(i as u64);
                // The bus pushes back while its consumers catch up: a refused call is tried
                // again, as an app would.
                async move {
                    let mut last = None;
                    for _ in 0..100 {
                        let online = async {
                            supply.set_status(*driver, Some(Package::Car)).await?;
                            supply.locate(*driver, at).await.map(|_| ())
                        };
                        match online.await {
                            Ok(()) => return Ok(()),
                            Err(e) => last = Some(e),
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(last)
                }
            })
            .buffer_unordered(64)
            .filter_map(|r| std::future::ready(r.err()))
            .collect::<Vec<_>>()
            .await;
        if let Some(example) = failures.first() {
            anyhow::bail!(
                "{} drivers could not go online (e.g. {example:?})",
                failures.len()
            );
        }
    }
    // Every driver streams its position, spread evenly over the period.
    {
        let run = run.clone();
        let period = args.position_every;
        let drivers = drivers.clone();
        tokio::spawn(async move {
            let gap = period / u32::try_from(drivers.len()).unwrap_or(u32::MAX).max(1);
            let mut next = tokio::time::Instant::now() + period;
            for i in (0..drivers.len()).cycle() {
                tokio::select! {
                    () = run.stop.cancelled() => return,
                    () = tokio::time::sleep_until(next) => {}
                }
                next += gap;
                let at = *run.places[i].lock().unwrap_or_else(PoisonError::into_inner);
                let supply = run.supply.clone();
                let driver = drivers[i];
                tokio::spawn(async move { supply.locate(driver, at).await });
            }
        });
    }
    // The fleet mirrors take the statuses and positions in (a driver whose position came before
    // its status is placed by its next one).
    let warm = Instant::now();
    let mut located = 0.0;
    while warm.elapsed() < Duration::from_secs(60) {
        located = metric("trip_fleet_located", "");
        if located >= args.drivers as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    progress(&format!(
        "{located} of {} drivers placed in dispatch's fleet after {:.1} s",
        args.drivers,
        warm.elapsed().as_secs_f64()
    ));

    let before = RoundFigures::now();
    let money_before = money();
    let commits_before = group_commits();
    progress(&format!(
        "booking {} cars a second for {:?}…",
        args.rate, args.duration
    ));
    run.in_window.store(true, Ordering::Relaxed);
    let cpu_before = bench::cpu::cpu_secs(None);
    let provider_cpu = || provider_pid.and_then(|pid| bench::cpu::cpu_secs(Some(pid)));
    let provider_cpu_before = provider_cpu();
    let start = tokio::time::Instant::now();
    let end = start + args.duration;
    let booker = {
        let run = run.clone();
        let gap = Duration::from_secs_f64(1.0 / args.rate as f64);
        tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                let due = start + gap.mul_f64(n as f64);
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due).await;
                let rider = {
                    let mut ledger = run.ledger();
                    let rider = ledger.idle_riders.pop();
                    if rider.is_none() {
                        ledger.no_idle_rider += 1;
                    }
                    rider
                };
                if let Some(rider) = rider {
                    let run = run.clone();
                    tokio::spawn(async move { run.book(n, rider).await });
                }
                n += 1;
            }
        })
    };
    let mut shown = start;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if shown.elapsed() >= Duration::from_secs(5) {
            shown = tokio::time::Instant::now();
            let ledger = run.ledger();
            progress(&format!(
                "{:>3.0} s: {} booked, {} offers, {} completed, {} riders idle",
                start.elapsed().as_secs_f64(),
                ledger.book_micros.len(),
                ledger.offers,
                ledger.completed,
                ledger.idle_riders.len()
            ));
        }
    }
    booker.await.context("the booking loop")?;
    run.in_window.store(false, Ordering::Relaxed);
    let seconds = start.elapsed().as_secs_f64();
    // The last bookings get their round (and their offers' notices) before the count.
    let drain = (args.dispatch_every * 3).max(Duration::from_secs(3));
    progress(&format!(
        "bookings stopped; waiting {drain:?} for their offers…"
    ));
    tokio::time::sleep(drain).await;
    // The CPU of the drain counts too: the bookings taken last are offered (and some of their
    // trips completed and captured) in it.
    let cpu_window_secs = start.elapsed().as_secs_f64();
    let cpu_secs = bench::cpu::cpu_secs(None)
        .zip(cpu_before)
        .map(|(now, then)| now - then);
    let provider_cpu_secs = provider_cpu()
        .zip(provider_cpu_before)
        .map(|(now, then)| now - then);
    let rounds = RoundFigures::now().since(before);
    let [authorizations, captures, webhooks] = {
        let now = money();
        [0, 1, 2].map(|i| (now[i] - money_before[i]) as u64)
    };
    let mut commits = group_commits();
    for (database, during) in &mut commits {
        let before = commits_before.get(database).copied().unwrap_or_default();
        during.commits -= before.commits;
        during.transactions -= before.transactions;
        during.reruns -= before.reruns;
    }
    stop.cancel();
    for system in serving {
        let _ = system.await;
    }

    let mut ledger = std::mem::take(&mut *run.ledger());
    ledger.book_micros.sort_unstable();
    let mut waits: Vec<u64> = ledger
        .trips
        .values()
        .filter_map(|t| {
            let wait = t.offered?.checked_duration_since(t.asked?)?;
            u64::try_from(wait.as_micros()).ok()
        })
        .collect();
    waits.sort_unstable();
    let booked = ledger.book_micros.len() as u64;
    let cores = bench::cpu::cores();
    let (cpu_ms_per_booking, provider_cpu_ms_per_booking, booking_ceiling_per_sec) = booking_costs(
        booked,
        cores,
        cpu_secs,
        args.provider_apart,
        provider_cpu_secs,
    );
    Ok(DispatchReport {
        mode,
        instances: args.instances,
        drivers: args.drivers,
        riders: args.riders(),
        seconds,
        rate_asked: args.rate,
        no_idle_rider: ledger.no_idle_rider,
        booked,
        booked_per_sec: booked as f64 / seconds,
        book_p50_ms: percentile(&ledger.book_micros, 0.5),
        book_p99_ms: percentile(&ledger.book_micros, 0.99),
        offered: waits.len() as u64,
        offers_per_sec: ledger.offers as f64 / seconds,
        book_to_offer_p50_ms: percentile(&waits, 0.5),
        book_to_offer_p90_ms: percentile(&waits, 0.9),
        book_to_offer_p99_ms: percentile(&waits, 0.99),
        book_to_offer_max_ms: percentile(&waits, 1.0),
        never_offered: ledger
            .trips
            .values()
            .filter(|t| t.booked.is_some() && t.offered.is_none())
            .count() as u64,
        completed: ledger.completed,
        completed_per_sec: ledger.completed as f64 / seconds,
        rounds: rounds.rounds as u64,
        round_mean_ms: rounds.mean_ms(rounds.seconds),
        round_phase_mean_ms: PHASES
            .iter()
            .zip(rounds.phases)
            .map(|(phase, seconds)| ((*phase).to_owned(), rounds.mean_ms(seconds)))
            .collect(),
        lost_claims: rounds.lost_claims as u64,
        notices_relayed: rounds.notices_relayed as u64,
        refused_by: refused_by_consumer(),
        group_commits: commits,
        errors: ledger.errors,
        cpu_secs,
        cpu_window_secs,
        cores,
        provider_cpu_secs,
        cpu_ms_per_booking,
        provider_cpu_ms_per_booking,
        booking_ceiling_per_sec,
        authorizations,
        captures,
        webhooks,
    })
}

pub fn table(report: &DispatchReport) -> String {
    let mut out = format!(
        "{}: {} drivers, {} riders, {} bookings/s asked for {:.1} s\n\
         booked      {:>8} ({:.0}/s; booking call p50 {:.1} ms, p99 {:.1} ms); {} due with no idle rider\n\
         offered     {:>8} trips ({:.0} offers/s); never offered {}\n\
         book → offer p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms\n\
         completed   {:>8} ({:.0}/s)\n\
         payments    {} authorizations, {} captures, {} webhooks taken\n\
         rounds      {:>8} (mean {:.1} ms: {}); lost claims {}",
        report.mode,
        report.drivers,
        report.riders,
        report.rate_asked,
        report.seconds,
        report.booked,
        report.booked_per_sec,
        report.book_p50_ms,
        report.book_p99_ms,
        report.no_idle_rider,
        report.offered,
        report.offers_per_sec,
        report.never_offered,
        report.book_to_offer_p50_ms,
        report.book_to_offer_p90_ms,
        report.book_to_offer_p99_ms,
        report.book_to_offer_max_ms,
        report.completed,
        report.completed_per_sec,
        report.authorizations,
        report.captures,
        report.webhooks,
        report.rounds,
        report.round_mean_ms,
        PHASES
            .iter()
            .map(|p| format!(
                "{p} {:.1}",
                report.round_phase_mean_ms.get(*p).copied().unwrap_or(0.0)
            ))
            .collect::<Vec<_>>()
            .join(", "),
        report.lost_claims,
    );
    if report.notices_relayed > 0 || !report.refused_by.is_empty() {
        out.push_str(&format!(
            "\nnotices refused by the bus after their commit, published late by the relay: {}",
            report.notices_relayed
        ));
        for (consumer, count) in &report.refused_by {
            out.push_str(&format!(
                "\n  refused {count} publishes: {consumer} was behind"
            ));
        }
    }
    if !report.group_commits.is_empty() {
        let each = report
            .group_commits
            .iter()
            .map(|(database, c)| {
                format!(
                    "{database} {} ({:.1} transactions each, {} run again)",
                    c.commits,
                    c.transactions as f64 / c.commits.max(1) as f64,
                    c.reruns
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!("\ncommits     {each}"));
    }
    if let (Some(cpu), Some(each)) = (report.cpu_secs, report.cpu_ms_per_booking) {
        let provider = match (report.provider_cpu_secs, report.provider_cpu_ms_per_booking) {
            (Some(cpu), Some(each)) => {
                format!(" + the card provider's process {cpu:.1} s ({each:.2} ms a booking)")
            }
            _ => String::new(),
        };
        let ceiling = report
            .booking_ceiling_per_sec
            .map_or("no ceiling measured".to_owned(), |ceiling| {
                format!("about {ceiling:.0} bookings/s on this machine's cores")
            });
        out.push_str(&format!(
            "\ncpu         {cpu:.1} s ({each:.2} ms a booking){provider} of {:.1} s on {} cores \
             (the bookings and the drain): {ceiling}",
            report.cpu_window_secs * report.cores as f64,
            report.cores,
        ));
    }
    for (call, (count, example)) in &report.errors {
        out.push_str(&format!("\nerrors {call}: {count} (e.g. {example})"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_line_gives_its_label_and_value() {
        let line = r#"store_group_commit_size_sum{database="trip-db"} 1234"#;
        let rest = line
            .strip_prefix("store_group_commit_size_sum{")
            .expect("the name");
        assert_eq!(labelled(rest, "database"), Some(("trip-db", 1234.0)));
        assert_eq!(labelled(rest, "consumer"), Some(("?", 1234.0)));
        assert_eq!(labelled(r#"database="x"} nan-ish"#, "database"), None);
    }

    #[test]
    fn the_city_is_deterministic_and_trips_go_somewhere() {
        let city = City { seed: 7 };
        assert_eq!(city.place(3), city.place(3));
        for n in 0..1_000 {
            let (pickup, dropoff) = city.trip(n);
            assert_ne!(pickup, dropoff);
            for at in [pickup, dropoff] {
                assert!((23.70..=23.86).contains(&at.lat()), "{at:?}");
            }
        }
        assert_ne!(City { seed: 8 }.place(3), city.place(3));
    }

    #[test]
    fn percentiles_are_of_the_sorted_samples_in_milliseconds() {
        let sorted: Vec<u64> = (1..=100).map(|ms| ms * 1_000).collect();
        assert_eq!(percentile(&sorted, 0.5), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&sorted, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    /// A small embedded run end to end: every booking is offered, the drivers complete trips,
    /// nothing fails, and the figures are the run's own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_city_books_offers_and_completes_trips() {
        use clap::Parser;

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: DispatchArgs,
        }
        let args = Cli::parse_from(
            "b --drivers 150 --riders 200 --rate 40 --duration 4s --step 50ms \
             --dispatch-every 200ms --position-every 1s"
                .split_whitespace(),
        )
        .args;
        args.check().expect("valid arguments");
        let report = run(args, |_| {}).await.expect("the bench runs");
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        // 40 a second for 4 s, and 200 riders: every booking due is sent.
        assert_eq!(report.no_idle_rider, 0);
        assert!(report.booked >= 150, "{report:?}");
        assert!(
            report.offered > 0 && report.offered <= report.booked,
            "{report:?}"
        );
        assert!(report.completed > 0, "{report:?}");
        assert!(
            report.rounds > 0 && report.round_mean_ms > 0.0,
            "{report:?}"
        );
        assert!(
            report.book_to_offer_p50_ms <= report.book_to_offer_p99_ms
                && report.book_to_offer_p99_ms <= report.book_to_offer_max_ms,
            "{report:?}"
        );
        // Every booking asked for its fare's hold first, and the provider's webhooks came back.
        assert!(report.authorizations >= report.booked, "{report:?}");
        assert!(report.webhooks > 0, "{report:?}");
        assert_eq!(report.provider_cpu_secs, None);
        if cfg!(target_os = "linux") {
            assert!(
                report
                    .cpu_ms_per_booking
                    .is_some_and(|ms| ms > 0.0 && ms.is_finite()),
                "{report:?}"
            );
        }
        let table = table(&report);
        assert!(table.contains("book → offer"), "{table}");
    }

    #[test]
    fn a_booking_costs_the_cpu_of_both_processes_over_the_bookings() {
        assert_eq!(
            booking_costs(1_000, 2, Some(4.0), false, None),
            (Some(4.0), None, Some(500.0))
        );
        // The provider's process shares the machine: its CPU counts against the ceiling…
        assert_eq!(
            booking_costs(1_000, 2, Some(3.0), true, Some(1.0)),
            (Some(3.0), Some(1.0), Some(500.0))
        );
        // …so without it there is no ceiling, and none from a window too short to measure.
        assert_eq!(booking_costs(1_000, 2, Some(3.0), true, None).2, None);
        assert_eq!(booking_costs(1_000, 2, Some(0.0), false, None).2, None);
        assert_eq!(
            booking_costs(0, 2, Some(4.0), false, None),
            (None, None, None)
        );

        let report = DispatchReport {
            booked: 1_000,
            cpu_secs: Some(3.0),
            cpu_window_secs: 10.0,
            cores: 2,
            provider_cpu_secs: Some(1.0),
            cpu_ms_per_booking: Some(3.0),
            provider_cpu_ms_per_booking: Some(1.0),
            booking_ceiling_per_sec: Some(500.0),
            ..DispatchReport::default()
        };
        let table = table(&report);
        assert!(
            table.contains("3.0 s (3.00 ms a booking) + the card provider's process 1.0 s (1.00 ms a booking) of 20.0 s on 2 cores"),
            "{table}"
        );
        assert!(table.contains("about 500 bookings/s"), "{table}");
    }

    #[test]
    fn the_bench_database_is_on_the_server_given() {
        let (admin, url) = database_urls("postgres://postgres@127.0.0.1:5432").expect("a URL");
        assert_eq!(admin, "postgres://postgres@127.0.0.1:5432/postgres");
        assert_eq!(
            url,
            format!("postgres://postgres@127.0.0.1:5432/{BENCH_DATABASE}")
        );
        assert!(database_urls("not a url").is_err());
    }
}
