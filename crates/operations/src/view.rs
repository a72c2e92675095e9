//! The city as the operations map shows it: a projection of the bus's events, pure (time is an
//! argument) and bounded. Product drivers by state (free, offered, on a trip) with their last
//! position, the open trips, headline figures, demand and supply per H3 cell, and the course
//! protocol's waiting riders, free drivers and matches.
//!
//! Events may arrive twice or out of order (several publishers, at-least-once delivery): a trip
//! is kept at its highest `version`, a finished trip is remembered so a late notice does not bring
//! it back, and counters move only on a change the view had not seen.

use std::collections::{HashMap, HashSet, VecDeque};

use domain::events::{
    DriverAvailable, DriverLocated, DriverStatusChanged, RideExpired, RideMatched, RideRequested,
};
use domain::trip::TripStatus;
use domain::{AccountId, LatLng, Package, Point, Timestamp, TripId};
use serde::Serialize;
use trip::{NoticeKind, TripNotice};

/// How the view is bounded and bucketed (from `[operations]`).
#[derive(Clone, Debug)]
pub struct ViewLimits {
    /// H3 resolution of the demand and supply cells.
    pub resolution: h3o::Resolution,
    /// A course driver counts as free this long after its last report (the matcher's hold).
    pub course_window_ms: u64,
    /// A product driver not heard from for this long (no position, no status) leaves the map.
    pub stale_after_ms: u64,
    /// Course riders and drivers kept at most (each); past it new ones are counted, not drawn.
    pub max_course_entries: usize,
}

impl Default for ViewLimits {
    fn default() -> Self {
        Self {
            resolution: h3o::Resolution::Eight,
            course_window_ms: 5_000,
            stale_after_ms: 60_000,
            max_course_entries: 100_000,
        }
    }
}

/// What a product driver is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverState {
    Free,
    Offered,
    OnTrip,
}

#[derive(Clone, Debug)]
struct Driver {
    package: Option<Package>,
    position: Option<LatLng>,
    /// The trip offered to or driven by this driver.
    trip: Option<(TripId, DriverState)>,
    heard_at: Timestamp,
}

impl Driver {
    fn state(&self) -> DriverState {
        self.trip.map_or(DriverState::Free, |(_, state)| state)
    }
}

/// A driver on the map.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriverDot {
    pub id: AccountId,
    pub state: DriverState,
    pub package: Option<Package>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<LatLng>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trip_id: Option<TripId>,
}

/// An open trip on the map.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TripDot {
    pub id: TripId,
    pub status: TripStatus,
    pub package: Package,
    pub pickup: LatLng,
    pub dropoff: LatLng,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_id: Option<AccountId>,
    pub requested_at: Timestamp,
    #[serde(skip)]
    version: u64,
}

/// A pairing as it happened: a course match, or a product trip's assignment.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "protocol", rename_all = "snake_case")]
pub enum MatchDot {
    Course {
        rider: String,
        driver: String,
        rider_position: Point,
        driver_position: Point,
        pickup_distance: f64,
        at: Timestamp,
    },
    Product {
        trip_id: TripId,
        driver_id: AccountId,
        pickup: LatLng,
        #[serde(skip_serializing_if = "Option::is_none")]
        driver_position: Option<LatLng>,
        wait_ms: u64,
        at: Timestamp,
    },
}

#[derive(Clone, Debug)]
struct CourseEntry {
    position: Point,
    at: Timestamp,
    request: Option<domain::RideRequestId>,
}

/// Events per second over the last minute: 60 one-second buckets.
#[derive(Clone, Debug)]
struct PerMinute {
    buckets: [(i64, u64); 60],
}

impl Default for PerMinute {
    fn default() -> Self {
        Self {
            buckets: [(i64::MIN, 0); 60],
        }
    }
}

impl PerMinute {
    fn bump(&mut self, at: Timestamp) {
        let second = at.as_millis().div_euclid(1_000);
        let bucket = &mut self.buckets[usize::try_from(second.rem_euclid(60)).unwrap_or(0)];
        if bucket.0 != second {
            *bucket = (second, 0);
        }
        bucket.1 += 1;
    }

    /// Events in the minute up to `now`.
    fn last_minute(&self, now: Timestamp) -> u64 {
        let second = now.as_millis().div_euclid(1_000);
        self.buckets
            .iter()
            .filter(|(s, _)| *s > second - 60 && *s <= second)
            .map(|(_, n)| n)
            .sum()
    }
}

