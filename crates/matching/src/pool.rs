//! The matcher's working set: riders waiting and drivers free, each held for at least the hold
//! time since it was last received. Pure: `now` comes in, pairings and expiries come out.

use std::collections::HashMap;

use domain::matching::{Strategy, assign};
use domain::{DriverReport, PersonName, Point, RideRequest, Timestamp};

#[derive(Clone, Debug)]
struct Held<T> {
    item: T,
    received_at: Timestamp,
}

/// A rider request paired with a driver in one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Pairing {
    pub request: RideRequest,
    pub driver: DriverReport,
    pub pickup_distance: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TickOutcome {
    pub tick: u64,
    pub pairings: Vec<Pairing>,
    /// Requests that waited past the hold time without a driver.
    pub expired: Vec<RideRequest>,
    pub expired_drivers: usize,
}

#[derive(Debug, Default)]
pub struct Pool {
    /// One waiting request per rider name: a newer request replaces the older one.
    riders: HashMap<PersonName, Held<RideRequest>>,
    /// One entry per driver name: a newer report refreshes position, car and hold time.
    drivers: HashMap<PersonName, Held<DriverReport>>,
    ticks: u64,
}

impl Pool {
    pub fn add_rider(&mut self, request: RideRequest, received_at: Timestamp) {
        self.riders.insert(
            request.rider.clone(),
            Held {
                item: request,
                received_at,
            },
        );
    }

    pub fn add_driver(&mut self, report: DriverReport, received_at: Timestamp) {
        self.drivers.insert(
            report.driver.clone(),
            Held {
                item: report,
                received_at,
            },
        );
    }

    pub fn waiting_riders(&self) -> usize {
        self.riders.len()
    }

    pub fn free_drivers(&self) -> usize {
        self.drivers.len()
    }

    /// Pairs everyone held (even those about to expire: they were held the full time), removes the
    /// pairs, then drops what has been held longer than `hold_ms`.
    pub fn tick(&mut self, now: Timestamp, hold_ms: u64, strategy: Strategy) -> TickOutcome {
        self.ticks += 1;
        let mut riders: Vec<&Held<RideRequest>> = self.riders.values().collect();
        // Arrival order (ties by id) — `nearest` serves earlier riders first.
        riders.sort_by_key(|h| (h.received_at, h.item.id));
        let mut drivers: Vec<&Held<DriverReport>> = self.drivers.values().collect();
        drivers.sort_by(|a, b| a.item.driver.cmp(&b.item.driver));

        let rider_points: Vec<Point> = riders.iter().map(|h| h.item.position).collect();
        let driver_points: Vec<Point> = drivers.iter().map(|h| h.item.position).collect();
        let pairings: Vec<Pairing> = assign(&rider_points, &driver_points, strategy)
            .into_iter()
            .map(|pair| Pairing {
                request: riders[pair.rider].item.clone(),
                driver: drivers[pair.driver].item.clone(),
                pickup_distance: pair.distance,
            })
            .collect();
        for pairing in &pairings {
            self.riders.remove(&pairing.request.rider);
            self.drivers.remove(&pairing.driver.driver);
        }

        let stale = |held_since: Timestamp| now.millis_since(held_since) > hold_ms;
        let mut expired = Vec::new();
        self.riders.retain(|_, held| {
            let keep = !stale(held.received_at);
            if !keep {
                expired.push(held.item.clone());
            }
            keep
        });
        expired.sort_by_key(|r| (r.requested_at, r.id));
        let drivers_before = self.drivers.len();
        self.drivers.retain(|_, held| !stale(held.received_at));

        TickOutcome {
            tick: self.ticks,
            pairings,
            expired,
            expired_drivers: drivers_before - self.drivers.len(),
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
        pool.add_rider(request(1, "r1", 0.0), T0);
        pool.add_rider(request(2, "r2", 10.0), T0);
        pool.add_rider(request(3, "r3", 20.0), T0);
        pool.add_driver(driver("d1", 1.0), T0);
        pool.add_driver(driver("d2", 11.0), T0);
        let out = pool.tick(T0, 5_000, Strategy::Optimal);
        assert_eq!(out.tick, 1);
        assert_eq!(out.pairings.len(), 2);
        let total: f64 = out.pairings.iter().map(|p| p.pickup_distance).sum();
        assert_eq!(total, 2.0);
        assert_eq!(pool.free_drivers(), 0);
        assert_eq!(pool.waiting_riders(), 1, "r3 waits for the next tick");
        let again = pool.tick(T0, 5_000, Strategy::Optimal);
        assert!(
            again.pairings.is_empty(),
            "a matched rider is never matched again"
        );
    }

    #[test]
    fn entries_are_held_for_the_hold_time_then_expire() {
        let mut pool = Pool::default();
        pool.add_rider(request(1, "r1", 0.0), T0);
        let at_hold = pool.tick(T0.plus_millis(5_000), 5_000, Strategy::Optimal);
        assert!(at_hold.expired.is_empty(), "held at least the hold time");
        let after = pool.tick(T0.plus_millis(5_001), 5_000, Strategy::Optimal);
        assert_eq!(after.expired.len(), 1);
        assert_eq!(pool.waiting_riders(), 0);

        pool.add_driver(driver("d1", 0.0), T0);
        pool.add_driver(driver("d1", 3.0), T0.plus_millis(4_000)); // refresh
        let refreshed = pool.tick(T0.plus_millis(6_000), 5_000, Strategy::Optimal);
        assert_eq!(
            refreshed.expired_drivers, 0,
            "a report refreshes the hold time"
        );
        pool.add_rider(request(2, "r2", 3.0), T0.plus_millis(6_000));
        let out = pool.tick(T0.plus_millis(6_000), 5_000, Strategy::Optimal);
        assert_eq!(
            out.pairings[0].pickup_distance, 0.0,
            "the refreshed position is used"
        );
    }

    #[test]
    fn an_old_entry_still_gets_its_last_chance() {
        let mut pool = Pool::default();
        pool.add_rider(request(1, "r1", 0.0), T0);
        pool.add_driver(driver("d1", 0.0), T0.plus_millis(9_000));
        let out = pool.tick(T0.plus_millis(9_000), 5_000, Strategy::Optimal);
        assert_eq!(out.pairings.len(), 1);
        assert!(out.expired.is_empty());
    }

    #[test]
    fn a_newer_request_from_the_same_rider_replaces_the_older() {
        let mut pool = Pool::default();
        pool.add_rider(request(1, "r1", 0.0), T0);
        pool.add_rider(request(2, "r1", 50.0), T0);
        pool.add_driver(driver("d1", 50.0), T0);
        pool.add_driver(driver("d2", 0.0), T0);
        let out = pool.tick(T0, 5_000, Strategy::Optimal);
        assert_eq!(out.pairings.len(), 1);
        assert_eq!(
            out.pairings[0].request.id,
            RideRequestId::from_uuid(Uuid::from_u128(2))
        );
    }
}
