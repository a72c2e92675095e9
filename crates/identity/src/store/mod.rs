//! The identity store seam: accounts with their password hashes, refresh tokens (by hash) and
//! login attempts. Every implementation (SQLite in the embedded mode, PostgreSQL in the
//! distributed mode) passes `identity_store_contract!`.

#[doc(hidden)]
pub mod contract;
mod postgres;
mod sql;
mod sqlite;

use std::str::FromStr;

use async_trait::async_trait;
use domain::{AccountId, Email, Package, PersonName, Role, Timestamp, Vehicle};
use sha2::{Digest, Sha256};

use crate::Account;

pub use postgres::PgAccountStore;
pub use sqlite::SqliteAccountStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("an account with email {0} already exists")]
    EmailTaken(Email),
    #[error("identity store: {0}")]
    Backend(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Backend(e.to_string())
    }
}

/// An account with what proves its owner: the Argon2id PHC string of the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub account: Account,
    pub password_hash: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("account", &self.account)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// The SHA-256 of a refresh token, in hex: all the store ever sees of one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        let digest = Sha256::digest(token.as_bytes());
        Self(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A prefix is enough to tell hashes apart in a test failure.
        write!(f, "TokenHash({}…)", &self.0[..8])
    }
}

/// A refresh token to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshGrant {
    pub token: TokenHash,
    pub account: AccountId,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What became of a refresh token presented for rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// It was live: it is now revoked and its replacement stored, for this account.
    Rotated { account: AccountId },
    /// It had already been revoked (spent or logged out): every refresh token of the account has
    /// now been revoked, and no replacement was stored.
    Reused { account: AccountId },
    /// It has expired (nothing changed).
    Expired,
    /// No such token.
    Unknown,
}

#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// Stores a new account; `StoreError::EmailTaken` if the email already has one.
    async fn create_account(
        &self,
        account: &Account,
        password_hash: &str,
    ) -> Result<(), StoreError>;

    async fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError>;

    /// The account registered with `email`, and its password hash.
    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>, StoreError>;

    /// Sets (or replaces) the account's vehicle and returns the updated account; `None` if there
    /// is no such account. Whether the account may have a vehicle is the service's business.
    async fn set_vehicle(
        &self,
        id: AccountId,
        vehicle: &Vehicle,
    ) -> Result<Option<Account>, StoreError>;

    async fn add_refresh_token(&self, grant: &RefreshGrant) -> Result<(), StoreError>;

    /// Atomically spends `presented` for `next` (same account, issued at `now`, expiring at
    /// `expires_at`): of any number of concurrent rotations of one token, exactly one is
    /// `Rotated`. A revoked token is `Reused` and revokes all of its account's tokens.
    async fn rotate_refresh_token(
        &self,
        presented: &TokenHash,
        next: &TokenHash,
        expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Rotation, StoreError>;

    /// Revokes one token; `true` if it was live (unrevoked) before.
    async fn revoke_refresh_token(&self, token: &TokenHash) -> Result<bool, StoreError>;

    /// Revokes every refresh token of an account; how many were live.
    async fn revoke_all_refresh_tokens(&self, account: AccountId) -> Result<u64, StoreError>;

    /// Records a login attempt for `email` at `at`, until it is forgotten or pruned.
    async fn record_login_attempt(
        &self,
        id: uuid::Uuid,
        email: &Email,
        at: Timestamp,
    ) -> Result<(), StoreError>;

    /// When each recorded attempt for `email` after `since` (exclusive) was made, oldest first.
    async fn login_attempts_since(
        &self,
        email: &Email,
        since: Timestamp,
    ) -> Result<Vec<Timestamp>, StoreError>;

    async fn forget_login_attempt(&self, id: uuid::Uuid) -> Result<(), StoreError>;

    /// Drops every attempt (of any email) made before `before`; how many.
    async fn forget_login_attempts_before(&self, before: Timestamp) -> Result<u64, StoreError>;
}

/// An account row as stored, checked again on the way out.
#[allow(clippy::too_many_arguments)]
fn account_from_row(
    id: uuid::Uuid,
    email: &str,
    name: &str,
    role: &str,
    package: Option<String>,
    plate: Option<String>,
    model: Option<String>,
    created_at_ms: i64,
) -> Result<Account, StoreError> {
    let bad = |what: &str, e: String| StoreError::Backend(format!("stored {what}: {e}"));
    let vehicle = match (package, plate, model) {
        (Some(package), Some(plate), Some(model)) => {
            let package = Package::from_str(&package).map_err(|e| bad("package", e.to_string()))?;
            Some(Vehicle::new(package, &plate, &model).map_err(|(_, e)| bad("vehicle", e))?)
        }
        (None, None, None) => None,
        _ => return Err(bad("vehicle", "partly set".into())),
    };
    Ok(Account {
        id: AccountId::from_uuid(id),
        email: Email::parse(email).map_err(|e| bad("email", e))?,
        name: PersonName::parse(name).map_err(|e| bad("name", e.to_string()))?,
        role: Role::from_str(role).map_err(|e| bad("role", e))?,
        vehicle,
        created_at: Timestamp::from_millis(created_at_ms),
    })
}

/// The columns an account is read from, for `concat!` into queries.
macro_rules! account_columns {
    () => {
        "id, email, name, role, vehicle_package, vehicle_plate, vehicle_model, created_at_ms"
    };
}
use account_columns;

/// Whether an insert failed on a unique constraint (for accounts: the email; ids are fresh v7s).
fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}
