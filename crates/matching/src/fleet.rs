//! The product's side of the engine: the online drivers of every package on the globe, with an
//! incremental geo index per package fed by their status and position events (no rebuild per
//! round), and the batched pairing of searching trips with them.
//!
//! Every dispatch instance mirrors the whole fleet. It pairs only the trips of the shards it
//! holds, but with any driver in reach, whatever shard the driver stands in; the store's claim
//! (one offer or active trip per driver) settles a driver two owners chose in the same round.
//!
//! The index is a plane (metres) centred on the first position the process saw: exact enough for
//! matching within a city, and a driver more than 1,000 km from that centre is not indexed (the
//! projection refuses it). Candidates are searched 10 % wider on the plane, then kept by their
//! great-circle distance.

use std::collections::{HashMap, HashSet};

use domain::events::{DriverLocated, DriverStatusChanged};
use domain::matching::index::GeoIndex;
use domain::matching::sparse::{self, CandidateGraph};
use domain::{AccountId, LatLng, Package, Projection, Timestamp};

#[derive(Clone, Copy, Debug)]
struct FleetDriver {
    package: Package,
    position: Option<(LatLng, Timestamp)>,
}

/// Online product drivers, as supply announced them, and where they are.
#[derive(Debug)]
pub struct Fleet {
    online: HashMap<AccountId, FleetDriver>,
    /// When each driver's latest applied status was made: an older one arriving late (events of
    /// one driver may be delivered out of order) does not override it.
    status_at: HashMap<AccountId, Timestamp>,
    /// Drivers with a position, one index per package.
    index: HashMap<Package, GeoIndex<AccountId>>,
    projection: Option<Projection>,
    cell_m: f64,
}

/// A searching trip to pair: where the rider waits, and the drivers it must not be offered to.
#[derive(Clone, Copy, Debug)]
pub struct Ask<'a, E> {
    pub pickup: LatLng,
    pub excluded: &'a E,
}

/// What a round may use: drivers within `max_pickup_m` of the pickup, with a position at least
/// as recent as `fresh_since`, not `busy`.
#[derive(Clone, Copy, Debug)]
pub struct Reach<'a> {
    pub max_pickup_m: f64,
    pub fresh_since: Timestamp,
    pub busy: &'a HashSet<AccountId>,
}

impl Fleet {
    /// An empty fleet whose index cells are `cell_m` metres (a quarter of the pickup radius is a
    /// good size: a search then scans a few cells).
    pub fn new(cell_m: f64) -> Self {
        Self {
            online: HashMap::new(),
            status_at: HashMap::new(),
            index: HashMap::new(),
            projection: None,
            cell_m: cell_m.max(1.0),
        }
    }

    /// A driver recorded online before this process started: known, but without a position
    /// until their next one.
    pub fn known_online(&mut self, driver: AccountId, package: Package) {
        self.online.entry(driver).or_insert(FleetDriver {
            package,
            position: None,
        });
    }

    pub fn status(&mut self, event: &DriverStatusChanged) {
        if self
            .status_at
            .get(&event.driver)
            .is_some_and(|at| *at > event.at)
        {
            return;
        }
        self.status_at.insert(event.driver, event.at);
        match (event.online, event.package) {
            (true, Some(package)) => {
                let entry = self.online.entry(event.driver).or_insert(FleetDriver {
                    package,
                    position: None,
                });
                let (was, position) = (entry.package, entry.position);
                entry.package = package;
                if was != package
                    && let Some((at, _)) = position
                {
                    self.unindex(was, &event.driver);
                    self.index_at(package, event.driver, at);
                }
            }
            _ => {
                if let Some(gone) = self.online.remove(&event.driver) {
                    self.unindex(gone.package, &event.driver);
                }
            }
        }
    }

    /// An online driver's last known position.
    pub fn position(&self, driver: &AccountId) -> Option<LatLng> {
        self.online
            .get(driver)
            .and_then(|d| d.position)
            .map(|(at, _)| at)
    }

    pub fn located(&mut self, event: &DriverLocated) {
        let Some(driver) = self.online.get_mut(&event.driver) else {
            return;
        };
        if driver.position.is_some_and(|(_, at)| at > event.at) {
            // An older position arriving late does not win.
            return;
        }
        driver.position = Some((event.position, event.at));
        let package = driver.package;
        self.index_at(package, event.driver, event.position);
    }

    fn index_at(&mut self, package: Package, driver: AccountId, at: LatLng) {
        let projection = *self
            .projection
            .get_or_insert_with(|| Projection::centred_at(at));
        let cell = self.cell_m;
        let index = self
            .index
            .entry(package)
            .or_insert_with(|| GeoIndex::new(cell));
        match projection.to_plane(at) {
            Ok(point) => {
                index.upsert(driver, point);
            }
            Err(_) => {
                index.remove(&driver);
            }
        }
    }

