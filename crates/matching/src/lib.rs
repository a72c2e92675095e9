//! The matching engine, one for both protocols:
//!
//! - an incremental geo index of the free drivers, fed by their events (no rebuild per round):
//!   `Pool` for the course protocol's plane, `Fleet` for product trips on the globe;
//! - the batched sparse optimal assignment (`domain::matching`), over every driver in reach;
//! - geographic shards owned by instances through leases (`leases`): an instance pairs the riders
//!   of the shards it holds, with candidates from any shard, and a claim on the driver keeps two
//!   owners from taking the same one (a key in the lease bucket for the course, the trip store's
//!   unique offer per driver for trips).
//!
//! Its two users: the course matching service below (`MatchingService`, seed 002: pair at once and
//! announce `RideMatched`), and product dispatch (`trip::dispatch`: offer; accept, decline,
//! timeout; exclusions).
//!
//! The course service owns the pool of waiting riders and free drivers. It learns of both from
//! the bus (`RideRequested`, `DriverAvailable`), pairs them every tick with the configured
//! strategy, and announces `RideMatched` (with the fare) and `RideExpired`. It never talks to
//! riders or drivers directly and never stores anything durable: the course holds requests in
//! memory by design. Every instance sees every event and mirrors the whole pool, but pairs only the
//! riders of the shards it holds, claims each pair before announcing it, and removes pairs made by
//! others when their `RideMatched` arrives. A new owner of a shard therefore already holds its
//! riders and drivers (a starting instance joins only after watching for one hold time).

pub mod config;
pub mod fleet;
pub mod leases;
pub mod module;
mod pool;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use config::MatchingConfig;
use domain::events::{DriverAvailable, Event, RideExpired, RideMatched, RideRequested};
use domain::fare::{CURRENCY, course_fare};
use domain::matching::shard_of;
use platform::bus::{self, BusError, Envelope, Handled, SharedBus, SubscribeOptions, Subscription};
use platform::outbox::{MemoryOutbox, Outbox, RelayPace};
use platform::{Shutdown, clock};
use tokio::time::MissedTickBehavior;

pub use fleet::{Ask, Fleet, Reach};
pub use leases::{AllShards, Claim, KvLeases, LeaseConfig, Leases};
pub use module::Module;
pub use pool::{Pairing, Pool, Proposed, Snapshot, TickOutcome};

pub struct MatchingService {
    announcements: Announcements,
    config: MatchingConfig,
    pool: Arc<Mutex<Pool>>,
    riders: Subscription,
    drivers: Subscription,
    matches: Subscription,
}

impl MatchingService {
    /// Subscribes to its inputs (every instance gets every event), so nothing published after
    /// `build` returns is missed.
    pub async fn build(bus: SharedBus, config: MatchingConfig) -> Result<Self, BusError> {
        let riders = bus
            .subscribe(SubscribeOptions::ephemeral(RideRequested::SUBJECT))
            .await?;
        let drivers = bus
            .subscribe(SubscribeOptions::ephemeral(DriverAvailable::SUBJECT))
            .await?;
        let matches = bus
            .subscribe(SubscribeOptions::ephemeral(RideMatched::SUBJECT))
            .await?;
        let index_cell = config.index_cell;
        let table = Arc::new(MemoryOutbox::default());
        Ok(Self {
            announcements: Announcements {
                outbox: Outbox::new("matching", bus.clone(), table.clone()),
                table,
            },
            config,
            pool: Arc::new(Mutex::new(Pool::new(index_cell))),
            riders,
            drivers,
            matches,
        })
    }

