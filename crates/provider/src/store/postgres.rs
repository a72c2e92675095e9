//! The provider's objects in PostgreSQL (the distributed mode), in the `provider` schema owned by
//! this service. Under READ COMMITTED a compare-and-set that lost a race waits for the winner's
//! commit, re-reads the row and matches nothing (`Stale`).

use platform::store::{EmbeddedMigration, PgPool, migrate_postgres};

use super::sql::{self, impl_provider_store};
use super::{Backend, StoreError};

/// The schema this service's tables live in.
pub const SCHEMA: &str = "provider";

pub const MIGRATIONS: &[EmbeddedMigration] = &[(
    1,
    "payment intents, refunds, idempotency keys and webhook deliveries",
    include_str!("../../migrations/postgres/0001_provider.sql"),
)];

#[derive(Clone, Debug)]
pub struct PgProviderStore {
    pool: PgPool,
    writes: platform::store::Writes<sqlx::Postgres>,
}

impl PgProviderStore {
    /// Connects with `search_path = provider` (the schema is created if missing).
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
            .map_err(|e| StoreError::Backend(format!("migrating the provider schema: {e}")))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Backend for PgProviderStore {
    type Db = sqlx::Postgres;
}

impl_provider_store!(PgProviderStore);