/// The headline figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figures {
    pub at: Timestamp,
    pub drivers_online: usize,
    pub drivers_free: usize,
    pub drivers_offered: usize,
    pub drivers_on_trip: usize,
    pub trips_open: usize,
    /// Trips searching or offered: riders waiting for a driver.
    pub riders_waiting: usize,
    pub trips_booked_per_minute: u64,
    pub trips_completed_per_minute: u64,
    /// Book → driver assigned over the last ten minutes (`None` before the first).
    pub book_to_assigned_p50_ms: Option<u64>,
    pub book_to_assigned_p99_ms: Option<u64>,
    pub course: CourseFigures,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CourseFigures {
    pub riders_waiting: usize,
    pub drivers_free: usize,
    pub requests_per_minute: u64,
    pub matches_per_minute: u64,
    /// Riders and drivers not drawn because the view was full.
    pub not_drawn: u64,
}

/// Demand and supply in one H3 cell.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cell {
    pub cell: String,
    /// The hexagon's corners, `[lat, lng]`.
    pub boundary: Vec<[f64; 2]>,
    pub drivers_free: usize,
    pub riders_waiting: usize,
}

/// The course protocol's pool, drawn on its own plane (its coordinates are planar units).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CoursePicture {
    pub riders: Vec<Point>,
    pub drivers: Vec<Point>,
}

/// What changed since the last `take_changes`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Changes {
    pub drivers: Vec<DriverDot>,
    pub drivers_gone: Vec<AccountId>,
    pub trips: Vec<TripDot>,
    pub trips_gone: Vec<TripId>,
    pub matches: Vec<MatchDot>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.drivers.is_empty()
            && self.drivers_gone.is_empty()
            && self.trips.is_empty()
            && self.trips_gone.is_empty()
            && self.matches.is_empty()
    }
}

/// Everything, for a new viewer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    pub drivers: Vec<DriverDot>,
    pub trips: Vec<TripDot>,
    pub matches: Vec<MatchDot>,
    pub figures: Figures,
    pub cells: Vec<Cell>,
    pub course: CoursePicture,
}

/// Matches kept for a new viewer.
const RECENT_MATCHES: usize = 50;
/// Finished trips remembered, so that a late notice does not reopen one.
const FINISHED_MEMORY: usize = 20_000;
/// Book → assigned samples kept (and for at most ten minutes).
const WAIT_SAMPLES: usize = 10_000;
const WAIT_WINDOW_MS: u64 = 10 * 60_000;
/// Cells sent at most (the busiest).
const MAX_CELLS: usize = 2_000;
/// Course positions drawn at most, each side.
const COURSE_DRAWN: usize = 1_000;

#[derive(Debug)]
pub struct CityView {
    limits: ViewLimits,
    drivers: HashMap<AccountId, Driver>,
    trips: HashMap<TripId, TripDot>,
    finished: HashSet<TripId>,
    finished_order: VecDeque<TripId>,
    booked: PerMinute,
    completed: PerMinute,
    waits: VecDeque<(Timestamp, u64)>,
    course_riders: HashMap<String, CourseEntry>,
    course_drivers: HashMap<String, CourseEntry>,
    course_requests: PerMinute,
    course_matches: PerMinute,
    course_not_drawn: u64,
    recent: VecDeque<MatchDot>,
    changed_drivers: HashSet<AccountId>,
    gone_drivers: HashSet<AccountId>,
    changed_trips: HashSet<TripId>,
    gone_trips: HashSet<TripId>,
    new_matches: Vec<MatchDot>,
}

impl CityView {
    pub fn new(limits: ViewLimits) -> Self {
        Self {
            limits,
            drivers: HashMap::new(),
            trips: HashMap::new(),
            finished: HashSet::new(),
            finished_order: VecDeque::new(),
            booked: PerMinute::default(),
            completed: PerMinute::default(),
            waits: VecDeque::new(),
            course_riders: HashMap::new(),
            course_drivers: HashMap::new(),
            course_requests: PerMinute::default(),
            course_matches: PerMinute::default(),
            course_not_drawn: 0,
            recent: VecDeque::new(),
            changed_drivers: HashSet::new(),
            gone_drivers: HashSet::new(),
            changed_trips: HashSet::new(),
            gone_trips: HashSet::new(),
            new_matches: Vec::new(),
        }
    }