    /// Spawns the consumers, the ticker and the relay of announcements; `leases` says which
    /// shards this instance pairs.
    pub fn run(self, shutdown: &Shutdown, leases: Arc<dyn Leases>) {
        let Self {
            announcements,
            config,
            pool,
            riders,
            drivers,
            matches,
        } = self;
        let (cell, shards) = (config.shard_cell, config.shards);

        let rider_pool = pool.clone();
        shutdown.spawn(bus::consume(
            riders,
            shutdown.token(),
            "matching.riders",
            move |event: RideRequested, _| {
                let shard = shard_of(&event.request.position, cell, shards);
                lock(&rider_pool).add_rider(event.request, shard, clock::now());
                async { Handled::Done }
            },
        ));
        let driver_pool = pool.clone();
        shutdown.spawn(bus::consume(
            drivers,
            shutdown.token(),
            "matching.drivers",
            move |event: DriverAvailable, _| {
                lock(&driver_pool).add_driver(event.report, clock::now());
                async { Handled::Done }
            },
        ));
        let match_pool = pool.clone();
        shutdown.spawn(bus::consume(
            matches,
            shutdown.token(),
            "matching.matches",
            move |event: RideMatched, _| {
                lock(&match_pool).forget_match(
                    event.request_id,
                    &event.rider,
                    &event.driver,
                    event.matched_at,
                    clock::now(),
                );
                async { Handled::Done }
            },
        ));
        announcements.relay()(shutdown);
        let token = shutdown.token();
        shutdown.spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(config.tick_ms));
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            tracing::info!(
                tick_ms = config.tick_ms,
                hold_ms = config.hold_ms,
                strategy = %config.strategy,
                shards = config.shards,
                "matching started"
            );
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = interval.tick() => {}
                }
                run_tick(&announcements, &pool, &config, leases.as_ref()).await;
            }
        });
    }
}

enum Step {
    Done(TickOutcome, usize, usize),
    Solve(Snapshot),
}

/// Up to this many waiting riders a tick pairs under the pool's lock in one step (a few
/// milliseconds); beyond it the batch is solved off the lock. Small ticks get the dense graph
/// (`Limits::dense_up_to`): 1,000 riders take 40–70 ms there, 100 a few.
const INLINE_TICK_RIDERS: usize = 100;

fn lock(pool: &Mutex<Pool>) -> std::sync::MutexGuard<'_, Pool> {
    pool.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where matches and expiries are announced: each event is kept in an in-memory outbox until the
/// bus took it, so a publish that fails (a NATS outage) is retried by the relay with the same id.
#[derive(Clone)]
pub struct Announcements {
    outbox: Outbox,
    table: Arc<MemoryOutbox>,
}

impl Announcements {
    /// Keeps `event` and publishes it (the relay retries it if that fails).
    async fn announce<E: Event>(&self, event: &E, at: domain::Timestamp) {
        match Envelope::from_event(event, clock::new_id(), at) {
            Ok(envelope) => {
                let pending = self.table.write(&envelope);
                self.outbox.publish_committed(vec![pending]).await;
            }
            Err(e) => {
                tracing::error!(error = %e, subject = E::SUBJECT, "cannot encode an announcement")
            }
        }
    }

    /// The relay of announcements whose publish failed.
    pub fn relay(&self) -> impl FnOnce(&Shutdown) + Send + 'static {
        self.outbox.clone().relay(RelayPace::default())
    }
}

/// Runs a city-sized solve on a thread of its own at the lowest CPU priority (nice 19 on Linux):
/// on a busy machine requests, reports and deliveries run first and the solve takes the CPU they
/// leave, instead of a core of their own for hundreds of milliseconds a tick (docs/BENCHMARKS.md,
/// "The edge under the course mix"). The solve takes longer when the machine is busy.
async fn solve_behind_requests<T: Send + 'static>(
    solve: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("matching-solve".into())
        .spawn(move || {
            if let Err(e) =
                thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min)
            {
                tracing::debug!(error = ?e, "the solve runs at normal priority");
            }
            let _ = done.send(solve());
        })?;
    Ok(result.await?)
}

