//! Dispatch: every `trips.dispatch_ms`, each instance takes the searching trips whose pickup lies
//! in a shard it holds (leases from the matching engine: all shards in the embedded mode, shared
//! through a NATS key-value bucket in the distributed mode), expires their lapsed offers and
//! searches, then offers them to free drivers of their package in one batch: the candidate pairs
//! are the drivers within `max_pickup_m` of each pickup, in any shard, minus the drivers the trip
//! excludes and those holding a trip, solved for the least total pickup distance by the engine
//! (`matching::Fleet`, over the same sparse exact solver the course matcher uses).
//!
//! Several instances dispatch at once, each its own shards. The fleet (online drivers, their
//! package and last position) is mirrored from supply's `DriverStatusChanged` / `DriverLocated`
//! events by every instance, into an incremental index. Drivers holding a trip come from the store,
//! whose unique index on the holding driver is the claim: of two offers to one driver made by
//! neighbouring shards' owners, the second is refused (`DriverBusy`) and its trip waits for the
//! next round.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::TripsConfig;
use domain::events::{DriverLocated, DriverStatusChanged, Event};
use domain::matching::shard_of_place;
use domain::trip::{Command, TripState};
use domain::{AccountId, Package, Timestamp};
use matching::{Ask, Fleet, Leases, Reach};
use platform::bus::{self, BusError, Handled, SharedBus, SubscribeOptions, Subscription};
use platform::{Shutdown, clock};
use tokio::time::MissedTickBehavior;

use crate::TripError;
use crate::service::TripService;
use crate::store::TripRecord;

/// The most open trips one round looks at.
const ROUND_TRIPS: u32 = 20_000;

/// The most driver statuses recorded in one write.
const STATUS_BATCH: usize = 256;

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Shards this instance held for the round (none: it did nothing).
    pub shards: usize,
    pub offers: usize,
    /// Offers refused at the commit: another instance gave the driver a trip first (the claim),
    /// or the trip changed meanwhile.
    pub lost_claims: usize,
    pub expired_offers: usize,
    pub expired_searches: usize,
    pub searching: usize,
    /// Searching trips of this instance's shards that no free driver could be offered: none in
    /// reach (`trips.max_pickup_m`), or every one busy.
    pub unserved: usize,
}

pub struct Dispatcher {
    service: TripService,
    fleet: Arc<Mutex<Fleet>>,
    config: TripsConfig,
    leases: Arc<dyn Leases>,
    statuses: Option<Subscription>,
    locations: Option<Subscription>,
}

