//! The pure core of Rickshaw: typed ids, planar geometry, the course protocol's ride requests and
//! driver reports, matching (assignment), fares, ratings and the payloads of the events services
//! exchange on the bus.
//!
//! This crate must never do IO, read a clock or draw random numbers: time and ids come in as
//! arguments, and every invalid input is an error value, never a panic. No sqlx, no tokio, no axum.

pub mod account;
pub mod course;
pub mod events;
pub mod fare;
pub mod geo;
pub mod ids;
pub mod ledger;
pub mod matching;
pub mod pricing;
pub mod rating;
pub mod time;
pub mod trip;

pub use account::{Email, Role, Vehicle};
pub use course::{CarNumber, DriverReport, PersonName, RideRequest, ValidationError};
pub use fare::Tariff;
pub use geo::{CoordinateError, LatLng, LatLngError, MAX_ABS_COORDINATE, Point, Projection};
pub use ids::{AccountId, EventId, MatchId, RideRequestId, TripId};
pub use pricing::{Package, RouteEstimate};
pub use time::Timestamp;
