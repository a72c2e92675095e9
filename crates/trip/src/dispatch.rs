//! Dispatch: every `trips.dispatch_ms`, one instance (the store's `lead`) expires lapsed offers
//! and searches, then offers searching trips to free drivers of their package in one batch: the
//! candidate pairs are the drivers within `max_pickup_m` of each pickup, minus the drivers the
//! trip excludes, solved for the least total pickup distance by the same sparse exact solver the
//! course matcher uses (`domain::matching::sparse`).
//!
//! The fleet (online drivers, their package and last position) is mirrored from supply's
//! `DriverStatusChanged` / `DriverLocated` events by every instance; drivers with an active trip
//! come from the store (its unique index is the real guard), drivers holding an offer from the
//! open trips of the round.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use domain::events::{DriverLocated, DriverStatusChanged, Event};
use domain::matching::index::GeoIndex;
use domain::matching::sparse::{self, CandidateGraph};
use domain::trip::{Command, TripState};
use domain::{AccountId, LatLng, Package, Projection, Timestamp};
use platform::bus::{self, BusError, Handled, SharedBus, SubscribeOptions, Subscription};
use platform::config::TripsConfig;
use platform::{Shutdown, clock};
use tokio::time::MissedTickBehavior;

use crate::TripError;
use crate::service::TripService;
use crate::store::TripRecord;

/// The most open trips one round looks at.
const ROUND_TRIPS: u32 = 20_000;

#[derive(Clone, Copy, Debug)]
struct FleetDriver {
    package: Package,
    position: Option<(LatLng, Timestamp)>,
}

/// Online product drivers, as supply announced them.
#[derive(Debug, Default)]
pub struct Fleet {
    online: HashMap<AccountId, FleetDriver>,
}

impl Fleet {
    pub fn status(&mut self, event: &DriverStatusChanged) {
        match (event.online, event.package) {
            (true, Some(package)) => {
                let entry = self.online.entry(event.driver).or_insert(FleetDriver {
                    package,
                    position: None,
                });
                entry.package = package;
            }
            _ => {
                self.online.remove(&event.driver);
            }
        }
    }

    pub fn located(&mut self, event: &DriverLocated) {
        if let Some(driver) = self.online.get_mut(&event.driver)
            && driver.position.is_none_or(|(_, at)| at <= event.at)
        {
            driver.position = Some((event.position, event.at));
        }
    }

    pub fn online(&self) -> usize {
        self.online.len()
    }

    /// Drivers of `package` with a position newer than `fresh_since`.
    fn available(
        &self,
        package: Package,
        fresh_since: Timestamp,
        busy: &HashSet<AccountId>,
    ) -> Vec<(AccountId, LatLng)> {
        let mut drivers: Vec<(AccountId, LatLng)> = self
            .online
            .iter()
            .filter(|(id, d)| d.package == package && !busy.contains(id))
            .filter_map(|(id, d)| match d.position {
                Some((at, when)) if when >= fresh_since => Some((*id, at)),
                _ => None,
            })
            .collect();
        // Deterministic rounds (the map's order is not).
        drivers.sort_by_key(|(id, _)| *id);
        drivers
    }
}

/// What one round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub led: bool,
    pub offers: usize,
    pub expired_offers: usize,
    pub expired_searches: usize,
    pub searching: usize,
}

