//! The identity service owns accounts (email, name, role, a driver's vehicle), their password
//! hashes, and the tokens that prove who is calling: short-lived access tokens (HS256 JWTs that
//! every service checks locally with a [`TokenVerifier`]) and long-lived refresh tokens (random,
//! rotated on every use, stored only as SHA-256 hashes). It also keeps the per-email login rate
//! limit, in its store so that every instance shares it. It never reads another service's tables.
//!
//! It must never log, print or return in an error a password, a token (access or refresh), a
//! password hash or the signing key: [`SignUp`], [`Tokens`] and [`SigningKey`] redact them in
//! `Debug`, and the service's tracing spans skip its arguments. Passwords are hashed with Argon2id
//! on blocking threads, and a login for an unknown email spends the same hash verification as a
//! known one, so neither the answer nor its timing tells which emails have accounts.

pub mod config;
mod keys;
pub mod module;
mod password;
pub mod remote;
mod service;
pub mod store;
mod tokens;

use async_trait::async_trait;
use domain::{AccountId, Email, PersonName, Role, Timestamp, Vehicle};
use serde::{Deserialize, Serialize};

pub use config::IdentityConfig;
pub use keys::{SigningKey, SigningKeyError};
pub use module::{Module, signing_key, verifier};
pub use password::Hasher;
pub use password::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
pub use platform::auth::Caller;
pub use remote::{RemoteIdentity, caller_of};
pub use service::{IdentityService, login_backoff};
pub use store::{AccountStore, PgAccountStore, SqliteAccountStore, StoreError};
pub use tokens::{ISSUER, TokenIssuer, TokenVerifier};

/// An account as every other service sees it (never with its password hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub email: Email,
    pub name: PersonName,
    pub role: Role,
    /// A driver's vehicle, once set; always `None` for a rider.
    pub vehicle: Option<Vehicle>,
    pub created_at: Timestamp,
}

/// A request to open an account.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignUp {
    pub email: Email,
    /// In clear, only on its way to the hash; redacted in `Debug`.
    pub password: String,
    pub name: PersonName,
    pub role: Role,
}

impl std::fmt::Debug for SignUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignUp")
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish()
    }
}

/// What a successful login or refresh hands the client (OAuth 2 token response shape).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tokens {
    /// An HS256 JWT for `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Seconds the access token is valid for.
    pub expires_in: u64,
    /// Shown once; the store keeps only its hash. Exchanged (and thereby spent) by `refresh`.
    pub refresh_token: String,
    /// Seconds the refresh token is valid for.
    pub refresh_expires_in: u64,
    pub account: Account,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"<redacted>")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &"<redacted>")
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("account", &self.account)
            .finish()
    }
}

/// What a verified access token says about its bearer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub account: AccountId,
    pub role: Role,
    /// The first instant at which the token is refused (whole seconds).
    pub expires_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityError {
    #[error("an account with email {0} already exists")]
    EmailTaken(Email),
    /// The same whether the email has an account or not.
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("{0}")]
    WeakPassword(String),
    #[error("too many failed logins for this email; retry in {retry_after_s} s")]
    TooManyAttempts { retry_after_s: u64 },
    /// Too many password checks waiting already (the hashing pool's queue is full, or this one
    /// waited past its deadline): 503, retry after the given seconds.
    #[error("too many sign-ups and logins at once; retry in {retry_after_s} s")]
    Busy { retry_after_s: u64 },
    #[error("{0}")]
    InvalidToken(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("no such account")]
    UnknownAccount,
    /// A failure of the store or of the machinery (hashing, signing); opaque to clients.
    #[error("identity store: {0}")]
    Store(String),
    /// The identity service could not be reached (a remote caller's view): 503, retry.
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for IdentityError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::EmailTaken(email) => Self::EmailTaken(email),
            StoreError::Backend(cause) => Self::Store(cause),
        }
    }
}

