//! Accounts and tokens in PostgreSQL (the distributed mode), in the `identity` schema owned by
//! this service.

use async_trait::async_trait;
use domain::{AccountId, Email, Timestamp, Vehicle};
use platform::store::{EmbeddedMigration, PgPool, migrator};
use sqlx::Row;
use sqlx::postgres::PgRow;

use super::{
    AccountStore, Credentials, RefreshGrant, Rotation, StoreError, TokenHash, account_columns,
    account_from_row, is_unique_violation,
};
use crate::Account;

/// The schema this service's tables live in.
pub const SCHEMA: &str = "identity";

pub const MIGRATIONS: &[EmbeddedMigration] = &[(
    1,
    "accounts and tokens",
    include_str!("../../migrations/postgres/0001_accounts_and_tokens.sql"),
)];

#[derive(Clone, Debug)]
pub struct PgAccountStore {
    pool: PgPool,
}

impl PgAccountStore {
    /// Connects with `search_path = identity` (the schema is created if missing).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = platform::store::open_postgres(url, SCHEMA, max_connections)
            .await
            .map_err(|e| StoreError::Backend(format!("connecting to PostgreSQL: {e}")))?;
        Ok(Self { pool })
    }

    /// Applies pending migrations (`rickshaw migrate`, and every start).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrator(MIGRATIONS)
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))?
            .run(&self.pool)
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

#[async_trait]
impl AccountStore for PgAccountStore {
    async fn create_account(
        &self,
        account: &Account,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let vehicle = account.vehicle.as_ref();
        sqlx::query(
            "INSERT INTO accounts (id, email, name, role, password_hash, vehicle_package, vehicle_plate, vehicle_model, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(*account.id.as_uuid())
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
            " FROM accounts WHERE id = $1"
        ))
        .bind(*id.as_uuid())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| read_account(&row))
        .transpose()
    }

    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            ", password_hash FROM accounts WHERE email = $1"
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
            "UPDATE accounts SET vehicle_package = $1, vehicle_plate = $2, vehicle_model = $3 WHERE id = $4 RETURNING ",
            account_columns!()
        ))
        .bind(vehicle.package.name())
        .bind(vehicle.plate.as_str())
        .bind(vehicle.model.as_str())
        .bind(*id.as_uuid())
        .fetch_optional(&self.pool)
        .await?
        .map(|row| read_account(&row))
        .transpose()
    }

    async fn add_refresh_token(&self, grant: &RefreshGrant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, account_id, issued_at_ms, expires_at_ms, revoked) VALUES ($1, $2, $3, $4, FALSE)",
        )
        .bind(grant.token.as_str())
        .bind(*grant.account.as_uuid())
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
        // Read committed: a concurrent rotation of the same token waits for this one's row lock,
        // then re-checks `revoked = FALSE`, finds it spent and takes the reuse path.
        let mut tx = self.pool.begin().await?;
        let spent: Option<uuid::Uuid> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET revoked = TRUE
             WHERE token_hash = $1 AND revoked = FALSE AND expires_at_ms > $2 RETURNING account_id",
        )
        .bind(presented.as_str())
        .bind(now.as_millis())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(account) = spent {
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, account_id, issued_at_ms, expires_at_ms, revoked) VALUES ($1, $2, $3, $4, FALSE)",
            )
            .bind(next.as_str())
            .bind(account)
            .bind(now.as_millis())
            .bind(expires_at.as_millis())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Rotation::Rotated {
                account: AccountId::from_uuid(account),
            });
        }
        let found =
            sqlx::query("SELECT account_id, revoked FROM refresh_tokens WHERE token_hash = $1")
                .bind(presented.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = found else {
            return Ok(Rotation::Unknown);
        };
        let account: uuid::Uuid = row.try_get("account_id")?;
        if !row.try_get::<bool, _>("revoked")? {
            return Ok(Rotation::Expired);
        }
        sqlx::query(
            "UPDATE refresh_tokens SET revoked = TRUE WHERE account_id = $1 AND revoked = FALSE",
        )
        .bind(account)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Rotation::Reused {
            account: AccountId::from_uuid(account),
        })
    }

    async fn revoke_refresh_token(&self, token: &TokenHash) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked = TRUE WHERE token_hash = $1 AND revoked = FALSE",
        )
        .bind(token.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn revoke_all_refresh_tokens(&self, account: AccountId) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked = TRUE WHERE account_id = $1 AND revoked = FALSE",
        )
        .bind(*account.as_uuid())
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
        sqlx::query("INSERT INTO login_attempts (id, email, at_ms) VALUES ($1, $2, $3)")
            .bind(id)
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
            "SELECT at_ms FROM login_attempts WHERE email = $1 AND at_ms > $2 ORDER BY at_ms",
        )
        .bind(email.as_str())
        .bind(since.as_millis())
        .fetch_all(&self.pool)
        .await?;
        Ok(times.into_iter().map(Timestamp::from_millis).collect())
    }

    async fn forget_login_attempt(&self, id: uuid::Uuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_attempts WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn forget_login_attempts_before(&self, before: Timestamp) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM login_attempts WHERE at_ms < $1")
            .bind(before.as_millis())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
