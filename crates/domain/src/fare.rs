//! Fares. The course protocol (seed 002) charges 2 taka per unit of straight-line distance from the
//! rider's position to the destination. Every fare in the system is computed here.

use serde::{Deserialize, Serialize};

use crate::course::RideRequest;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::course::{PersonName, RideRequestDraft};
    use crate::geo::Point;
    use crate::ids::RideRequestId;
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
}