    fn driver_mut(&mut self, id: AccountId, at: Timestamp) -> &mut Driver {
        self.changed_drivers.insert(id);
        self.gone_drivers.remove(&id);
        let driver = self.drivers.entry(id).or_insert(Driver {
            package: None,
            position: None,
            trip: None,
            heard_at: at,
        });
        driver.heard_at = driver.heard_at.max(at);
        driver
    }

    fn drop_driver(&mut self, id: AccountId) {
        if self.drivers.remove(&id).is_some() {
            self.changed_drivers.remove(&id);
            self.gone_drivers.insert(id);
        }
    }

    pub fn driver_status(&mut self, event: &DriverStatusChanged) {
        if event.online {
            let driver = self.driver_mut(event.driver, event.at);
            driver.package = event.package.or(driver.package);
        } else if self
            .drivers
            .get(&event.driver)
            .is_some_and(|d| d.trip.is_none())
        {
            self.drop_driver(event.driver);
        }
    }

    /// A position means the driver is online, even if its status came before this view started.
    pub fn driver_located(&mut self, event: &DriverLocated) {
        let driver = self.driver_mut(event.driver, event.at);
        driver.position = Some(event.position);
    }

    fn set_driver_trip(
        &mut self,
        id: AccountId,
        trip: Option<(TripId, DriverState)>,
        at: Timestamp,
    ) {
        self.driver_mut(id, at).trip = trip;
    }

    /// Clears `driver`'s link to `trip` (and nothing else it may hold by now).
    fn release_driver(&mut self, driver: AccountId, trip: TripId) {
        if self
            .drivers
            .get(&driver)
            .is_some_and(|d| d.trip.is_some_and(|(t, _)| t == trip))
        {
            self.changed_drivers.insert(driver);
            if let Some(d) = self.drivers.get_mut(&driver) {
                d.trip = None;
            }
        }
    }

    pub fn trip_notice(&mut self, notice: &TripNotice) {
        let trip = &notice.trip;
        if self.finished.contains(&trip.id)
            || self
                .trips
                .get(&trip.id)
                .is_some_and(|known| known.version >= trip.version)
        {
            return;
        }
        let previous = self.trips.get(&trip.id).cloned();
        let open = matches!(
            trip.status,
            TripStatus::Searching
                | TripStatus::Offered
                | TripStatus::DriverAssigned
                | TripStatus::Arrived
                | TripStatus::InProgress
        );
        if previous.is_none() && notice.kind == NoticeKind::Requested {
            self.booked.bump(trip.requested_at);
        }
        // The driver who held the trip before this change lets go of it unless still holding it.
        if let Some(before) = previous.as_ref().and_then(|p| p.driver_id)
            && (Some(before) != trip.driver_id || !open)
        {
            self.release_driver(before, trip.id);
        }
        if notice.kind == NoticeKind::OfferWithdrawn {
            for recipient in &notice.recipients {
                self.release_driver(*recipient, trip.id);
            }
        }
        if open {
            if let Some(driver) = trip.driver_id {
                let state = if trip.status == TripStatus::Offered {
                    DriverState::Offered
                } else {
                    DriverState::OnTrip
                };
                self.set_driver_trip(driver, Some((trip.id, state)), notice.at);
            }
            self.trips.insert(
                trip.id,
                TripDot {
                    id: trip.id,
                    status: trip.status,
                    package: trip.package,
                    pickup: trip.pickup,
                    dropoff: trip.dropoff,
                    driver_id: trip.driver_id,
                    requested_at: trip.requested_at,
                    version: trip.version,
                },
            );
            self.changed_trips.insert(trip.id);
        } else {
            if let Some(driver) = trip.driver_id {
                self.release_driver(driver, trip.id);
            }
            if trip.status == TripStatus::Completed {
                self.completed.bump(notice.at);
            }
            if self.trips.remove(&trip.id).is_some() {
                self.changed_trips.remove(&trip.id);
                self.gone_trips.insert(trip.id);
            }
            self.finished.insert(trip.id);
            self.finished_order.push_back(trip.id);
            if self.finished_order.len() > FINISHED_MEMORY
                && let Some(oldest) = self.finished_order.pop_front()
            {
                self.finished.remove(&oldest);
            }
        }
        if notice.kind == NoticeKind::DriverAssigned
            && let (Some(driver), Some(assigned_at)) = (trip.driver_id, trip.assigned_at)
        {
            let wait_ms = assigned_at.millis_since(trip.requested_at);
            self.waits.push_back((assigned_at, wait_ms));
            if self.waits.len() > WAIT_SAMPLES {
                self.waits.pop_front();
            }
            let driver_position = self.drivers.get(&driver).and_then(|d| d.position);
            self.record_match(MatchDot::Product {
                trip_id: trip.id,
                driver_id: driver,
                pickup: trip.pickup,
                driver_position,
                wait_ms,
                at: assigned_at,
            });
        }
    }

