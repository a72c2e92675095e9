//! The matcher's working set: riders waiting and drivers free, each held for at least the hold
//! time since it was last received, and one geo index of all the free drivers, kept up to date by
//! every report. Riders belong to shards; drivers do not: a rider near a shard's edge is offered
//! the drivers across it too (within reach), and the claim taken before a pair is announced keeps
//! two shard owners from taking the same driver. Pure: `now` comes in, pairings and expiries
//! come out.

use std::collections::HashMap;

use domain::matching::{GeoIndex, Limits, Strategy, assign_indexed};
use domain::{DriverReport, PersonName, Point, RideRequest, RideRequestId, Timestamp};

#[derive(Clone, Debug)]
struct Held<T> {
    item: T,
    shard: u32,
    received_at: Timestamp,
}

/// A free driver's latest report.
#[derive(Clone, Debug)]
struct Free {
    report: DriverReport,
    received_at: Timestamp,
}

/// A rider request paired with a driver in one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Pairing {
    pub shard: u32,
    pub request: RideRequest,
    pub driver: DriverReport,
    pub pickup_distance: f64,
}

/// A pair a tick's solve proposes; [`Pool::apply`] takes it if both sides are still free.
#[derive(Clone, Debug)]
pub struct Proposed {
    pub shard: u32,
    pub request: RideRequest,
    pub driver: PersonName,
}

/// The waiting riders of a tick's owned shards and a copy of the free drivers' index, taken by
/// [`Pool::snapshot`].
#[derive(Debug)]
pub struct Snapshot {
    riders: Vec<(u32, RideRequest)>,
    index: GeoIndex<PersonName>,
}

impl Snapshot {
    /// Pairs the riders with the drivers (pure; no lock needed).
    pub fn solve(self, strategy: Strategy, limits: Limits) -> Vec<Proposed> {
        propose(self.riders, &self.index, strategy, limits)
    }

    pub fn riders(&self) -> usize {
        self.riders.len()
    }
}

/// Pairs the riders of the owned shards (in arrival order) with any free driver in reach, in one
/// batch: the owned shards are solved together, and a driver across a shard's edge is a candidate.
fn propose(
    riders: Vec<(u32, RideRequest)>,
    index: &GeoIndex<PersonName>,
    strategy: Strategy,
    limits: Limits,
) -> Vec<Proposed> {
    let points: Vec<Point> = riders.iter().map(|(_, r)| r.position).collect();
    let pairs = assign_indexed(&points, index, strategy, limits);
    let mut riders: Vec<Option<(u32, RideRequest)>> = riders.into_iter().map(Some).collect();
    let mut proposed = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let (Some((shard, request)), Some(driver)) = (
            riders[pair.rider].take(),
            index.key(pair.driver as u32).cloned(),
        ) else {
            continue;
        };
        proposed.push(Proposed {
            shard,
            request,
            driver,
        });
    }
    proposed
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TickOutcome {
    pub tick: u64,
    pub pairings: Vec<Pairing>,
    /// Requests of owned shards that waited past the hold time without a driver.
    pub expired: Vec<RideRequest>,
    pub expired_drivers: usize,
}

/// The riders waiting and drivers free, in every shard. A matching instance mirrors the whole
/// pool but pairs only the shards it owns; pairs made elsewhere are removed with `forget_match`,
/// whose tombstones also refuse the late copy of an already matched request or driver report
/// (events from different streams may arrive in any order).
#[derive(Debug)]
pub struct Pool {
    /// One waiting request per rider name: a newer request replaces the older one.
    riders: HashMap<PersonName, Held<RideRequest>>,
    /// One entry per driver name: a newer report refreshes position, car and hold time.
    drivers: HashMap<PersonName, Free>,
    /// Requests already matched, and when we learnt it.
    matched_requests: HashMap<RideRequestId, Timestamp>,
    /// Drivers already matched: reports made up to that instant are stale.
    matched_drivers: HashMap<PersonName, Timestamp>,
    /// Where the free drivers are (exactly the drivers of `drivers`), whatever their shard.
    index: GeoIndex<PersonName>,
    ticks: u64,
}

