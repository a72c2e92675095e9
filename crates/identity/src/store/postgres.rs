//! Accounts and tokens in PostgreSQL (the distributed mode), in the `identity` schema owned by
//! this service.

use platform::store::{EmbeddedMigration, PgPool, Writes, migrate_postgres};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::sql::impl_account_store;
use super::{StoreError, account_from_row};
use crate::Account;

/// The schema this service's tables live in.
pub const SCHEMA: &str = "identity";

pub const MIGRATIONS: &[EmbeddedMigration] = &[
    (
        1,
        "accounts and tokens",
        include_str!("../../migrations/postgres/0001_accounts_and_tokens.sql"),
    ),
    (
        2,
        "admin role",
        include_str!("../../migrations/postgres/0002_admin_role.sql"),
    ),
];

#[derive(Clone, Debug)]
pub struct PgAccountStore {
    pool: PgPool,
    /// Each write a transaction of the pool's (read committed: the guarded
    /// `UPDATE … WHERE revoked = FALSE` serialises rotations by row lock).
    writes: Writes<sqlx::Postgres>,
}

impl PgAccountStore {
    /// Connects with `search_path = identity` (the schema is created if missing).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = platform::store::open_postgres(url, SCHEMA, max_connections)
            .await
            .map_err(|e| StoreError::Backend(format!("connecting to PostgreSQL: {e}")))?;
        Ok(Self {
            writes: Writes::direct(pool.clone()),
            pool,
        })
    }

    /// Applies pending migrations (`rickshaw migrate`, and every start).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrate_postgres(&self.pool, MIGRATIONS)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating the identity schema: {e}")))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn read_account(row: &PgRow) -> Result<Account, StoreError> {
    account_from_row(
        row.try_get("id")?,
        row.try_get("email")?,
        row.try_get("name")?,
        row.try_get("role")?,
        row.try_get("vehicle_package")?,
        row.try_get("vehicle_plate")?,
        row.try_get("vehicle_model")?,
        row.try_get("created_at_ms")?,
    )
}

/// Ids are `uuid` columns.
type IdColumn = uuid::Uuid;

fn id_of(id: uuid::Uuid) -> IdColumn {
    id
}

fn uuid_of(id: &IdColumn) -> Result<uuid::Uuid, StoreError> {
    Ok(*id)
}

impl_account_store!(PgAccountStore);