    fn record_match(&mut self, dot: MatchDot) {
        self.recent.push_back(dot.clone());
        if self.recent.len() > RECENT_MATCHES {
            self.recent.pop_front();
        }
        if self.new_matches.len() < RECENT_MATCHES {
            self.new_matches.push(dot);
        }
    }

    fn course_insert(&mut self, riders: bool, name: String, entry: CourseEntry) {
        let max = self.limits.max_course_entries;
        let map = if riders {
            &mut self.course_riders
        } else {
            &mut self.course_drivers
        };
        if map.len() >= max && !map.contains_key(&name) {
            self.course_not_drawn += 1;
            return;
        }
        map.insert(name, entry);
    }

    /// A newer request from the same rider name replaces a waiting one, as in the matcher.
    pub fn ride_requested(&mut self, event: &RideRequested) {
        let request = &event.request;
        self.course_requests.bump(request.requested_at);
        self.course_insert(
            true,
            request.rider.as_str().to_owned(),
            CourseEntry {
                position: request.position,
                at: request.requested_at,
                request: Some(request.id),
            },
        );
    }

    pub fn driver_available(&mut self, event: &DriverAvailable) {
        let report = &event.report;
        self.course_insert(
            false,
            report.driver.as_str().to_owned(),
            CourseEntry {
                position: report.position,
                at: report.reported_at,
                request: None,
            },
        );
    }

    pub fn ride_matched(&mut self, event: &RideMatched) {
        if self
            .course_riders
            .get(event.rider.as_str())
            .is_some_and(|r| r.request.as_ref() == Some(&event.request_id))
        {
            self.course_riders.remove(event.rider.as_str());
        }
        self.course_drivers.remove(event.driver.as_str());
        self.course_matches.bump(event.matched_at);
        self.record_match(MatchDot::Course {
            rider: event.rider.as_str().to_owned(),
            driver: event.driver.as_str().to_owned(),
            rider_position: event.rider_position,
            driver_position: event.driver_position,
            pickup_distance: event.pickup_distance,
            at: event.matched_at,
        });
    }

    pub fn ride_expired(&mut self, event: &RideExpired) {
        if self
            .course_riders
            .get(event.rider.as_str())
            .is_some_and(|r| r.request.as_ref() == Some(&event.request_id))
        {
            self.course_riders.remove(event.rider.as_str());
        }
    }