fn lock(fleet: &Mutex<Fleet>) -> std::sync::MutexGuard<'_, Fleet> {
    fleet.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Dispatcher {
    /// Subscribes to the fleet's events (fan-out: every instance mirrors the fleet), then loads
    /// the drivers recorded online, so a (re)started instance knows them before their next
    /// status; their next position makes them available.
    pub async fn build(
        service: TripService,
        bus: &SharedBus,
        config: TripsConfig,
        leases: Arc<dyn Leases>,
    ) -> Result<Self, TripError> {
        let bus_error = |e: BusError| TripError::Unavailable(e.to_string());
        let statuses = bus
            .subscribe(SubscribeOptions::ephemeral(DriverStatusChanged::SUBJECT))
            .await
            .map_err(bus_error)?;
        let locations = bus
            .subscribe(SubscribeOptions::ephemeral(DriverLocated::SUBJECT))
            .await
            .map_err(bus_error)?;
        let mut fleet = Fleet::new((config.max_pickup_m / 4.0).max(50.0));
        let online = service
            .store()
            .online_drivers()
            .await
            .map_err(|e| TripError::Store(e.to_string()))?;
        for (driver, package) in online {
            fleet.known_online(driver, package);
        }
        Ok(Self {
            service,
            fleet: Arc::new(Mutex::new(fleet)),
            config,
            leases,
            statuses: Some(statuses),
            locations: Some(locations),
        })
    }

    pub fn fleet(&self) -> Arc<Mutex<Fleet>> {
        self.fleet.clone()
    }

    /// Spawns the fleet consumers and the round ticker.
    pub fn run(mut self, shutdown: &Shutdown) {
        if let Some(statuses) = self.statuses.take() {
            let fleet = self.fleet.clone();
            let store = self.service.store().clone();
            shutdown.spawn(bus::consume_batches(
                statuses,
                shutdown.token(),
                "trip.fleet.status",
                STATUS_BATCH,
                move |envelopes| {
                    let events: Vec<DriverStatusChanged> =
                        bus::decode_all(&envelopes, "trip.fleet.status");
                    {
                        let mut fleet = lock(&fleet);
                        for event in &events {
                            fleet.status(event);
                        }
                    }
                    // Every instance records them (idempotent, newest wins), so whichever starts
                    // next knows who is online; many in one write (a shift change brings
                    // thousands at once).
                    let statuses: Vec<_> = events
                        .iter()
                        .map(|event| (event.driver, event.package, event.at))
                        .collect();
                    let store = store.clone();
                    async move {
                        match store.set_driver_statuses(&statuses).await {
                            Ok(()) => Handled::Done,
                            Err(e) => {
                                Handled::Retry(format!("cannot record drivers' statuses: {e}"))
                            }
                        }
                    }
                },
            ));
        }
        if let Some(locations) = self.locations.take() {
            let fleet = self.fleet.clone();
            shutdown.spawn(bus::consume(
                locations,
                shutdown.token(),
                "trip.fleet.location",
                move |event: DriverLocated, _| {
                    lock(&fleet).located(&event);
                    async { Handled::Done }
                },
            ));
        }
        let token = shutdown.token();
        shutdown.spawn(async move {
            let mut interval =
                tokio::time::interval(Duration::from_millis(self.config.dispatch_ms));
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = interval.tick() => {}
                }
                let started = std::time::Instant::now();
                let result = self.round(clock::now()).await;
                metrics::histogram!("trip_dispatch_round_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                match result {
                    Ok(round) => {
                        metrics::counter!("trip_offers_total").increment(round.offers as u64);
                        metrics::counter!("trip_offers_lapsed_total")
                            .increment(round.expired_offers as u64);
                        metrics::counter!("trip_searches_expired_total")
                            .increment(round.expired_searches as u64);
                        metrics::counter!("trip_lost_claims_total")
                            .increment(round.lost_claims as u64);
                        metrics::gauge!("trip_searching").set(round.searching as f64);
                        metrics::gauge!("trip_searching_unserved").set(round.unserved as f64);
                        metrics::gauge!("trip_dispatch_shards").set(round.shards as f64);
                    }
                    Err(e) => tracing::warn!(error = %e, "a dispatch round failed"),
                }
            }
        });
    }

    /// One round at `now` over the shards this instance holds (public for tests, which drive
    /// rounds by hand).
    pub async fn round(&self, now: Timestamp) -> Result<Round, TripError> {
        let owned = self.leases.owned();
        if owned.is_empty() {
            return Ok(Round::default());
        }
        let (shards, resolution) = (self.config.shards, self.config.shard_resolution);
        let owns = |record: &TripRecord| {
            owned.contains(&shard_of_place(&record.pickup, resolution, shards))
        };
        // The other shards' searching trips compete for the same drivers near the edges: they
        // are solved along (never offered here), see `matching::Fleet::pair`.
        let store = self.service.store().clone();
        let store_error = |e: crate::store::StoreError| TripError::Store(e.to_string());
        let mut round = Round {
            shards: owned.len(),
            ..Round::default()
        };
        let policy = *self.service.policy();
        // The searching trips in the store's order (the same on every instance), each marked
        // whether it is ours to offer.
        let mut searching: Vec<(bool, TripRecord)> = Vec::new();
        // Busy drivers first, open trips second, and the drivers of the offered trips among them
        // added: a trip offered by another instance in between is then no longer searching and
        // its driver is busy — one consistent picture, the same every instance solves (with the
        // reads the other way round, a trip could still look searching while its driver already
        // looked busy, and the instances would solve different problems).
        let started = std::time::Instant::now();
        let mut busy: HashSet<AccountId> = store
            .busy_drivers()
            .await
            .map_err(store_error)?
            .into_iter()
            .collect();
        let open = store.open_trips(ROUND_TRIPS).await.map_err(store_error)?;
        busy.extend(open.iter().filter_map(|r| match r.trip.state {
            TripState::Offered { driver, .. } => Some(driver),
            _ => None,
        }));
        let read = started.elapsed();
        for record in open {
            if !owns(&record) {
                if record.trip.state == TripState::Searching
                    && now.millis_since(record.trip.requested_at) < policy.search_timeout_ms
                {
                    searching.push((false, record));
                }
                continue;
            }
            let expiry = match record.trip.state {
                TripState::Offered { offered_at, .. } => (now.millis_since(offered_at)
                    >= policy.offer_timeout_ms)
                    .then_some(Command::ExpireOffer),
                TripState::Searching => {
                    if now.millis_since(record.trip.requested_at) >= policy.search_timeout_ms {
                        Some(Command::ExpireSearch)
                    } else {
                        searching.push((true, record));
                        continue;
                    }
                }
                _ => None,
            };
            if let Some(command) = expiry {
                // Another writer (an accept racing the timeout) may win: that is fine, but its
                // driver is then busy.
                if self
                    .service
                    .transition(record.id, now, |_| Ok(command))
                    .await
                    .is_ok()
                {
                    match command {
                        Command::ExpireOffer => round.expired_offers += 1,
                        _ => round.expired_searches += 1,
                    }
                } else if let Some(driver) = record.trip.state.driver() {
                    busy.insert(driver);
                }
            }
        }
        let expired = started.elapsed();
        round.searching = searching.iter().filter(|(ours, _)| *ours).count();
        let reach = Reach {
            max_pickup_m: self.config.max_pickup_m,
            fresh_since: now
                .plus_millis(-i64::try_from(self.config.position_ttl_ms).unwrap_or(i64::MAX)),
            busy: &busy,
        };
        let mut offers = Vec::new();
        {
            let fleet = lock(&self.fleet);
            metrics::gauge!("trip_fleet_online").set(fleet.online() as f64);
            metrics::gauge!("trip_fleet_located").set(
                Package::ALL
                    .iter()
                    .map(|p| fleet.indexed(*p))
                    .sum::<usize>() as f64,
            );
        }
        for package in Package::ALL {
            let trips: Vec<&(bool, TripRecord)> = searching
                .iter()
                .filter(|(_, t)| t.package == package)
                .collect();
            if !trips.iter().any(|(ours, _)| *ours) {
                continue;
            }
            let asks: Vec<Ask<'_, _>> = trips
                .iter()
                .map(|(_, t)| Ask {
                    pickup: t.pickup,
                    excluded: &t.trip.excluded,
                })
                .collect();
            let pairs = lock(&self.fleet).pair(
                package,
                &asks,
                |ask| trips[ask].0,
                reach,
                |excluded, driver| excluded.contains(driver),
            );
            offers.extend(
                pairs
                    .into_iter()
                    .map(|(ask, driver)| (trips[ask].1.clone(), driver)),
            );
        }
        let solved = started.elapsed();
        // The round's offers in a few transactions: one commit for many, not one per offer.
        let wanted = offers.len();
        let offered = usize::try_from(self.service.offer_all(offers, now).await?).unwrap_or(0);
        // Where a round's time goes: reading the open trips and busy drivers, expiring lapsed
        // offers and searches (a write each), solving, writing the offers.
        for (phase, took) in [
            ("read", read),
            ("expire", expired - read),
            ("solve", solved - expired),
            ("write", started.elapsed() - solved),
        ] {
            metrics::histogram!("trip_dispatch_phase_duration_seconds", "phase" => phase)
                .record(took.as_secs_f64());
        }
        round.offers = offered;
        round.lost_claims = wanted.saturating_sub(offered);
        round.unserved = round.searching.saturating_sub(wanted);
        Ok(round)
    }
}
