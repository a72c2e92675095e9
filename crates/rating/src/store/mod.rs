//! The rating store seam. Every implementation (SQLite now, PostgreSQL in the distributed mode)
//! passes `rating_store_contract!`.

#[doc(hidden)]
pub mod contract;
mod postgres;
mod sqlite;

use async_trait::async_trait;
use domain::rating::{RatingSummary, Stars};
use domain::{CarNumber, PersonName, Timestamp};

pub use postgres::PgRatingStore;
pub use sqlite::SqliteRatingStore;

#[derive(Clone, Debug, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("rating store: {0}")]
pub struct StoreError(pub String);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self(e.to_string())
    }
}

/// A driver row as stored, checked again on the way out.
fn known_driver(name: String, car: String) -> Result<KnownDriver, StoreError> {
    Ok(KnownDriver {
        name: PersonName::parse(&name)
            .map_err(|e| StoreError(format!("stored driver name: {e}")))?,
        car_number: CarNumber::parse(&car)
            .map_err(|e| StoreError(format!("stored car number: {e}")))?,
    })
}

/// A driver the store knows, with the car last reported.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KnownDriver {
    pub name: PersonName,
    pub car_number: CarNumber,
}

/// How a rating names its driver: by name, or by the car they drive.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverRef {
    Name(PersonName),
    Car(CarNumber),
}

impl std::fmt::Display for DriverRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(name) => write!(f, "driver {name:?}"),
            Self::Car(car) => write!(f, "car {car:?}"),
        }
    }
}

#[async_trait]
pub trait RatingStore: Send + Sync + 'static {
    /// Records that `name` reported `car_number` at `seen_at` (idempotent). The latest report wins,
    /// both for the driver's car and for which driver a car number names.
    async fn remember_driver(
        &self,
        name: &PersonName,
        car_number: &CarNumber,
        seen_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.remember_drivers(&[(name.clone(), car_number.clone(), seen_at)])
            .await
    }

    /// `remember_driver` for each report, in one transaction (one commit for many).
    async fn remember_drivers(
        &self,
        reports: &[(PersonName, CarNumber, Timestamp)],
    ) -> Result<(), StoreError>;

    /// The driver a reference points at: by name, or the driver most recently reported with the car.
    async fn find_driver(&self, driver: &DriverRef) -> Result<Option<KnownDriver>, StoreError>;

    /// Stores one rating of a known driver with its `announcement` in the outbox, and returns
    /// the driver's new summary and the outbox row, atomically.
    async fn add_rating(
        &self,
        id: uuid::Uuid,
        driver: &PersonName,
        stars: Stars,
        rated_at: Timestamp,
        announcement: &platform::bus::Envelope,
    ) -> Result<(RatingSummary, platform::outbox::Pending), StoreError>;

    async fn summary(&self, driver: &PersonName) -> Result<RatingSummary, StoreError>;

    /// The outbox table the announcements are written to, for the relay.
    fn outbox(&self) -> std::sync::Arc<dyn platform::outbox::OutboxTable>;
}