    /// Forgets what has gone quiet: course drivers past the hold, course riders long past it
    /// (their expiry was missed), product drivers not heard from and not on a trip.
    pub fn sweep(&mut self, now: Timestamp) {
        let window = self.limits.course_window_ms;
        self.course_drivers
            .retain(|_, d| now.millis_since(d.at) <= window);
        self.course_riders
            .retain(|_, r| now.millis_since(r.at) <= window.saturating_mul(3));
        let stale: Vec<AccountId> = self
            .drivers
            .iter()
            .filter(|(_, d)| {
                d.trip.is_none() && now.millis_since(d.heard_at) > self.limits.stale_after_ms
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.drop_driver(id);
        }
        while self
            .waits
            .front()
            .is_some_and(|(at, _)| now.millis_since(*at) > WAIT_WINDOW_MS)
        {
            self.waits.pop_front();
        }
    }

    fn dot(id: AccountId, driver: &Driver) -> DriverDot {
        DriverDot {
            id,
            state: driver.state(),
            package: driver.package,
            position: driver.position,
            trip_id: driver.trip.map(|(t, _)| t),
        }
    }

    /// What changed since the last call (each driver and trip once, as it is now).
    pub fn take_changes(&mut self) -> Changes {
        let drivers = self
            .changed_drivers
            .drain()
            .filter_map(|id| self.drivers.get(&id).map(|d| Self::dot(id, d)))
            .collect();
        let trips = self
            .changed_trips
            .drain()
            .filter_map(|id| self.trips.get(&id).cloned())
            .collect();
        Changes {
            drivers,
            drivers_gone: self.gone_drivers.drain().collect(),
            trips,
            trips_gone: self.gone_trips.drain().collect(),
            matches: std::mem::take(&mut self.new_matches),
        }
    }

    /// Drops what changed since the last `take_changes`, unbuilt (nobody is watching).
    pub fn forget_changes(&mut self) {
        self.changed_drivers.clear();
        self.changed_trips.clear();
        self.gone_drivers.clear();
        self.gone_trips.clear();
        self.new_matches.clear();
    }

    pub fn figures(&self, now: Timestamp) -> Figures {
        let count = |state| self.drivers.values().filter(|d| d.state() == state).count();
        let mut waits: Vec<u64> = self.waits.iter().map(|(_, w)| *w).collect();
        waits.sort_unstable();
        let percentile = |p: f64| {
            (!waits.is_empty()).then(|| {
                let rank = ((p * waits.len() as f64).ceil() as usize).clamp(1, waits.len());
                waits[rank - 1]
            })
        };
        Figures {
            at: now,
            drivers_online: self.drivers.len(),
            drivers_free: count(DriverState::Free),
            drivers_offered: count(DriverState::Offered),
            drivers_on_trip: count(DriverState::OnTrip),
            trips_open: self.trips.len(),
            riders_waiting: self
                .trips
                .values()
                .filter(|t| matches!(t.status, TripStatus::Searching | TripStatus::Offered))
                .count(),
            trips_booked_per_minute: self.booked.last_minute(now),
            trips_completed_per_minute: self.completed.last_minute(now),
            book_to_assigned_p50_ms: percentile(0.5),
            book_to_assigned_p99_ms: percentile(0.99),
            course: CourseFigures {
                riders_waiting: self.course_riders.len(),
                drivers_free: self.course_drivers.len(),
                requests_per_minute: self.course_requests.last_minute(now),
                matches_per_minute: self.course_matches.last_minute(now),
                not_drawn: self.course_not_drawn,
            },
        }
    }

    /// Free drivers and waiting riders per H3 cell (the busiest `MAX_CELLS`).
    pub fn cells(&self) -> Vec<Cell> {
        let mut counts: HashMap<h3o::CellIndex, (usize, usize)> = HashMap::new();
        let cell_of = |at: &LatLng| {
            h3o::LatLng::new(at.lat(), at.lng())
                .ok()
                .map(|p| p.to_cell(self.limits.resolution))
        };
        for driver in self.drivers.values() {
            if driver.state() == DriverState::Free
                && let Some(cell) = driver.position.as_ref().and_then(cell_of)
            {
                counts.entry(cell).or_default().0 += 1;
            }
        }
        for trip in self.trips.values() {
            if matches!(trip.status, TripStatus::Searching | TripStatus::Offered)
                && let Some(cell) = cell_of(&trip.pickup)
            {
                counts.entry(cell).or_default().1 += 1;
            }
        }
        let mut cells: Vec<_> = counts.into_iter().collect();
        cells.sort_unstable_by_key(|(cell, (d, r))| (std::cmp::Reverse(d + r), u64::from(*cell)));
        cells.truncate(MAX_CELLS);
        cells
            .into_iter()
            .map(|(cell, (drivers_free, riders_waiting))| Cell {
                cell: cell.to_string(),
                boundary: cell
                    .boundary()
                    .iter()
                    .map(|corner| [round(corner.lat()), round(corner.lng())])
                    .collect(),
                drivers_free,
                riders_waiting,
            })
            .collect()
    }

    pub fn course_picture(&self) -> CoursePicture {
        CoursePicture {
            riders: self
                .course_riders
                .values()
                .take(COURSE_DRAWN)
                .map(|r| r.position)
                .collect(),
            drivers: self
                .course_drivers
                .values()
                .take(COURSE_DRAWN)
                .map(|d| d.position)
                .collect(),
        }
    }

    pub fn snapshot(&self, now: Timestamp) -> Snapshot {
        Snapshot {
            drivers: self
                .drivers
                .iter()
                .map(|(id, d)| Self::dot(*id, d))
                .collect(),
            trips: self.trips.values().cloned().collect(),
            matches: self.recent.iter().cloned().collect(),
            figures: self.figures(now),
            cells: self.cells(),
            course: self.course_picture(),
        }
    }
}

fn round(degrees: f64) -> f64 {
    (degrees * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DRIVER: &str = "00000000-0000-7000-8000-000000000001";
    const RIDER: &str = "00000000-0000-7000-8000-000000000002";
    const TRIP: &str = "00000000-0000-7000-8000-000000000003";

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn driver() -> AccountId {
        DRIVER.parse().expect("id")
    }

    fn notice(
        kind: &str,
        status: &str,
        version: u64,
        driver: Option<&str>,
        now: i64,
    ) -> TripNotice {
        serde_json::from_value(json!({
            "id": version, "kind": kind, "recipients": [RIDER], "at": now,
            "trip": {
                "id": TRIP, "status": status, "rider_id": RIDER, "driver_id": driver,
                "package": "car", "pickup": {"lat": 23.78, "lng": 90.40},
                "dropoff": {"lat": 23.79, "lng": 90.41},
                "route": {"distance_m": 1500, "duration_s": 300},
                "fare": {"amount": 12000, "currency": "BDT"},
                "requested_at": 1_000, "updated_at": now, "version": version,
                "assigned_at": (status == "driver_assigned").then_some(1_400),
            }
        }))
        .expect("a notice")
    }

    fn online(view: &mut CityView, now: i64) {
        view.driver_status(&DriverStatusChanged {
            driver: driver(),
            online: true,
            package: Some(Package::Car),
            at: at(now),
        });
        view.driver_located(&DriverLocated {
            driver: driver(),
            position: LatLng::new(23.781, 90.401).expect("place"),
            at: at(now),
        });
    }

    fn state(view: &CityView) -> Option<DriverState> {
        view.drivers.get(&driver()).map(Driver::state)
    }

    /// With nobody watching the changes are dropped unbuilt; the picture keeps them.
    #[test]
    fn forgotten_changes_stay_in_the_picture() {
        let mut view = CityView::new(ViewLimits::default());
        online(&mut view, 500);
        view.trip_notice(&notice("trip.requested", "searching", 1, None, 1_000));
        view.forget_changes();
        assert!(view.take_changes().is_empty(), "nothing left to send");
        let snapshot = view.snapshot(at(2_000));
        assert_eq!((snapshot.drivers.len(), snapshot.trips.len()), (1, 1));
        view.trip_notice(&notice("trip.offered", "offered", 2, Some(DRIVER), 1_200));
        assert_eq!(view.take_changes().trips.len(), 1, "later changes are sent");
    }

    #[test]
    fn a_trip_moves_its_driver_through_the_states_and_leaves_the_map_when_it_ends() {
        let mut view = CityView::new(ViewLimits::default());
        online(&mut view, 500);
        assert_eq!(state(&view), Some(DriverState::Free));
        view.trip_notice(&notice("trip.requested", "searching", 1, None, 1_000));
        let figures = view.figures(at(2_000));
        assert_eq!((figures.trips_open, figures.riders_waiting), (1, 1));
        assert_eq!(figures.trips_booked_per_minute, 1);
        assert_eq!(
            view.cells()
                .iter()
                .map(|c| (c.drivers_free, c.riders_waiting))
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)),
            (1, 1)
        );

        view.trip_notice(&notice("trip.offered", "offered", 2, Some(DRIVER), 1_200));
        assert_eq!(state(&view), Some(DriverState::Offered));
        view.trip_notice(&notice(
            "trip.driver_assigned",
            "driver_assigned",
            3,
            Some(DRIVER),
            1_400,
        ));
        assert_eq!(state(&view), Some(DriverState::OnTrip));
        // A late copy of an older notice changes nothing.
        view.trip_notice(&notice("trip.offered", "offered", 2, Some(DRIVER), 1_200));
        assert_eq!(state(&view), Some(DriverState::OnTrip));
        let figures = view.figures(at(2_000));
        assert_eq!((figures.riders_waiting, figures.drivers_on_trip), (0, 1));
        assert_eq!(figures.book_to_assigned_p50_ms, Some(400));

        let changes = view.take_changes();
        assert_eq!(changes.trips.len(), 1, "one trip, as it is now");
        assert_eq!(changes.trips[0].status, TripStatus::DriverAssigned);
        assert_eq!(changes.matches.len(), 1, "the assignment");
        assert!(view.take_changes().is_empty(), "nothing new since");

        view.trip_notice(&notice(
            "trip.completed",
            "completed",
            6,
            Some(DRIVER),
            9_000,
        ));
        assert_eq!(state(&view), Some(DriverState::Free));
        let figures = view.figures(at(10_000));
        assert_eq!(
            (figures.trips_open, figures.trips_completed_per_minute),
            (0, 1)
        );
        assert_eq!(view.take_changes().trips_gone.len(), 1);
        // A late notice does not reopen a finished trip.
        view.trip_notice(&notice(
            "trip.started",
            "in_progress",
            5,
            Some(DRIVER),
            8_000,
        ));
        assert_eq!(view.figures(at(10_000)).trips_open, 0);
        // A minute later the counters have moved on; a driver not heard from leaves the map.
        assert_eq!(view.figures(at(70_000)).trips_completed_per_minute, 0);
        view.sweep(at(70_000));
        assert_eq!(state(&view), None);
        assert_eq!(view.take_changes().drivers_gone, vec![driver()]);
    }