async fn run_tick(
    announcements: &Announcements,
    pool: &Mutex<Pool>,
    config: &MatchingConfig,
    leases: &dyn Leases,
) {
    let started = Instant::now();
    let owned = leases.owned();
    let now = clock::now();
    let (strategy, limits) = (config.strategy, config.limits());
    let owns = |shard: u32| owned.contains(&shard);
    // A small batch (milliseconds) is paired under the pool's lock in one step. A city-sized one
    // is solved from a snapshot on a blocking thread, the lock held only to take the snapshot and
    // to apply the pairs, so reports keep landing meanwhile (docs/ARCHITECTURE.md).
    let step = {
        let mut guard = lock(pool);
        if guard.waiting_riders() <= INLINE_TICK_RIDERS {
            let outcome = guard.tick(now, config.hold_ms, strategy, limits, owns);
            Step::Done(outcome, guard.waiting_riders(), guard.free_drivers())
        } else {
            Step::Solve(guard.snapshot(owns))
        }
    };
    let (outcome, waiting, free) = match step {
        Step::Done(outcome, waiting, free) => (outcome, waiting, free),
        Step::Solve(snapshot) => {
            let proposed = match solve_behind_requests(move || snapshot.solve(strategy, limits))
                .await
            {
                Ok(proposed) => proposed,
                Err(e) => {
                    tracing::error!(error = %e, "the matching solve failed; its riders wait for the next tick");
                    Vec::new()
                }
            };
            let mut guard = lock(pool);
            let outcome = guard.apply(proposed, now, config.hold_ms, owns);
            (outcome, guard.waiting_riders(), guard.free_drivers())
        }
    };
    metrics::histogram!("matching_tick_duration_seconds").record(started.elapsed().as_secs_f64());
    metrics::gauge!("matching_waiting_riders").set(waiting as f64);
    metrics::gauge!("matching_free_drivers").set(free as f64);
    metrics::counter!("matching_matches_total").increment(outcome.pairings.len() as u64);
    metrics::counter!("matching_expired_requests_total").increment(outcome.expired.len() as u64);

    // Claim every pair (concurrently) before announcing it; a pair another instance already has
    // is not announced, and our side of it waits again.
    let claims = futures_util::future::join_all(
        outcome
            .pairings
            .iter()
            .map(|p| leases.claim(p.request.id, &p.driver.driver)),
    )
    .await;
    let mut matched = Vec::new();
    for (pairing, claim) in outcome.pairings.into_iter().zip(claims) {
        if claim != Claim::Won {
            // Put both sides back. If another instance really announced the pair, its
            // `RideMatched` tombstones refuse them (or remove them when it arrives); if the
            // claimant died before announcing, its claims expire and the pair is tried again.
            tracing::info!(?claim, rider = %pairing.request.rider, driver = %pairing.driver.driver, "pair not announced");
            metrics::counter!("matching_lost_claims_total").increment(1);
            let mut pool = lock(pool);
            pool.add_rider(pairing.request, pairing.shard, now);
            pool.add_driver(pairing.driver, now);
            continue;
        }
        lock(pool).forget_match(
            pairing.request.id,
            &pairing.request.rider,
            &pairing.driver.driver,
            now,
            now,
        );
        let event = matched_event(outcome.tick, pairing, now);
        tracing::info!(
            tick = event.tick,
            rider = %event.rider,
            driver = %event.driver,
            car = %event.car_number,
            pickup_distance = event.pickup_distance,
            fare = event.fare,
            "matched"
        );
        matched.push(event);
        if matched.len().is_multiple_of(ANNOUNCE_SLICE) {
            tokio::task::yield_now().await;
        }
    }
    // Announced concurrently: a publish the bus holds up (a stream electing its leader) delays
    // the tick once per slice of 64, not once per pair. In slices, giving way between them: a
    // city's tick has thousands, and one task polling them all would hold a worker for tens of
    // milliseconds while requests wait (docs/BENCHMARKS.md, "The edge under the course mix").
    for slice in matched.chunks(ANNOUNCE_SLICE) {
        let announced = slice.iter().map(|event| announcements.announce(event, now));
        futures_util::future::join_all(announced).await;
        tokio::task::yield_now().await;
    }
    let expired: Vec<RideExpired> = outcome
        .expired
        .into_iter()
        .map(|request| RideExpired {
            request_id: request.id,
            rider: request.rider,
            requested_at: request.requested_at,
            expired_at: now,
        })
        .collect();
    for slice in expired.chunks(ANNOUNCE_SLICE) {
        futures_util::future::join_all(slice.iter().map(|e| announcements.announce(e, now))).await;
        tokio::task::yield_now().await;
    }
}

/// Announcements published together before the tick gives way to other tasks.
const ANNOUNCE_SLICE: usize = 64;

fn matched_event(tick: u64, pairing: Pairing, now: domain::Timestamp) -> RideMatched {
    let fare = course_fare(&pairing.request);
    RideMatched {
        match_id: clock::new_id(),
        tick,
        request_id: pairing.request.id,
        rider: pairing.request.rider,
        rider_position: pairing.request.position,
        destination: pairing.request.destination,
        driver: pairing.driver.driver,
        car_number: pairing.driver.car_number,
        driver_position: pairing.driver.position,
        pickup_distance: pairing.pickup_distance,
        trip_distance: fare.trip_distance,
        fare: fare.amount,
        currency: CURRENCY.to_owned(),
        requested_at: pairing.request.requested_at,
        matched_at: now,
    }
}

