//! Trips in SQLite (the embedded mode), one database file owned by this service. SQLite has one
//! writer at a time, so the compare-and-set and the unique indexes are checked in commit order.

use platform::store::{EmbeddedMigration, migrate_sqlite};
use sqlx::SqlitePool;

use super::sql::{self, impl_trip_store};
use super::{Backend, StoreError};

pub const MIGRATIONS: &[EmbeddedMigration] = &[
    (
        1,
        "trips and notices",
        include_str!("../../migrations/sqlite/0001_trips.sql"),
    ),
    (
        2,
        "driver status",
        include_str!("../../migrations/sqlite/0002_driver_status.sql"),
    ),
    (
        3,
        "outbox",
        include_str!("../../migrations/sqlite/0003_outbox.sql"),
    ),
    (
        4,
        "idempotency keys",
        include_str!("../../migrations/sqlite/0004_idempotency.sql"),
    ),
];

#[derive(Clone, Debug)]
pub struct SqliteTripStore {
    pool: SqlitePool,
    writes: platform::store::Writes<sqlx::Sqlite>,
}

impl SqliteTripStore {
    /// Applies pending migrations, then serves from `pool`.
    pub async fn new(pool: SqlitePool) -> Result<Self, StoreError> {
        migrate_sqlite(&pool, MIGRATIONS)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating the trip database: {e}")))?;
        let writes = platform::store::Writes::sqlite(&pool, "trip-db")
            .await
            .map_err(|e| StoreError::Backend(format!("opening the trip database's writer: {e}")))?;
        Ok(Self { pool, writes })
    }

    fn outbox_table(&self) -> std::sync::Arc<dyn platform::outbox::OutboxTable> {
        std::sync::Arc::new(platform::outbox::SqliteOutbox(self.writes.pool().clone()))
    }

    fn idempotency_keys(&self) -> platform::idempotency::IdempotencyKeys {
        platform::idempotency::IdempotencyKeys::Sqlite(self.writes.pool().clone())
    }
}

impl Backend for SqliteTripStore {
    type Db = sqlx::Sqlite;
    const CONCURRENT_WRITES: usize = 8;
}

impl_trip_store!(SqliteTripStore);