    fn unindex(&mut self, package: Package, driver: &AccountId) {
        if let Some(index) = self.index.get_mut(&package) {
            index.remove(driver);
        }
    }

    pub fn online(&self) -> usize {
        self.online.len()
    }

    /// Drivers of `package` in the index (those with a position; for tests and metrics).
    pub fn indexed(&self, package: Package) -> usize {
        self.index.get(&package).map_or(0, GeoIndex::len)
    }

    /// Pairs the asks (trips of one package) with its drivers in one batch: least total pickup
    /// distance, each ask to at most one driver and each driver to at most one ask, never beyond
    /// reach, never to an excluded driver. Returns `(ask, driver)` for the asks `owned` accepts
    /// (the trips of this instance's shards).
    ///
    /// The asks of other shards that compete for the same drivers — up to `HALO_HOPS` links of
    /// shared candidates away from an owned ask — are solved along, though never offered here:
    /// every owner near an edge then computes the same assignment there as one instance for the
    /// whole city would, and the store's claim settles what a skewed view still gets wrong.
    pub fn pair<E>(
        &self,
        package: Package,
        asks: &[Ask<'_, E>],
        owned: impl Fn(usize) -> bool,
        reach: Reach<'_>,
        excludes: impl Fn(&E, &AccountId) -> bool,
    ) -> Vec<(usize, AccountId)> {
        let (Some(index), Some(projection)) = (self.index.get(&package), self.projection) else {
            return Vec::new();
        };
        if asks.is_empty() || index.is_empty() {
            return Vec::new();
        }
        let candidates = |ask: &Ask<'_, E>| {
            let mut edges = Vec::new();
            if let Ok(pickup) = projection.to_plane(ask.pickup) {
                // The plane is exact near its centre only: search a little wider, then keep the
                // drivers whose great-circle distance is within reach.
                index.for_each_within(pickup, reach.max_pickup_m * 1.1, |slot, _| {
                    let Some(driver) = index.key(slot) else {
                        return;
                    };
                    let Some((at, when)) = self.online.get(driver).and_then(|d| d.position) else {
                        return;
                    };
                    if when < reach.fresh_since
                        || reach.busy.contains(driver)
                        || excludes(ask.excluded, driver)
                    {
                        return;
                    }
                    let distance = ask.pickup.distance_m(&at);
                    if distance <= reach.max_pickup_m {
                        edges.push((slot, distance));
                    }
                });
            }
            // Deterministic rounds: the index's order within a cell is not.
            edges.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            edges
        };
        let rows: Vec<Vec<(u32, f64)>> = asks.iter().map(candidates).collect();
        // The owned asks, then the others reachable through shared drivers.
        let mut taken: Vec<bool> = (0..asks.len()).map(&owned).collect();
        if taken.iter().any(|t| !t) {
            let mut contested: HashSet<u32> = HashSet::new();
            for (row, edges) in rows.iter().enumerate() {
                if taken[row] {
                    contested.extend(edges.iter().map(|(slot, _)| *slot));
                }
            }
            for _ in 0..HALO_HOPS {
                let mut reached = Vec::new();
                for (row, edges) in rows.iter().enumerate() {
                    if !taken[row] && edges.iter().any(|(slot, _)| contested.contains(slot)) {
                        reached.push(row);
                    }
                }
                if reached.is_empty() {
                    break;
                }
                for row in reached {
                    taken[row] = true;
                    contested.extend(rows[row].iter().map(|(slot, _)| *slot));
                }
            }
        }
        let mut graph = CandidateGraph::with_capacity(asks.len(), asks.len() * 8);
        let mut solved = Vec::new();
        for (row, edges) in rows.into_iter().enumerate() {
            if taken[row] {
                graph.push_row(edges);
                solved.push(row);
            }
        }
        sparse::solve(&graph, index.slot_bound(), reach.max_pickup_m)
            .into_iter()
            .zip(solved)
            .filter(|(_, ask)| owned(*ask))
            .filter_map(|(slot, ask)| Some((ask, *index.key(slot?)?)))
            .collect()
    }
}