    #[test]
    fn an_offer_withdrawn_frees_the_driver_and_offline_drivers_leave() {
        let mut view = CityView::new(ViewLimits::default());
        online(&mut view, 500);
        view.trip_notice(&notice("trip.offered", "offered", 2, Some(DRIVER), 1_200));
        let mut withdrawn = notice("trip.offer_withdrawn", "searching", 3, None, 1_300);
        withdrawn.recipients = vec![driver()];
        view.trip_notice(&withdrawn);
        assert_eq!(state(&view), Some(DriverState::Free));
        view.driver_status(&DriverStatusChanged {
            driver: driver(),
            online: false,
            package: None,
            at: at(2_000),
        });
        assert_eq!(state(&view), None);
    }

    #[test]
    fn the_course_pool_follows_requests_reports_and_matches_within_its_bounds() {
        let limits = ViewLimits {
            max_course_entries: 2,
            ..ViewLimits::default()
        };
        let mut view = CityView::new(limits);
        let name = |n: &str| domain::PersonName::parse(n).expect("name");
        let point = |x: f64| Point::new(x, x).expect("point");
        let request = |rider: &str, id: u128, t: i64| RideRequested {
            request: domain::RideRequest {
                id: domain::RideRequestId::from_uuid(uuid_of(id)),
                rider: name(rider),
                position: point(1.0),
                destination: point(2.0),
                requested_at: at(t),
            },
        };
        view.ride_requested(&request("asha", 1, 1_000));
        view.ride_requested(&request("asha", 2, 1_100)); // replaces her first request
        view.ride_requested(&request("bina", 3, 1_200));
        view.ride_requested(&request("chad", 4, 1_300)); // over the bound: counted, not drawn
        for driver in ["karim", "lutfa"] {
            view.driver_available(&DriverAvailable {
                report: domain::DriverReport {
                    driver: name(driver),
                    car_number: domain::CarNumber::parse("DHA-1").expect("car"),
                    position: point(3.0),
                    reported_at: at(1_000),
                },
            });
        }
        let course = view.figures(at(2_000)).course;
        assert_eq!(
            (
                course.riders_waiting,
                course.drivers_free,
                course.requests_per_minute,
                course.not_drawn
            ),
            (2, 2, 4, 1)
        );
        view.ride_matched(&RideMatched {
            match_id: domain::MatchId::from_uuid(uuid_of(9)),
            tick: 1,
            request_id: domain::RideRequestId::from_uuid(uuid_of(2)),
            rider: name("asha"),
            rider_position: point(1.0),
            destination: point(2.0),
            driver: name("karim"),
            car_number: domain::CarNumber::parse("DHA-1").expect("car"),
            driver_position: point(3.0),
            pickup_distance: 2.8,
            trip_distance: 1.4,
            fare: 2.8,
            currency: "BDT".to_owned(),
            requested_at: at(1_100),
            matched_at: at(1_500),
        });
        let course = view.figures(at(2_000)).course;
        assert_eq!(
            (
                course.riders_waiting,
                course.drivers_free,
                course.matches_per_minute
            ),
            (1, 1, 1)
        );
        // Past the hold, the unmatched driver is no longer free.
        view.sweep(at(7_000));
        assert_eq!(view.figures(at(7_000)).course.drivers_free, 0);
        assert_eq!(view.take_changes().matches.len(), 1);
    }

    fn uuid_of(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }
}
