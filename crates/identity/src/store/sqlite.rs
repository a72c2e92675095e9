//! Accounts and tokens in SQLite (the embedded mode), one database file owned by this service.

use async_trait::async_trait;
use domain::{AccountId, Email, Timestamp, Vehicle};
use platform::store::{EmbeddedMigration, migrate_sqlite};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};

use super::{
    AccountStore, Credentials, RefreshGrant, Rotation, StoreError, TokenHash, account_columns,
    account_from_row, is_unique_violation,
};
use crate::Account;

pub const MIGRATIONS: &[EmbeddedMigration] = &[(
    1,
    "accounts and tokens",
    include_str!("../../migrations/sqlite/0001_accounts_and_tokens.sql"),
)];

#[derive(Clone, Debug)]
pub struct SqliteAccountStore {
    pool: SqlitePool,
}

impl SqliteAccountStore {
    /// Applies pending migrations, then serves from `pool`.
    pub async fn new(pool: SqlitePool) -> Result<Self, StoreError> {
        migrate_sqlite(&pool, MIGRATIONS)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating the identity database: {e}")))?;
        Ok(Self { pool })
    }
}

fn uuid_of(text: &str) -> Result<uuid::Uuid, StoreError> {
    uuid::Uuid::parse_str(text).map_err(|e| StoreError::Backend(format!("stored id: {e}")))
}

fn read_account(row: &SqliteRow) -> Result<Account, StoreError> {
    account_from_row(
        uuid_of(row.try_get("id")?)?,
        row.try_get("email")?,
        row.try_get("name")?,
        row.try_get("role")?,
        row.try_get("vehicle_package")?,
        row.try_get("vehicle_plate")?,
        row.try_get("vehicle_model")?,
        row.try_get("created_at_ms")?,
    )
}

#[async_trait]
impl AccountStore for SqliteAccountStore {
    async fn create_account(
        &self,
        account: &Account,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let vehicle = account.vehicle.as_ref();
        sqlx::query(
            "INSERT INTO accounts (id, email, name, role, password_hash, vehicle_package, vehicle_plate, vehicle_model, created_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(account.id.to_string())
        .bind(account.email.as_str())
        .bind(account.name.as_str())
        .bind(account.role.name())
        .bind(password_hash)
        .bind(vehicle.map(|v| v.package.name()))
        .bind(vehicle.map(|v| v.plate.as_str()))
        .bind(vehicle.map(|v| v.model.as_str()))
        .bind(account.created_at.as_millis())
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::EmailTaken(account.email.clone())
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE id = ?"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| read_account(&row))
        .transpose()
    }

    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            ", password_hash FROM accounts WHERE email = ?"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| {
            Ok(Credentials {
                account: read_account(&row)?,
                password_hash: row.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    async fn set_vehicle(
        &self,
        id: AccountId,
        vehicle: &Vehicle,
    ) -> Result<Option<Account>, StoreError> {
        sqlx::query(concat!(
            "UPDATE accounts SET vehicle_package = ?, vehicle_plate = ?, vehicle_model = ? WHERE id = ? RETURNING ",
            account_columns!()
        ))
        .bind(vehicle.package.name())
        .bind(vehicle.plate.as_str())
        .bind(vehicle.model.as_str())
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| read_account(&row))
        .transpose()
    }

    async fn add_refresh_token(&self, grant: &RefreshGrant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, account_id, issued_at_ms, expires_at_ms, revoked) VALUES (?, ?, ?, ?, 0)",
        )
        .bind(grant.token.as_str())
        .bind(grant.account.to_string())
        .bind(grant.issued_at.as_millis())
        .bind(grant.expires_at.as_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        next: &TokenHash,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Rotation, StoreError> {
        // IMMEDIATE: take the write lock first, so concurrent rotations queue (busy timeout)
        // instead of failing to upgrade a read snapshot.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let spent: Option<String> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET revoked = 1
             WHERE token_hash = ? AND revoked = 0 AND expires_at_ms > ? RETURNING account_id",
        )
        .bind(presented.as_str())
        .bind(now.as_millis())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(account) = spent {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, account_id, issued_at_ms, expires_at_ms, revoked) VALUES (?, ?, ?, ?, 0)",
            )
            .bind(next.as_str())
            .bind(&account)
            .bind(now.as_millis())
            .bind(expires_at.as_millis())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Rotation::Rotated {
                account: AccountId::from_uuid(uuid_of(&account)?),
            });
        }
        let found =
            sqlx::query("SELECT account_id, revoked FROM refresh_tokens WHERE token_hash = ?")
                .bind(presented.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = found else {
            return Ok(Rotation::Unknown);
        };
        let account: String = row.try_get("account_id")?;
        if !row.try_get::<bool, _>("revoked")? {
            return Ok(Rotation::Expired);
        }
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE account_id = ? AND revoked = 0")
            .bind(&account)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Rotation::Reused {
            account: AccountId::from_uuid(uuid_of(&account)?),
        })
    }

    async fn revoke_refresh_token(&self, token: &TokenHash) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked = 1 WHERE token_hash = ? AND revoked = 0",
        )
        .bind(token.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_all_refresh_tokens(&self, account: AccountId) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked = 1 WHERE account_id = ? AND revoked = 0",
        )
        .bind(account.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn record_login_attempt(
        &self,
        id: uuid::Uuid,
        email: &Email,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO login_attempts (id, email, at_ms) VALUES (?, ?, ?)")
            .bind(id.to_string())
            .bind(email.as_str())
            .bind(at.as_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn login_attempts_since(
        &self,
        email: &Email,
        since: Timestamp,
    ) -> Result<Vec<Timestamp>, StoreError> {
        let times: Vec<i64> = sqlx::query_scalar(
            "SELECT at_ms FROM login_attempts WHERE email = ? AND at_ms > ? ORDER BY at_ms",
        )
        .bind(email.as_str())
        .bind(since.as_millis())
        .fetch_all(&self.pool)
        .await?;
        Ok(times.into_iter().map(Timestamp::from_millis).collect())
    }

    async fn forget_login_attempt(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_attempts WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn forget_login_attempts_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM login_attempts WHERE at_ms < ?")
            .bind(before.as_millis())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

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
