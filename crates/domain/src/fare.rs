//! Fares: every fare in the system is computed here.
//!
//! - The course protocol (seed 002) charges 2 taka per unit of straight-line distance from the
//!   rider's position to the destination (`course_fare`), exactly, as a float the course checks.
//! - A product trip pays its package's tariff over the route (`product_fare`), in integer minor
//!   units of BDT (poisha), so the preview, the booked trip and the receipt agree.

use serde::{Deserialize, Serialize};

use crate::course::RideRequest;
use crate::pricing::{Package, RouteEstimate};
use crate::trip::Minor;

/// Taka per unit of linear trip distance (seed 002: "linear distance * 2 taka").
pub const COURSE_TAKA_PER_UNIT: f64 = 2.0;

/// ISO 4217 code of the Bangladeshi taka.
pub const CURRENCY: &str = "BDT";

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CourseFare {
    /// Taka, exactly `COURSE_TAKA_PER_UNIT ×` the trip distance (not rounded: the course checks it).
    pub amount: f64,
    pub trip_distance: f64,
}

pub fn course_fare(request: &RideRequest) -> CourseFare {
    let trip_distance = request.trip_distance();
    CourseFare {
        amount: COURSE_TAKA_PER_UNIT * trip_distance,
        trip_distance,
    }
}

/// A package's tariff, in minor units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tariff {
    pub base: Minor,
    pub per_km: Minor,
    pub per_minute: Minor,
    pub minimum: Minor,
}

impl Tariff {
    /// Dhaka-like defaults (taka × 100).
    pub const fn default_for(package: Package) -> Self {
        match package {
            Package::Bike => Self {
                base: 2_500,
                per_km: 1_200,
                per_minute: 100,
                minimum: 4_000,
            },
            Package::Auto => Self {
                base: 4_000,
                per_km: 1_800,
                per_minute: 200,
                minimum: 8_000,
            },
            Package::Car => Self {
                base: 6_000,
                per_km: 2_400,
                per_minute: 300,
                minimum: 12_000,
            },
            Package::Premium => Self {
                base: 10_000,
                per_km: 4_000,
                per_minute: 500,
                minimum: 25_000,
            },
        }
    }
}

/// The fare of `tariff` over `route`: base + distance + time, at least the minimum, rounded up to
/// a whole taka (riders pay in taka).
pub fn product_fare(tariff: &Tariff, route: &RouteEstimate) -> Minor {
    let distance = u64::from(route.distance_m) * tariff.per_km;
    let time = u64::from(route.duration_s) * tariff.per_minute;
    let raw = tariff.base + distance.div_ceil(1_000) + time.div_ceil(60);
    raw.max(tariff.minimum).div_ceil(100) * 100
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::course::{PersonName, RideRequestDraft};
    use crate::geo::LatLng;
    use crate::geo::Point;
    use crate::ids::RideRequestId;
    use crate::pricing::StraightLineRouting;
    use crate::time::Timestamp;

    #[test]
    fn fare_is_two_taka_per_unit_of_trip_distance() {
        let request = RideRequest::new(
            RideRequestId::from_uuid(uuid::Uuid::nil()),
            RideRequestDraft {
                rider: PersonName::parse("r").expect("valid"),
                position: Point::new(1.0, 1.0).expect("valid"),
                destination: Point::new(4.0, 5.0).expect("valid"),
            },
            Timestamp::from_millis(0),
        );
        let fare = course_fare(&request);
        assert_eq!(fare.trip_distance, 5.0);
        assert_eq!(fare.amount, 10.0);
    }

    #[test]
    fn a_short_trip_pays_the_minimum_and_a_long_one_pays_by_distance_and_time() {
        let tariff = Tariff::default_for(Package::Car);
        let short = RouteEstimate {
            distance_m: 200,
            duration_s: 60,
        };
        assert_eq!(product_fare(&tariff, &short), tariff.minimum);
        // 10 km, 30 min: 60 + 240 + 90 = 390 taka.
        let long = RouteEstimate {
            distance_m: 10_000,
            duration_s: 1_800,
        };
        assert_eq!(product_fare(&tariff, &long), 39_000);
        // Fractions round up to the next taka.
        let odd = RouteEstimate {
            distance_m: 10_001,
            duration_s: 1_800,
        };
        assert_eq!(product_fare(&tariff, &odd), 39_100);
    }

    #[test]
    fn dearer_packages_cost_more_on_the_same_route() {
        let at = |lat, lng| LatLng::new(lat, lng).expect("valid");
        let route = StraightLineRouting::default().estimate(&at(23.78, 90.40), &at(23.75, 90.39));
        let fares: Vec<Minor> = Package::ALL
            .iter()
            .map(|p| product_fare(&Tariff::default_for(*p), &route))
            .collect();
        assert!(fares.windows(2).all(|w| w[0] < w[1]), "{fares:?}");
    }
}
