//! The provider's objects in SQLite (the embedded mode), one database file owned by this
//! service. SQLite has one writer at a time, so the compare-and-sets are checked in commit order.

use platform::store::{EmbeddedMigration, migrate_sqlite};
use sqlx::SqlitePool;

use super::sql::{self, impl_provider_store};
use super::{Backend, StoreError};

pub const MIGRATIONS: &[EmbeddedMigration] = &[(
    1,
    "payment intents, refunds, idempotency keys and webhook deliveries",
    include_str!("../../migrations/sqlite/0001_provider.sql"),
)];

#[derive(Clone, Debug)]
pub struct SqliteProviderStore {
    pool: SqlitePool,
    writes: platform::store::Writes<sqlx::Sqlite>,
}

impl SqliteProviderStore {
    /// Applies pending migrations, then serves from `pool`.
    pub async fn new(pool: SqlitePool) -> Result<Self, StoreError> {
        migrate_sqlite(&pool, MIGRATIONS)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating the provider database: {e}")))?;
        let writes = platform::store::Writes::sqlite(&pool, "provider-db")
            .await
            .map_err(|e| {
                StoreError::Backend(format!("opening the provider database's writer: {e}"))
            })?;
        Ok(Self { pool, writes })
    }
}

impl Backend for SqliteProviderStore {
    type Db = sqlx::Sqlite;
}

impl_provider_store!(SqliteProviderStore);