/// How many links of shared candidate drivers away from its own trips an instance looks when it
/// solves a round (see [`Fleet::pair`]).
const HALO_HOPS: usize = 2;

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn account(n: u128) -> AccountId {
        AccountId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn at(lat: f64) -> LatLng {
        LatLng::new(lat, 90.4).expect("valid")
    }

    fn online(fleet: &mut Fleet, driver: AccountId, package: Package, lat: f64, ms: i64) {
        fleet.status(&DriverStatusChanged {
            driver,
            online: true,
            package: Some(package),
            at: Timestamp::from_millis(ms),
        });
        fleet.located(&DriverLocated {
            driver,
            position: at(lat),
            at: Timestamp::from_millis(ms),
        });
    }

    fn reach(busy: &HashSet<AccountId>) -> Reach<'_> {
        Reach {
            max_pickup_m: 5_000.0,
            fresh_since: Timestamp::from_millis(0),
            busy,
        }
    }

    fn excludes(set: &BTreeSet<AccountId>, driver: &AccountId) -> bool {
        set.contains(driver)
    }

    fn all(_: usize) -> bool {
        true
    }

    #[test]
    fn the_batch_minimises_total_pickup_and_respects_exclusions_and_reach() {
        let mut fleet = Fleet::new(1_000.0);
        let (mid, south) = (account(1), account(2));
        online(&mut fleet, mid, Package::Car, 23.7065, 1);
        online(&mut fleet, south, Package::Car, 23.699, 1);
        let none = BTreeSet::new();
        // Two trips 1 km apart on a meridian: greedy would give the first trip the driver
        // between them and send the second trip's nearest elsewhere.
        let asks = [
            Ask {
                pickup: at(23.700),
                excluded: &none,
            },
            Ask {
                pickup: at(23.709),
                excluded: &none,
            },
        ];
        let idle = HashSet::new();
        let pairs = fleet.pair(Package::Car, &asks, all, reach(&idle), excludes);
        assert_eq!(pairs, [(0, south), (1, mid)]);

        let excluded = BTreeSet::from([mid]);
        let lone = [Ask {
            pickup: at(23.709),
            excluded: &excluded,
        }];
        assert_eq!(
            fleet.pair(Package::Car, &lone, all, reach(&idle), excludes),
            [(0, south)],
            "an excluded driver is never offered the trip"
        );
        let busy = HashSet::from([south]);
        assert!(
            fleet
                .pair(Package::Car, &lone, all, reach(&busy), excludes)
                .is_empty(),
            "nor a busy one"
        );
        let far = [Ask {
            pickup: at(23.80),
            excluded: &none,
        }];
        assert!(
            fleet
                .pair(Package::Car, &far, all, reach(&idle), excludes)
                .is_empty(),
            "10 km is beyond reach"
        );
        assert!(
            fleet
                .pair(Package::Bike, &asks, all, reach(&idle), excludes)
                .is_empty(),
            "another package's drivers are not candidates"
        );
    }

    #[test]
    fn the_index_follows_statuses_positions_and_packages() {
        let mut fleet = Fleet::new(500.0);
        let d = account(7);
        online(&mut fleet, d, Package::Bike, 23.7, 20);
        assert_eq!(fleet.indexed(Package::Bike), 1);
        // An older position arriving late does not win.
        fleet.located(&DriverLocated {
            driver: d,
            position: at(23.8),
            at: Timestamp::from_millis(10),
        });
        let none = BTreeSet::new();
        let idle = HashSet::new();
        let here = [Ask {
            pickup: at(23.7),
            excluded: &none,
        }];
        assert_eq!(
            fleet.pair(Package::Bike, &here, all, reach(&idle), excludes),
            [(0, d)]
        );
        let stale = Reach {
            fresh_since: Timestamp::from_millis(30),
            ..reach(&idle)
        };
        assert!(
            fleet
                .pair(Package::Bike, &here, all, stale, excludes)
                .is_empty(),
            "a stale position is not offered"
        );
        // Switching package moves the driver between indexes.
        fleet.status(&DriverStatusChanged {
            driver: d,
            online: true,
            package: Some(Package::Car),
            at: Timestamp::from_millis(40),
        });
        assert_eq!(
            (fleet.indexed(Package::Bike), fleet.indexed(Package::Car)),
            (0, 1)
        );
        fleet.status(&DriverStatusChanged {
            driver: d,
            online: false,
            package: None,
            at: Timestamp::from_millis(50),
        });
        assert_eq!((fleet.online(), fleet.indexed(Package::Car)), (0, 0));
        // An older "online" delivered after the "offline" does not bring the driver back.
        fleet.status(&DriverStatusChanged {
            driver: d,
            online: true,
            package: Some(Package::Car),
            at: Timestamp::from_millis(45),
        });
        assert_eq!(fleet.online(), 0, "the later offline stands");
        // A position of a driver not online is ignored.
        fleet.located(&DriverLocated {
            driver: d,
            position: at(23.7),
            at: Timestamp::from_millis(60),
        });
        assert_eq!(fleet.indexed(Package::Car), 0);
    }
}