impl Default for Pool {
    /// Index cells of 10 units: a tenth of the course bot's 100 × 100 city.
    fn default() -> Self {
        Self::new(10.0)
    }
}

impl Pool {
    /// An empty pool whose geo index uses square cells of side `index_cell`.
    pub fn new(index_cell: f64) -> Self {
        Self {
            riders: HashMap::new(),
            drivers: HashMap::new(),
            matched_requests: HashMap::new(),
            matched_drivers: HashMap::new(),
            index: GeoIndex::new(index_cell),
            ticks: 0,
        }
    }

    /// The driver went offline (or was offered a trip elsewhere): out of the pool and its index.
    pub fn remove_driver(&mut self, driver: &PersonName) -> Option<DriverReport> {
        self.take_driver(driver).map(|free| free.report)
    }

    fn take_driver(&mut self, driver: &PersonName) -> Option<Free> {
        let held = self.drivers.remove(driver)?;
        self.index.remove(driver);
        Some(held)
    }

    pub fn add_rider(&mut self, request: RideRequest, shard: u32, received_at: Timestamp) {
        if self.matched_requests.contains_key(&request.id) {
            return;
        }
        self.riders.insert(
            request.rider.clone(),
            Held {
                item: request,
                shard,
                received_at,
            },
        );
    }

    pub fn add_driver(&mut self, report: DriverReport, received_at: Timestamp) {
        if self
            .matched_drivers
            .get(&report.driver)
            .is_some_and(|matched_at| report.reported_at <= *matched_at)
        {
            return;
        }
        self.index.upsert(report.driver.clone(), report.position);
        self.drivers.insert(
            report.driver.clone(),
            Free {
                report,
                received_at,
            },
        );
    }

    /// Another instance (or this one) paired `request_id` with `driver` at `matched_at`.
    pub fn forget_match(
        &mut self,
        request_id: RideRequestId,
        rider: &PersonName,
        driver: &PersonName,
        matched_at: Timestamp,
        now: Timestamp,
    ) {
        if self
            .riders
            .get(rider)
            .is_some_and(|h| h.item.id == request_id)
        {
            self.riders.remove(rider);
        }
        if self
            .drivers
            .get(driver)
            .is_some_and(|f| f.report.reported_at <= matched_at)
        {
            self.remove_driver(driver);
        }
        self.matched_requests.insert(request_id, now);
        let latest = self
            .matched_drivers
            .entry(driver.clone())
            .or_insert(matched_at);
        *latest = (*latest).max(matched_at);
    }

    pub fn waiting_riders(&self) -> usize {
        self.riders.len()
    }

    pub fn free_drivers(&self) -> usize {
        self.drivers.len()
    }

    /// Drivers in the geo index (always `free_drivers()`; exposed for tests and benchmarks).
    pub fn indexed_drivers(&self) -> usize {
        self.index.len()
    }

    /// Pairs everyone held in the shards `owns` accepts (even those about to expire: they were
    /// held the full time), removes the pairs, then drops what has been held longer than
    /// `hold_ms` in every shard, reporting the expired riders of owned shards. What
    /// [`Pool::snapshot`], [`Snapshot::solve`] and [`Pool::apply`] do, in one call under one lock.
    pub fn tick(
        &mut self,
        now: Timestamp,
        hold_ms: u64,
        strategy: Strategy,
        limits: Limits,
        owns: impl Fn(u32) -> bool,
    ) -> TickOutcome {
        // Solved against the pool's own index: a snapshot's copy is only needed off the lock.
        let riders = self.waiting(&owns);
        let proposed = if riders.is_empty() {
            Vec::new()
        } else {
            propose(riders, &self.index, strategy, limits)
        };
        self.apply(proposed, now, hold_ms, owns)
    }

