//! Accounts and tokens in SQLite (the embedded mode), one database file owned by this service.

use platform::store::{EmbeddedMigration, Writes, migrate_sqlite};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::sql::impl_account_store;
use super::{StoreError, account_from_row};
use crate::Account;

pub const MIGRATIONS: &[EmbeddedMigration] = &[
    (
        1,
        "accounts and tokens",
        include_str!("../../migrations/sqlite/0001_accounts_and_tokens.sql"),
    ),
    (
        2,
        "admin role",
        include_str!("../../migrations/sqlite/0002_admin_role.sql"),
    ),
];

#[derive(Clone, Debug)]
pub struct SqliteAccountStore {
    pool: SqlitePool,
    /// identity.db's writes: its writer connection, group-committed on a lane of its own.
    writes: Writes<sqlx::Sqlite>,
}

impl SqliteAccountStore {
    /// Applies pending migrations, then serves from `pool`.
    pub async fn new(pool: SqlitePool) -> Result<Self, StoreError> {
        migrate_sqlite(&pool, MIGRATIONS)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating the identity database: {e}")))?;
        let writes = Writes::sqlite(&pool, "identity-db").await.map_err(|e| {
            StoreError::Backend(format!("opening the identity database's writer: {e}"))
        })?;
        Ok(Self { pool, writes })
    }
}

fn uuid_of(text: &IdColumn) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(text).map_err(|e| StoreError::Backend(format!("stored id: {e}")))
}

fn read_account(row: &SqliteRow) -> Result<Account, StoreError> {
    account_from_row(
        uuid_of(&row.try_get::<IdColumn, _>("id")?)?,
        row.try_get("email")?,
        row.try_get("name")?,
        row.try_get("role")?,
        row.try_get("vehicle_package")?,
        row.try_get("vehicle_plate")?,
        row.try_get("vehicle_model")?,
        row.try_get("created_at_ms")?,
    )
}

/// Ids are text.
type IdColumn = String;

fn id_of(id: uuid::Uuid) -> IdColumn {
    id.to_string()
}

impl_account_store!(SqliteAccountStore);

#[cfg(test)]
mod tests {
    /// A store on a file in a temporary directory (several connections, as in production, so
    /// concurrent rotations really race), which lives as long as the store.
    struct OnDisk {
        store: super::SqliteAccountStore,
        _dir: tempfile::TempDir,
    }

    impl std::ops::Deref for OnDisk {
        type Target = super::SqliteAccountStore;

        fn deref(&self) -> &Self::Target {
            &self.store
        }
    }

    async fn on_disk() -> OnDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = platform::store::open_sqlite(&dir.path().join("identity.db"))
            .await
            .expect("sqlite");
        let store = super::SqliteAccountStore::new(pool)
            .await
            .expect("migrates");
        OnDisk { store, _dir: dir }
    }

    crate::identity_store_contract!(on_disk());

    mod in_memory {
        crate::identity_store_contract!(async {
            let pool = platform::store::open_sqlite_in_memory()
                .await
                .expect("sqlite");
            Box::new(
                crate::store::SqliteAccountStore::new(pool)
                    .await
                    .expect("migrates"),
            )
        });
    }
}
