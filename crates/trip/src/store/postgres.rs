//! Trips in PostgreSQL (the distributed mode), in the `trip` schema owned by this service. Under
//! READ COMMITTED a compare-and-set that lost a race re-reads the committed row and matches nothing
//! (`Stale`), and a second active trip for a driver waits on the unique index, then fails.

use platform::store::{EmbeddedMigration, PgPool, migrate_postgres};

use super::sql::{self, impl_trip_store};
use super::{Backend, StoreError};

/// The schema this service's tables live in.
pub const SCHEMA: &str = "trip";

pub const MIGRATIONS: &[EmbeddedMigration] = &[
    (
        1,
        "trips and notices",
        include_str!("../../migrations/postgres/0001_trips.sql"),
    ),
    (
        2,
        "driver status",
        include_str!("../../migrations/postgres/0002_driver_status.sql"),
    ),
    (
        3,
        "outbox",
        include_str!("../../migrations/postgres/0003_outbox.sql"),
    ),
    (
        4,
        "idempotency keys",
        include_str!("../../migrations/postgres/0004_idempotency.sql"),
    ),
];

#[derive(Clone, Debug)]
pub struct PgTripStore {
    pool: PgPool,
    writes: platform::store::Writes<sqlx::Postgres>,
}

impl PgTripStore {
    /// Connects with `search_path = trip` (the schema is created if missing).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = platform::store::open_postgres(url, SCHEMA, max_connections)
            .await
            .map_err(|e| StoreError::Backend(format!("connecting to PostgreSQL: {e}")))?;
        Ok(Self {
            writes: platform::store::Writes::direct(pool.clone()),
            pool,
        })
    }

    /// Applies pending migrations (`rickshaw migrate`, and every start).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate_postgres(&self.pool, MIGRATIONS)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating the trip schema: {e}")))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn outbox_table(&self) -> std::sync::Arc<dyn platform::outbox::OutboxTable> {
        std::sync::Arc::new(platform::outbox::PgOutbox(self.pool.clone()))
    }

    fn idempotency_keys(&self) -> platform::idempotency::IdempotencyKeys {
        platform::idempotency::IdempotencyKeys::Postgres(self.pool.clone())
    }
}

impl Backend for PgTripStore {
    type Db = sqlx::Postgres;
    const CONCURRENT_WRITES: usize = 4;
}

impl_trip_store!(PgTripStore);
