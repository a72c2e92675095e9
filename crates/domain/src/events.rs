//! The events services exchange on the bus: the contract between services.
//!
//! Each event type names its subject. Subjects are `<owning service>.<event>.v<major>`; adding an
//! optional field keeps the major version, anything a v1 consumer could misread (renaming, removing,
//! changing a meaning) is a new subject `….v2`, published beside v1 until every consumer has moved.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::course::{CarNumber, DriverReport, PersonName, RideRequest};
use crate::geo::{LatLng, Point};
use crate::ids::{AccountId, MatchId, RideRequestId};
use crate::pricing::Package;
use crate::rating::Stars;
use crate::time::Timestamp;

/// A payload that travels on the bus under a fixed subject. `Clone`: the consumers of one event
/// in a process share its decoding.
pub trait Event: Clone + Serialize + DeserializeOwned + Send + Sync + 'static {
    const SUBJECT: &'static str;
}

/// The rider service accepted a ride request (`POST /rider`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RideRequested {
    pub request: RideRequest,
}

impl Event for RideRequested {
    const SUBJECT: &'static str = "rider.ride_requested.v1";
}

/// A driver reported a position and is free (`POST /driver`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriverAvailable {
    pub report: DriverReport,
}

impl Event for DriverAvailable {
    const SUBJECT: &'static str = "supply.driver_available.v1";
}

/// The matching service paired a ride request with a driver in tick `tick`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RideMatched {
    pub match_id: MatchId,
    /// Tick number within the matcher's run; pairs of one tick share it.
    pub tick: u64,
    pub request_id: RideRequestId,
    pub rider: PersonName,
    pub rider_position: Point,
    pub destination: Point,
    pub driver: PersonName,
    pub car_number: CarNumber,
    pub driver_position: Point,
    pub pickup_distance: f64,
    pub trip_distance: f64,
    /// Taka: 2 × `trip_distance`.
    pub fare: f64,
    pub currency: String,
    pub requested_at: Timestamp,
    pub matched_at: Timestamp,
}

impl Event for RideMatched {
    const SUBJECT: &'static str = "matching.ride_matched.v1";
}

/// A ride request waited longer than the hold time without a driver and was dropped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RideExpired {
    pub request_id: RideRequestId,
    pub rider: PersonName,
    pub requested_at: Timestamp,
    pub expired_at: Timestamp,
}

impl Event for RideExpired {
    const SUBJECT: &'static str = "matching.ride_expired.v1";
}

/// The rating service stored a rating.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriverRated {
    pub driver: PersonName,
    pub car_number: CarNumber,
    pub stars: Stars,
    pub rated_at: Timestamp,
}

impl Event for DriverRated {
    const SUBJECT: &'static str = "rating.driver_rated.v1";
}

/// A product driver went online (with the package their vehicle serves) or offline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriverStatusChanged {
    pub driver: AccountId,
    pub online: bool,
    /// Set when online.
    pub package: Option<Package>,
    pub at: Timestamp,
}

impl Event for DriverStatusChanged {
    const SUBJECT: &'static str = "supply.driver_status.v1";
}

/// A product driver's position (the WebSocket or `POST /v1/drivers/me/location`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriverLocated {
    pub driver: AccountId,
    pub position: LatLng,
    pub at: Timestamp,
}

impl Event for DriverLocated {
    const SUBJECT: &'static str = "supply.driver_located.v1";
}
