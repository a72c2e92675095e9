//! The trip store seam: trips (a compare-and-set on `version` for every change) and the notices
//! each change produces, written in one transaction. Every implementation passes
//! `trip_store_contract!`. Both implementations share their SQL (`sql.rs`): SQLite and
//! PostgreSQL both take `$n` parameters, `RETURNING` and partial-free unique indexes over
//! nullable columns (NULLs never collide), which is what the invariants rest on:
//!
//! - `active_driver` is the driver holding the trip — offered to them, `driver_assigned`,
//!   `arrived` or `in_progress` — else NULL; unique — a driver holds one offer or one active
//!   trip, never two. It is the claim that keeps two dispatchers (owners of neighbouring shards)
//!   from giving the same driver two trips: the second offer is refused as `DriverBusy`;
//! - `open_rider` is the rider until the trip ends, else NULL; unique — one open trip per rider;
//! - `quote_id` is unique — a quote books one trip.

#[doc(hidden)]
pub mod contract;
mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use domain::pricing::RouteEstimate;
use domain::trip::{Trip, TripState};
use domain::{AccountId, LatLng, Package, Timestamp, TripId};
use serde::{Deserialize, Serialize};

pub use postgres::PgTripStore;
pub use sqlite::SqliteTripStore;

use crate::TripNotice;
use crate::view::TripView;

/// A trip as stored: the state machine's `Trip` and what was booked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TripRecord {
    pub id: TripId,
    /// The quote it was booked with (unique).
    pub quote_id: uuid::Uuid,
    pub package: Package,
    pub pickup: LatLng,
    pub dropoff: LatLng,
    pub route: RouteEstimate,
    /// Minor units (poisha).
    pub fare: u64,
    pub trip: Trip,
    pub updated_at: Timestamp,
}

impl TripRecord {
    /// The driver holding this trip, offered or active (the unique `active_driver` column).
    pub fn active_driver(&self) -> Option<AccountId> {
        match self.trip.state {
            TripState::Offered { driver, .. }
            | TripState::DriverAssigned { driver, .. }
            | TripState::Arrived { driver, .. }
            | TripState::InProgress { driver, .. } => Some(driver),
            _ => None,
        }
    }

    /// The rider while the trip is open (the unique `open_rider` column).
    pub fn open_rider(&self) -> Option<AccountId> {
        (!self.trip.state.is_final()).then_some(self.trip.rider)
    }
}

/// A notice to store with a change: `recipients` are the rider and/or one driver.
#[derive(Clone, Debug, PartialEq)]
pub struct NewNotice {
    pub kind: crate::NoticeKind,
    pub rider: Option<AccountId>,
    pub driver: Option<AccountId>,
    pub trip: TripView,
    pub at: Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The trip changed since it was read (`version` moved on).
    #[error("the trip changed meanwhile")]
    Stale,
    #[error("the driver already holds an offer or an active trip")]
    DriverBusy,
    #[error("the rider already has an open trip")]
    RiderBusy,
    #[error("this quote was booked already")]
    QuoteUsed,
    #[error("trip store: {0}")]
    Backend(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = e.as_database_error()
            && db.is_unique_violation()
        {
            // PostgreSQL names the index, SQLite the column: both contain the column's name.
            let what = format!("{} {}", db.constraint().unwrap_or_default(), db.message());
            if what.contains("active_driver") {
                return Self::DriverBusy;
            }
            if what.contains("open_rider") {
                return Self::RiderBusy;
            }
            // A trip's id is its quote's: a second booking of one quote may meet the primary
            // key first.
            if what.contains("quote_id") || what.contains("trips_pkey") || what.contains("trips.id")
            {
                return Self::QuoteUsed;
            }
        }
        Self::Backend(e.to_string())
    }
}

/// The connection a backend's transaction bodies write on.
type Connection<S> = <<S as Backend>::Db as sqlx::Database>::Connection;