pub struct Dispatcher {
    service: TripService,
    fleet: Arc<Mutex<Fleet>>,
    config: TripsConfig,
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
        let mut fleet = Fleet::default();
        let online = service
            .store()
            .online_drivers()
            .await
            .map_err(|e| TripError::Store(e.to_string()))?;
        for (driver, package) in online {
            fleet.online.insert(
                driver,
                FleetDriver {
                    package,
                    position: None,
                },
            );
        }
        Ok(Self {
            service,
            fleet: Arc::new(Mutex::new(fleet)),
            config,
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
            shutdown.spawn(bus::consume(
                statuses,
                shutdown.token(),
                "trip.fleet.status",
                move |event: DriverStatusChanged, _| {
                    lock(&fleet).status(&event);
                    // Every instance records it (idempotent, newest wins), so whichever starts
                    // next knows who is online.
                    let store = store.clone();
                    async move {
                        match store
                            .set_driver_status(event.driver, event.package, event.at)
                            .await
                        {
                            Ok(()) => Handled::Done,
                            Err(e) => {
                                Handled::Retry(format!("cannot record a driver's status: {e}"))
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
                match self.round(clock::now()).await {
                    Ok(round) => {
                        metrics::counter!("trip_offers_total").increment(round.offers as u64);
                        metrics::gauge!("trip_searching").set(round.searching as f64);
                    }
                    Err(e) => tracing::warn!(error = %e, "a dispatch round failed"),
                }
            }
        });
    }

    /// One round at `now` (public for tests, which drive rounds by hand), if this instance leads.
    pub async fn round(&self, now: Timestamp) -> Result<Round, TripError> {
        let leader = self
            .service
            .store()
            .lead()
            .await
            .map_err(|e| TripError::Store(e.to_string()))?;
        let Some(leader) = leader else {
            return Ok(Round::default());
        };
        let round = self.led_round(now).await;
        leader.release().await;
        round
    }

    async fn led_round(&self, now: Timestamp) -> Result<Round, TripError> {
        let store = self.service.store().clone();
        let store_error = |e: crate::store::StoreError| TripError::Store(e.to_string());
        let mut round = Round {
            led: true,
            ..Round::default()
        };
        let policy = *self.service.policy();
        let mut searching: Vec<TripRecord> = Vec::new();
        // Open trips first, busy drivers second: a driver who accepts in between is then in
        // the second read.
        let open = store.open_trips(ROUND_TRIPS).await.map_err(store_error)?;
        let mut busy: HashSet<AccountId> = store
            .busy_drivers()
            .await
            .map_err(store_error)?
            .into_iter()
            .collect();
        for record in open {
            let expiry = match record.trip.state {
                TripState::Offered { offered_at, driver } => {
                    if now.millis_since(offered_at) >= policy.offer_timeout_ms {
                        Some(Command::ExpireOffer)
                    } else {
                        busy.insert(driver);
                        None
                    }
                }
                TripState::Searching => {
                    if now.millis_since(record.trip.requested_at) >= policy.search_timeout_ms {
                        Some(Command::ExpireSearch)
                    } else {
                        searching.push(record.clone());
                        None
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
        round.searching = searching.len();
        let fresh_since = now.plus_millis(-i64::try_from(self.config.position_ttl_ms).unwrap_or(0));
        let mut offers = Vec::new();
        for package in Package::ALL {
            let trips: Vec<&TripRecord> =
                searching.iter().filter(|t| t.package == package).collect();
            if trips.is_empty() {
                continue;
            }
            let drivers = lock(&self.fleet).available(package, fresh_since, &busy);
            let by_id: std::collections::HashMap<domain::TripId, &TripRecord> =
                trips.iter().map(|t| (t.id, *t)).collect();
            for (trip, driver) in pair(&trips, &drivers, self.config.max_pickup_m) {
                if let Some(record) = by_id.get(&trip) {
                    offers.push(((*record).clone(), driver));
                }
            }
        }
        // The round's offers in one transaction: one commit, not one per offer.
        let offered = self.service.offer_all(offers, now).await?;
        round.offers += usize::try_from(offered).unwrap_or(usize::MAX);
        Ok(round)
    }
}

/// The offers of one package: least total pickup distance, each trip to at most one driver,
/// never beyond `max_pickup_m`, never to a driver the trip excludes.
fn pair(
    trips: &[&TripRecord],
    drivers: &[(AccountId, LatLng)],
    max_pickup_m: f64,
) -> Vec<(domain::TripId, AccountId)> {
    if trips.is_empty() || drivers.is_empty() {
        return Vec::new();
    }
    let projection = Projection::centred_at(trips[0].pickup);
    let mut index: GeoIndex<u32> = GeoIndex::new((max_pickup_m / 4.0).max(50.0));
    for (slot, (_, at)) in drivers.iter().enumerate() {
        if let (Ok(point), Ok(slot)) = (projection.to_plane(*at), u32::try_from(slot)) {
            index.upsert(slot, point);
        }
    }
    let mut graph = CandidateGraph::with_capacity(trips.len(), trips.len() * 8);
    for trip in trips {
        let mut edges = Vec::new();
        if let Ok(pickup) = projection.to_plane(trip.pickup) {
            // The plane is exact near its centre only: search a little wider, then keep the
            // drivers whose great-circle distance is within reach.
            index.for_each_within(pickup, max_pickup_m * 1.1, |slot, _| {
                let Some(&key) = index.key(slot) else { return };
                let (driver, at) = drivers[key as usize];
                let distance = trip.pickup.distance_m(&at);
                if distance <= max_pickup_m && !trip.trip.excluded.contains(&driver) {
                    edges.push((key, distance));
                }
            });
        }
        graph.push_row(edges);
    }
    sparse::solve(&graph, drivers.len(), max_pickup_m)
        .into_iter()
        .enumerate()
        .filter_map(|(row, column)| {
            let column = column? as usize;
            Some((trips[row].id, drivers.get(column)?.0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use domain::pricing::RouteEstimate;
    use domain::trip::Trip;

    use super::*;

    fn account(n: u128) -> AccountId {
        AccountId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn trip_at(n: u128, lat: f64, lng: f64) -> TripRecord {
        let pickup = LatLng::new(lat, lng).expect("valid");
        TripRecord {
            id: domain::TripId::from_uuid(uuid::Uuid::from_u128(n)),
            quote_id: uuid::Uuid::from_u128(n),
            package: Package::Car,
            pickup,
            dropoff: pickup,
            route: RouteEstimate {
                distance_m: 0,
                duration_s: 0,
            },
            fare: 0,
            trip: Trip::new(account(1000 + n), Timestamp::from_millis(0)),
            updated_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn the_batch_minimises_total_pickup_and_respects_exclusions_and_reach() {
        // Two trips 1 km apart on a meridian, two drivers: greedy would give the first trip the
        // driver between them and send the second trip's nearest elsewhere.
        let (a, b) = (trip_at(1, 23.700, 90.4), trip_at(2, 23.709, 90.4));
        let d_mid = (account(1), LatLng::new(23.7065, 90.4).expect("valid"));
        let d_south = (account(2), LatLng::new(23.699, 90.4).expect("valid"));
        let pairs = pair(&[&a, &b], &[d_mid, d_south], 5_000.0);
        assert_eq!(pairs.len(), 2);
        assert!(pairs.contains(&(a.id, account(2))) && pairs.contains(&(b.id, account(1))));

        let mut excluded = b.clone();
        excluded.trip.excluded.insert(account(1));
        let pairs = pair(&[&excluded], &[d_mid], 5_000.0);
        assert!(
            pairs.is_empty(),
            "an excluded driver is never offered the trip"
        );

        let far = (account(3), LatLng::new(23.80, 90.4).expect("valid"));
        assert!(
            pair(&[&a], &[far], 5_000.0).is_empty(),
            "11 km is beyond reach"
        );
    }

    #[test]
    fn the_fleet_keeps_online_drivers_with_their_newest_position() {
        let mut fleet = Fleet::default();
        let d = account(7);
        let at = |ms| Timestamp::from_millis(ms);
        fleet.status(&DriverStatusChanged {
            driver: d,
            online: true,
            package: Some(Package::Bike),
            at: at(0),
        });
        let here = LatLng::new(23.7, 90.4).expect("valid");
        let there = LatLng::new(23.8, 90.4).expect("valid");
        fleet.located(&DriverLocated {
            driver: d,
            position: here,
            at: at(20),
        });
        // An older position arriving late does not win.
        fleet.located(&DriverLocated {
            driver: d,
            position: there,
            at: at(10),
        });
        let none = HashSet::new();
        assert_eq!(fleet.available(Package::Bike, at(0), &none), [(d, here)]);
        assert!(fleet.available(Package::Car, at(0), &none).is_empty());
        assert!(
            fleet.available(Package::Bike, at(30), &none).is_empty(),
            "stale"
        );
        assert!(
            fleet
                .available(Package::Bike, at(0), &HashSet::from([d]))
                .is_empty()
        );
        fleet.status(&DriverStatusChanged {
            driver: d,
            online: false,
            package: None,
            at: at(40),
        });
        assert_eq!(fleet.online(), 0);
    }
}