impl From<IdentityError> for platform::ApiError {
    fn from(e: IdentityError) -> Self {
        use platform::{ApiError, ErrorCode};
        let message = e.to_string();
        match e {
            IdentityError::EmailTaken(_) => ApiError::new(ErrorCode::Conflict, message),
            IdentityError::InvalidCredentials | IdentityError::InvalidToken(_) => {
                ApiError::new(ErrorCode::Unauthorized, message)
            }
            IdentityError::WeakPassword(_) => ApiError::invalid_field("password", message),
            IdentityError::TooManyAttempts { retry_after_s } => {
                ApiError::new(ErrorCode::RateLimited, message).with_retry_after(retry_after_s)
            }
            IdentityError::Busy { retry_after_s } => {
                ApiError::new(ErrorCode::Unavailable, message).with_retry_after(retry_after_s)
            }
            IdentityError::Forbidden(_) => ApiError::new(ErrorCode::Forbidden, message),
            IdentityError::UnknownAccount => ApiError::not_found(message),
            // The store is down or overloaded: the caller may try again shortly.
            IdentityError::Store(_) => ApiError::unavailable(message).with_retry_after(1),
            IdentityError::Unavailable(_) => ApiError::new(ErrorCode::Unavailable, message),
        }
    }
}

/// What a remote caller makes of an error that is not the identity service's own (it could not
/// be reached, or something between failed): the variant of the same class.
impl From<platform::ApiError> for IdentityError {
    fn from(e: platform::ApiError) -> Self {
        use platform::ErrorCode;
        match e.code {
            ErrorCode::Unauthorized => Self::InvalidToken(e.message),
            ErrorCode::Forbidden => Self::Forbidden(e.message),
            ErrorCode::NotFound => Self::UnknownAccount,
            ErrorCode::RateLimited => Self::TooManyAttempts {
                retry_after_s: e.retry_after_s().unwrap_or(1),
            },
            ErrorCode::Unavailable => Self::Unavailable(e.message),
            _ => Self::Store(match e.field {
                Some(field) => format!("{} ({field})", e.message),
                None => e.message,
            }),
        }
    }
}

/// How the gateway (or any other caller) reaches the identity service.
#[async_trait]
pub trait IdentityApi: Send + Sync {
    /// Opens an account. The password must be 8 to 128 characters.
    async fn sign_up(&self, request: SignUp) -> Result<Account, IdentityError>;
    /// Checks the password (rate-limited per email) and opens a session.
    async fn log_in(&self, email: Email, password: String) -> Result<Tokens, IdentityError>;
    /// Spends a refresh token for a new pair. Presenting a spent (or logged-out) refresh token
    /// again revokes every session of its account.
    async fn refresh(&self, refresh_token: String) -> Result<Tokens, IdentityError>;
    /// Revokes a refresh token; idempotent (an unknown or revoked token is fine too).
    async fn log_out(&self, refresh_token: String) -> Result<(), IdentityError>;
    /// The caller's own account.
    async fn account(&self, caller: &Caller) -> Result<Account, IdentityError>;
    /// An account by id, for the services that write to its holder (mail). Not public.
    async fn account_by_id(&self, id: AccountId) -> Result<Account, IdentityError>;
    /// Sets (or replaces) the caller's vehicle. Drivers only (a rider gets
    /// IdentityError::Forbidden).
    async fn set_vehicle(
        &self,
        caller: &Caller,
        vehicle: Vehicle,
    ) -> Result<Account, IdentityError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_identity_error_crosses_processes_as_itself() {
        platform::rpc::assert_round_trip(&[
            IdentityError::EmailTaken(Email::parse("ana@example.com").expect("valid")),
            IdentityError::InvalidCredentials,
            IdentityError::WeakPassword("the password must be at least 8 characters".into()),
            IdentityError::TooManyAttempts { retry_after_s: 17 },
            IdentityError::Busy { retry_after_s: 2 },
            IdentityError::InvalidToken("the access token has expired".into()),
            IdentityError::Forbidden("only drivers have a vehicle".into()),
            IdentityError::UnknownAccount,
            IdentityError::Store("disk full".into()),
            IdentityError::Unavailable("the identity service is unreachable".into()),
        ]);
    }

    #[test]
    fn an_error_from_outside_the_service_keeps_its_class() {
        use platform::{ApiError, ErrorCode};
        let e = IdentityError::from(ApiError::unavailable("rpc.identity.log_in: no reply"));
        assert_eq!(ApiError::from(e).code, ErrorCode::Unavailable);
        let e =
            IdentityError::from(ApiError::new(ErrorCode::RateLimited, "slow").with_retry_after(4));
        assert_eq!(e, IdentityError::TooManyAttempts { retry_after_s: 4 });
        let e = IdentityError::from(ApiError::invalid_field("email", "not an email"));
        assert!(matches!(&e, IdentityError::Store(m) if m.contains("(email)")));
    }
}