/// Which sqlx database a store runs on (for the shared SQL).
trait Backend {
    type Db: sqlx::Database;
    /// Write transactions worth running at once: PostgreSQL commits them in parallel; SQLite
    /// runs them one after another, but those queued together share one commit (the group
    /// commit of `platform::store::Writes`), so a round's chunks are queued a few at a time.
    const CONCURRENT_WRITES: usize;
}

/// One change of [`TripStore::update_many`]: `next` replaces the trip if it is still at
/// `expected_version`, with its notices.
#[derive(Clone, Debug)]
pub struct Change {
    pub next: TripRecord,
    pub expected_version: u64,
    pub notices: Vec<NewNotice>,
}

/// A notice as committed: its place in the log, and its outbox row (written in the same
/// transaction) to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct Stored {
    pub notice: TripNotice,
    pub outbox: platform::outbox::Pending,
}

#[async_trait]
pub trait TripStore: Send + Sync + 'static {
    /// Stores a new trip and its notices (each in the log and in the outbox, in one
    /// transaction); `QuoteUsed` / `RiderBusy` when the indexes refuse it.
    async fn create(
        &self,
        record: &TripRecord,
        notices: &[NewNotice],
    ) -> Result<Vec<Stored>, StoreError>;
    async fn get(&self, id: TripId) -> Result<Option<TripRecord>, StoreError>;
    async fn by_quote(&self, quote_id: uuid::Uuid) -> Result<Option<TripRecord>, StoreError>;
    /// Replaces the trip if it is still at `expected_version`, with its notices (log and
    /// outbox), atomically.
    async fn update(
        &self,
        next: &TripRecord,
        expected_version: u64,
        notices: &[NewNotice],
    ) -> Result<Vec<Stored>, StoreError>;
    /// Several `update`s in one transaction (one commit, one fsync): each is applied or refused
    /// (`Stale`, `DriverBusy`, …) on its own, and the ones applied commit together. An error of
    /// the store itself refuses them all.
    async fn update_many(
        &self,
        changes: &[Change],
    ) -> Result<Vec<Result<Vec<Stored>, StoreError>>, StoreError>;
    /// How many `update_many`s are worth running at once (more only queue for the database).
    fn concurrent_writes(&self) -> usize;
    /// The account's trips as rider or as current driver, newest first.
    async fn list_for(&self, account: AccountId, limit: u32)
    -> Result<Vec<TripRecord>, StoreError>;
    /// Trips searching or offered (the dispatcher's work), oldest first.
    async fn open_trips(&self, limit: u32) -> Result<Vec<TripRecord>, StoreError>;
    /// Drivers holding a trip (offered to them or active).
    async fn busy_drivers(&self) -> Result<Vec<AccountId>, StoreError>;
    /// The account's notices with an id above `after`, oldest first.
    async fn notices_for(
        &self,
        account: AccountId,
        after: i64,
        limit: u32,
    ) -> Result<Vec<TripNotice>, StoreError>;
    /// The newest notice's id in the whole log (0 while it is empty).
    async fn notice_head(&self) -> Result<i64, StoreError>;
    /// Records a driver's availability (`Some(package)`: online) unless a newer one is stored.
    async fn set_driver_status(
        &self,
        driver: AccountId,
        package: Option<Package>,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.set_driver_statuses(&[(driver, package, at)]).await
    }
    /// [`TripStore::set_driver_status`] for many, in one statement: a driver named twice is
    /// recorded at its newest.
    async fn set_driver_statuses(
        &self,
        statuses: &[(AccountId, Option<Package>, Timestamp)],
    ) -> Result<(), StoreError>;
    /// Drivers whose last recorded status is online, with their package.
    async fn online_drivers(&self) -> Result<Vec<(AccountId, Package)>, StoreError>;
    /// The outbox table the notices are written to, for the relay.
    fn outbox(&self) -> Arc<dyn platform::outbox::OutboxTable>;
    /// The `Idempotency-Key`s of bookings and actions.
    fn idempotency(&self) -> platform::idempotency::IdempotencyKeys;
}