#[cfg(test)]
mod tests {
    use domain::course::RideRequestDraft;
    use domain::{CarNumber, DriverReport, PersonName, Point, RideRequest};
    use platform::bus::InProcessBus;

    use super::*;

    /// The in-process bus, whose publishes of matches fail while `down` is set.
    struct LosesMatches {
        inner: InProcessBus,
        down: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl platform::bus::Bus for LosesMatches {
        async fn publish(&self, envelope: Envelope) -> Result<(), BusError> {
            if envelope.subject == RideMatched::SUBJECT
                && self.down.load(std::sync::atomic::Ordering::SeqCst)
            {
                return Err(BusError::Backend("the bus is down (test)".into()));
            }
            self.inner.publish(envelope).await
        }

        async fn subscribe(&self, options: SubscribeOptions) -> Result<Subscription, BusError> {
            self.inner.subscribe(options).await
        }
    }

    #[tokio::test]
    async fn requests_and_reports_on_the_bus_become_a_priced_match() {
        a_request_and_a_report_become_a_priced_match(false).await;
    }

    /// A match whose publish fails is announced by the relay (the course keeps no database: the
    /// outbox is in memory).
    #[tokio::test]
    async fn a_match_whose_publish_failed_is_still_announced() {
        a_request_and_a_report_become_a_priced_match(true).await;
    }

    async fn a_request_and_a_report_become_a_priced_match(lose_the_first_publish: bool) {
        let flaky = Arc::new(LosesMatches {
            inner: InProcessBus::new(),
            down: std::sync::atomic::AtomicBool::new(lose_the_first_publish),
        });
        let bus: SharedBus = flaky.clone();
        let mut matches = bus
            .subscribe(SubscribeOptions::ephemeral(RideMatched::SUBJECT))
            .await
            .expect("subscribe");
        let config = MatchingConfig {
            tick_ms: 20,
            hold_ms: 1_000,
            ..MatchingConfig::default()
        };
        let shutdown = Shutdown::new();
        MatchingService::build(bus.clone(), config)
            .await
            .expect("builds")
            .run(&shutdown, Arc::new(AllShards(1)));

        let request = RideRequest::new(
            clock::new_id(),
            RideRequestDraft {
                rider: PersonName::parse("Asha").expect("valid"),
                position: Point::new(0.0, 0.0).expect("valid"),
                destination: Point::new(6.0, 8.0).expect("valid"),
            },
            clock::now(),
        );
        bus::publish_event(
            bus.as_ref(),
            &RideRequested {
                request: request.clone(),
            },
        )
        .await
        .expect("publish");
        let report = DriverReport {
            driver: PersonName::parse("Karim").expect("valid"),
            car_number: CarNumber::parse("DHA-1").expect("valid"),
            position: Point::new(3.0, 4.0).expect("valid"),
            reported_at: clock::now(),
        };
        bus::publish_event(bus.as_ref(), &DriverAvailable { report })
            .await
            .expect("publish");

        if lose_the_first_publish {
            // The tick's publish fails; nothing arrives while the bus is down.
            assert!(
                tokio::time::timeout(Duration::from_millis(500), matches.next())
                    .await
                    .is_err()
            );
            flaky.down.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        // The relay's grace is 3 s.
        let delivery = tokio::time::timeout(Duration::from_secs(8), matches.next())
            .await
            .expect("a match within 8 s")
            .expect("open");
        let event: RideMatched = delivery.envelope.decode().expect("decodes");
        assert_eq!(event.request_id, request.id);
        assert_eq!(event.driver.as_str(), "Karim");
        assert_eq!(event.pickup_distance, 5.0);
        assert_eq!(event.trip_distance, 10.0);
        assert_eq!(event.fare, 20.0);
        assert!(
            tokio::time::timeout(Duration::from_millis(1_000), matches.next())
                .await
                .is_err(),
            "announced once"
        );
        assert!(
            shutdown.complete(Duration::from_secs(5)).await,
            "stops cleanly"
        );
    }
}