    /// The waiting riders of the owned shards in arrival order (ties by id) — `nearest` serves
    /// earlier riders first.
    fn waiting(&self, owns: impl Fn(u32) -> bool) -> Vec<(u32, RideRequest)> {
        let mut riders: Vec<&Held<RideRequest>> =
            self.riders.values().filter(|h| owns(h.shard)).collect();
        riders.sort_by_key(|h| (h.received_at, h.item.id));
        riders
            .into_iter()
            .map(|h| (h.shard, h.item.clone()))
            .collect()
    }

    /// What a tick pairs: the waiting riders of the owned shards in arrival order and a copy of
    /// the free drivers' index. Taking it is quick, so the pool's lock is not held while the
    /// batch is solved and position updates keep flowing in.
    pub fn snapshot(&self, owns: impl Fn(u32) -> bool) -> Snapshot {
        let riders = self.waiting(owns);
        let index = if riders.is_empty() {
            GeoIndex::new(self.index.cell_size())
        } else {
            self.index.clone()
        };
        Snapshot { riders, index }
    }

    /// Completes a tick: takes the proposed pairs whose rider request and driver are still free
    /// (either may have been matched elsewhere, or the rider may have asked again, while the
    /// batch was solved), at the driver's latest position, then expires what is stale.
    pub fn apply(
        &mut self,
        proposed: Vec<Proposed>,
        now: Timestamp,
        hold_ms: u64,
        owns: impl Fn(u32) -> bool,
    ) -> TickOutcome {
        self.ticks += 1;
        let mut pairings = Vec::with_capacity(proposed.len());
        for p in proposed {
            let rider_waits = self
                .riders
                .get(&p.request.rider)
                .is_some_and(|h| h.item.id == p.request.id);
            let Some(driver) = self.drivers.get(&p.driver).filter(|_| rider_waits) else {
                continue;
            };
            let driver = driver.report.clone();
            self.riders.remove(&p.request.rider);
            self.remove_driver(&driver.driver);
            pairings.push(Pairing {
                shard: p.shard,
                pickup_distance: p.request.position.distance_to(&driver.position),
                request: p.request,
                driver,
            });
        }
        // Out of the pool, but not yet tombstoned: the caller confirms each pair with
        // `forget_match` once it is claimed, or puts its sides back with `add_*` if not.

        let stale = |held_since: Timestamp| now.millis_since(held_since) > hold_ms;
        let mut expired = Vec::new();
        self.riders.retain(|_, held| {
            let keep = !stale(held.received_at);
            if !keep && owns(held.shard) {
                expired.push(held.item.clone());
            }
            keep
        });
        expired.sort_by_key(|r| (r.requested_at, r.id));
        let expired_drivers: Vec<PersonName> = self
            .drivers
            .iter()
            .filter(|(_, free)| stale(free.received_at))
            .map(|(name, _)| name.clone())
            .collect();
        for driver in &expired_drivers {
            self.remove_driver(driver);
        }
        // Tombstones outlive every copy of what they stand for that can still be in flight.
        let horizon = hold_ms.saturating_mul(4);
        self.matched_requests
            .retain(|_, at| now.millis_since(*at) <= horizon);
        self.matched_drivers
            .retain(|_, at| now.millis_since(*at) <= horizon);

        TickOutcome {
            tick: self.ticks,
            pairings,
            expired,
            expired_drivers: expired_drivers.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::course::RideRequestDraft;
    use domain::{CarNumber, RideRequestId};
    use uuid::Uuid;

    use super::*;

    fn request(n: u128, name: &str, x: f64) -> RideRequest {
        RideRequest::new(
            RideRequestId::from_uuid(Uuid::from_u128(n)),
            RideRequestDraft {
                rider: PersonName::parse(name).expect("valid"),
                position: Point::new(x, 0.0).expect("valid"),
                destination: Point::new(x, 10.0).expect("valid"),
            },
            Timestamp::from_millis(0),
        )
    }

    fn driver(name: &str, x: f64) -> DriverReport {
        DriverReport {
            driver: PersonName::parse(name).expect("valid"),
            car_number: CarNumber::parse(&format!("CAR-{name}")).expect("valid"),
            position: Point::new(x, 0.0).expect("valid"),
            reported_at: Timestamp::from_millis(0),
        }
    }

    const T0: Timestamp = Timestamp::from_millis(1_000_000);

    #[test]
    fn pairs_are_removed_and_each_driver_used_once() {
        let mut pool = Pool::default();
        pool.add_rider(request(1, "r1", 0.0), 0, T0);
        pool.add_rider(request(2, "r2", 10.0), 0, T0);
        pool.add_rider(request(3, "r3", 20.0), 0, T0);
        pool.add_driver(driver("d1", 1.0), T0);
        pool.add_driver(driver("d2", 11.0), T0);
        let out = pool.tick(T0, 5_000, Strategy::Optimal, Limits::default(), |_| true);
        assert_eq!(out.tick, 1);
        assert_eq!(out.pairings.len(), 2);
        let total: f64 = out.pairings.iter().map(|p| p.pickup_distance).sum();
        assert_eq!(total, 2.0);
        assert_eq!(pool.free_drivers(), 0);
        assert_eq!(pool.waiting_riders(), 1, "r3 waits for the next tick");
        let again = pool.tick(T0, 5_000, Strategy::Optimal, Limits::default(), |_| true);
        assert!(
            again.pairings.is_empty(),
            "a matched rider is never matched again"
        );
    }

    #[test]
    fn entries_are_held_for_the_hold_time_then_expire() {
        let mut pool = Pool::default();
        pool.add_rider(request(1, "r1", 0.0), 0, T0);
        let at_hold = pool.tick(
            T0.plus_millis(5_000),
            5_000,
            Strategy::Optimal,
            Limits::default(),
            |_| true,
        );
        assert!(at_hold.expired.is_empty(), "held at least the hold time");
        let after = pool.tick(
            T0.plus_millis(5_001),
            5_000,
            Strategy::Optimal,
            Limits::default(),
            |_| true,
        );
        assert_eq!(after.expired.len(), 1);
        assert_eq!(pool.waiting_riders(), 0);

        pool.add_driver(driver("d1", 0.0), T0);
        pool.add_driver(driver("d1", 3.0), T0.plus_millis(4_000)); // refresh
        let refreshed = pool.tick(
            T0.plus_millis(6_000),
            5_000,
            Strategy::Optimal,
            Limits::default(),
            |_| true,
        );
        assert_eq!(
            refreshed.expired_drivers, 0,
            "a report refreshes the hold time"
        );
        pool.add_rider(request(2, "r2", 3.0), 0, T0.plus_millis(6_000));
        let out = pool.tick(
            T0.plus_millis(6_000),
            5_000,
            Strategy::Optimal,
            Limits::default(),
            |_| true,
        );
        assert_eq!(
            out.pairings[0].pickup_distance, 0.0,
            "the refreshed position is used"
        );
    }

    #[test]
    fn an_old_entry_still_gets_its_last_chance() {
        let mut pool = Pool::default();
        pool.add_rider(request(1, "r1", 0.0), 0, T0);
        pool.add_driver(driver("d1", 0.0), T0.plus_millis(9_000));
        let out = pool.tick(
            T0.plus_millis(9_000),
            5_000,
            Strategy::Optimal,
            Limits::default(),
            |_| true,
        );
        assert_eq!(out.pairings.len(), 1);
        assert!(out.expired.is_empty());
    }

    #[test]
    fn a_newer_request_from_the_same_rider_replaces_the_older() {
        let mut pool = Pool::default();
        pool.add_rider(request(1, "r1", 0.0), 0, T0);
        pool.add_rider(request(2, "r1", 50.0), 0, T0);
        pool.add_driver(driver("d1", 50.0), T0);
        pool.add_driver(driver("d2", 0.0), T0);
        let out = pool.tick(T0, 5_000, Strategy::Optimal, Limits::default(), |_| true);
        assert_eq!(out.pairings.len(), 1);
        assert_eq!(
            out.pairings[0].request.id,
            RideRequestId::from_uuid(Uuid::from_u128(2))
        );
    }

    #[test]
    fn only_owned_shards_riders_are_paired_with_drivers_of_any_shard() {
        let mut pool = Pool::default();
        // r0 waits in shard 0, r1 and r1b in shard 1; the drivers' shards do not matter.
        pool.add_rider(request(1, "r0", 0.0), 0, T0);
        pool.add_rider(request(2, "r1", 20.0), 1, T0);
        pool.add_rider(request(3, "r1b", 40.0), 1, T0);
        pool.add_driver(driver("d0", 21.0), T0);
        let out = pool.tick(T0, 5_000, Strategy::Optimal, Limits::default(), |shard| {
            shard == 1
        });
        assert_eq!(out.pairings.len(), 1);
        assert_eq!(out.pairings[0].shard, 1);
        assert_eq!(out.pairings[0].request.rider.as_str(), "r1");
        assert_eq!(
            pool.waiting_riders(),
            2,
            "shard 0 waits for its owner; r1b for a driver"
        );
        // A driver across the edge of shard 1 (wherever its reports put it) is a candidate.
        pool.add_driver(driver("d1", 41.0), T0);
        let edge = pool.tick(T0, 5_000, Strategy::Optimal, Limits::default(), |shard| {
            shard == 1
        });
        assert_eq!(edge.pairings.len(), 1);
        assert_eq!(edge.pairings[0].driver.driver.as_str(), "d1");
        pool.add_rider(request(4, "r1c", 60.0), 1, T0);
        let late = pool.tick(
            T0.plus_millis(6_000),
            5_000,
            Strategy::Optimal,
            Limits::default(),
            |shard| shard == 1,
        );
        assert_eq!(
            late.expired.len(),
            1,
            "only the owned shard's expiry is announced"
        );
        assert_eq!(late.expired[0].rider.as_str(), "r1c");
        assert_eq!(pool.waiting_riders(), 0, "mirrors expire too");
    }

    #[test]
    fn a_match_made_elsewhere_is_forgotten_and_late_copies_refused() {
        let mut pool = Pool::default();
        let r = request(1, "r", 0.0);
        let d = driver("d", 0.0);
        pool.add_rider(r.clone(), 0, T0);
        pool.forget_match(
            r.id,
            &r.rider,
            &d.driver,
            T0.plus_millis(10),
            T0.plus_millis(10),
        );
        assert_eq!(pool.waiting_riders(), 0);
        // The driver's report (made before the match) arrives after the match event.
        pool.add_driver(d.clone(), T0.plus_millis(20));
        pool.add_rider(r.clone(), 0, T0.plus_millis(20));
        assert_eq!((pool.waiting_riders(), pool.free_drivers()), (0, 0));
        // A report made after the match is a driver free again.
        let mut again = d;
        again.reported_at = T0.plus_millis(500);
        pool.add_driver(again, T0.plus_millis(600));
        assert_eq!(pool.free_drivers(), 1);
    }

    #[test]
    fn the_index_follows_reports_pairs_expiries_and_moves() {
        let mut pool = Pool::new(2.0);
        pool.add_driver(driver("d1", 0.0), T0);
        pool.add_driver(driver("d2", 30.0), T0);
        pool.add_driver(driver("d2", 35.0), T0.plus_millis(10)); // moved
        pool.add_driver(driver("d3", 90.0), T0.plus_millis(4_000));
        assert_eq!((pool.free_drivers(), pool.indexed_drivers()), (3, 3));
        pool.add_rider(request(1, "r1", 34.0), 1, T0);
        let out = pool.tick(T0, 5_000, Strategy::Optimal, Limits::default(), |_| true);
        assert_eq!(out.pairings.len(), 1);
        assert_eq!(
            out.pairings[0].driver.driver.as_str(),
            "d2",
            "d2 is found at its new position"
        );
        assert_eq!(out.pairings[0].pickup_distance, 1.0);
        assert_eq!((pool.free_drivers(), pool.indexed_drivers()), (2, 2));
        let later = pool.tick(
            T0.plus_millis(5_500),
            5_000,
            Strategy::Optimal,
            Limits::default(),
            |_| true,
        );
        assert_eq!(later.expired_drivers, 1, "d1 expired");
        assert_eq!((pool.free_drivers(), pool.indexed_drivers()), (1, 1));
        // A rider beyond the pickup radius of the only driver left is not paired.
        pool.add_rider(request(2, "r2", 0.0), 1, T0.plus_millis(5_500));
        let limits = Limits {
            max_pickup: 50.0,
            ..Limits::default()
        };
        let far = pool.tick(
            T0.plus_millis(5_600),
            5_000,
            Strategy::Optimal,
            limits,
            |_| true,
        );
        assert!(far.pairings.is_empty());
        assert_eq!(pool.waiting_riders(), 1);
        // Going offline takes a driver out of the index at once.
        let d3 = PersonName::parse("d3").expect("valid");
        assert!(pool.remove_driver(&d3).is_some());
        assert!(pool.remove_driver(&d3).is_none());
        assert_eq!((pool.free_drivers(), pool.indexed_drivers()), (0, 0));
    }

    #[test]
    fn a_pair_whose_driver_was_taken_while_solving_is_dropped_and_moves_are_honoured() {
        let mut pool = Pool::default();
        pool.add_rider(request(1, "r1", 0.0), 0, T0);
        pool.add_rider(request(2, "r2", 50.0), 0, T0);
        pool.add_driver(driver("d1", 1.0), T0);
        pool.add_driver(driver("d2", 51.0), T0);
        let snapshot = pool.snapshot(|_| true);
        assert_eq!(snapshot.riders(), 2);
        let proposed = snapshot.solve(Strategy::Optimal, Limits::default());
        assert_eq!(proposed.len(), 2);
        // While the batch was solved: d1 was matched by another instance, d2 moved.
        let r3 = request(3, "r3", 0.0);
        pool.forget_match(
            r3.id,
            &r3.rider,
            &PersonName::parse("d1").expect("valid"),
            T0.plus_millis(5),
            T0.plus_millis(5),
        );
        let mut moved = driver("d2", 53.0);
        moved.reported_at = T0.plus_millis(10);
        pool.add_driver(moved, T0.plus_millis(10));
        let out = pool.apply(proposed, T0.plus_millis(20), 5_000, |_| true);
        assert_eq!(out.pairings.len(), 1, "only r2-d2 is still possible");
        assert_eq!(out.pairings[0].driver.driver.as_str(), "d2");
        assert_eq!(
            out.pairings[0].pickup_distance, 3.0,
            "at the driver's latest position"
        );
        assert_eq!(pool.waiting_riders(), 1, "r1 waits for the next tick");
        assert_eq!((pool.free_drivers(), pool.indexed_drivers()), (0, 0));
    }

    #[test]
    fn a_pair_that_lost_its_claim_can_be_put_back() {
        let mut pool = Pool::default();
        pool.add_rider(request(1, "r", 0.0), 0, T0);
        pool.add_driver(driver("d", 1.0), T0);
        let out = pool.tick(T0, 5_000, Strategy::Optimal, Limits::default(), |_| true);
        let pair = out.pairings[0].clone();
        pool.add_rider(pair.request.clone(), pair.shard, T0);
        pool.add_driver(driver("d2", 2.0), T0);
        let again = pool.tick(
            T0.plus_millis(100),
            5_000,
            Strategy::Optimal,
            Limits::default(),
            |_| true,
        );
        assert_eq!(
            again.pairings.len(),
            1,
            "the restored rider is paired again"
        );
        assert_eq!(again.pairings[0].request.id, pair.request.id);
    }
}
