//! The identity service: `IdentityApi` over a store, a token issuer and the configuration.

use std::sync::Arc;

use async_trait::async_trait;
use domain::{AccountId, Email, Role, Timestamp, Vehicle};
use platform::clock;
use platform::config::IdentityConfig;

use crate::store::{AccountStore, RefreshGrant, Rotation, TokenHash};
use crate::tokens::random_token;
use crate::{
    Account, Caller, IdentityApi, IdentityError, SignUp, SigningKey, TokenIssuer, TokenVerifier,
    Tokens, password,
};

/// The login rate limit's window.
const LOGIN_WINDOW_MS: i64 = 60_000;

/// Accounts, logins and sessions.
///
/// The login rate limit lives in the store, so every instance shares it: each login records an
/// attempt first, and is refused without a password check while the email has at least
/// `login_attempts_per_minute` other attempts in the last 60 s (0 turns the limit off). A
/// successful login forgets its own attempt only; earlier failures still count until they are a
/// minute old. Recording before checking (rather than after failing) means concurrent guesses
/// cannot slip past the limit together.
///
/// Refreshing slides the session: the new refresh token gets a full `refresh_ttl_s`.
pub struct IdentityService {
    store: Arc<dyn AccountStore>,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    refresh_ttl_s: u64,
    login_attempts_per_minute: u32,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService")
            .field("issuer", &self.issuer)
            .field("refresh_ttl_s", &self.refresh_ttl_s)
            .field("login_attempts_per_minute", &self.login_attempts_per_minute)
            .finish_non_exhaustive()
    }
}

fn seconds_to_millis(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Whole seconds (at least 1) until fewer than `limit` of `recent` (oldest first, at least
/// `limit` of them) are inside the window.
fn retry_after_s(recent: &[Timestamp], limit: usize, now: Timestamp) -> u64 {
    let blocking = recent[recent.len() - limit];
    blocking
        .plus_millis(LOGIN_WINDOW_MS)
        .millis_since(now)
        .div_ceil(1000)
        .max(1)
}

impl IdentityService {
    pub fn new(store: Arc<dyn AccountStore>, keys: SigningKey, config: &IdentityConfig) -> Self {
        password::warm_up();
        Self {
            store,
            issuer: TokenIssuer::new(&keys, config.access_ttl_s),
            verifier: TokenVerifier::new(&keys),
            refresh_ttl_s: config.refresh_ttl_s,
            login_attempts_per_minute: config.login_attempts_per_minute,
        }
    }

    /// A verifier for the tokens this service issues (same key).
    pub fn verifier(&self) -> TokenVerifier {
        self.verifier.clone()
    }

    fn tokens(
        &self,
        account: Account,
        refresh_token: String,
        now: Timestamp,
    ) -> Result<Tokens, IdentityError> {
        Ok(Tokens {
            access_token: self.issuer.issue(account.id, account.role, now)?,
            token_type: "Bearer".to_owned(),
            expires_in: self.issuer.ttl_s(),
            refresh_token,
            refresh_expires_in: self.refresh_ttl_s,
            account,
        })
    }

    async fn open_session(
        &self,
        account: Account,
        now: Timestamp,
    ) -> Result<Tokens, IdentityError> {
        let refresh_token = random_token();
        self.store
            .add_refresh_token(&RefreshGrant {
                token: TokenHash::of(&refresh_token),
                account: account.id,
                issued_at: now,
                expires_at: now.plus_millis(seconds_to_millis(self.refresh_ttl_s)),
            })
            .await?;
        self.tokens(account, refresh_token, now)
    }

    /// Records this attempt, or refuses it if the email is over the limit. Returns the attempt
    /// to forget on success.
    async fn admit_login(
        &self,
        email: &Email,
        now: Timestamp,
    ) -> Result<Option<uuid::Uuid>, IdentityError> {
        if self.login_attempts_per_minute == 0 {
            return Ok(None);
        }
        let limit = usize::try_from(self.login_attempts_per_minute).unwrap_or(usize::MAX);
        let attempt = uuid::Uuid::now_v7();
        self.store.record_login_attempt(attempt, email, now).await?;
        let mut recent = self
            .store
            .login_attempts_since(email, now.plus_millis(-LOGIN_WINDOW_MS))
            .await?;
        if let Some(own) = recent.iter().rposition(|at| *at == now) {
            recent.remove(own);
        }
        if recent.len() >= limit {
            self.store.forget_login_attempt(attempt).await?;
            let retry_after_s = retry_after_s(&recent, limit, now);
            tracing::info!(retry_after_s, "login refused: too many failed attempts");
            return Err(IdentityError::TooManyAttempts { retry_after_s });
        }
        Ok(Some(attempt))
    }
}

#[async_trait]
impl IdentityApi for IdentityService {
    #[tracing::instrument(skip_all, fields(role = %request.role))]
    async fn sign_up(&self, request: SignUp) -> Result<Account, IdentityError> {
        password::check_strength(&request.password)?;
        // Saves the hash's CPU on an obvious duplicate; the store's unique email decides races.
        if self.store.credentials(&request.email).await?.is_some() {
            return Err(IdentityError::EmailTaken(request.email));
        }
        let password_hash = password::hash(request.password).await?;
        let account = Account {
            id: AccountId::from_uuid(uuid::Uuid::now_v7()),
            email: request.email,
            name: request.name,
            role: request.role,
            vehicle: None,
            created_at: clock::now(),
        };
        self.store.create_account(&account, &password_hash).await?;
        tracing::info!(account = %account.id, "account created");
        Ok(account)
    }

    #[tracing::instrument(skip_all)]
    async fn log_in(&self, email: Email, password: String) -> Result<Tokens, IdentityError> {
        let now = clock::now();
        let attempt = self.admit_login(&email, now).await?;
        let (account, hash) = match self.store.credentials(&email).await? {
            Some(found) => (Some(found.account), Some(found.password_hash)),
            None => (None, None),
        };
        // An unknown email is checked against a dummy hash: same answer, same time.
        let matches = password::verify(password, hash).await?;
        match account {
            Some(account) if matches => {
                if let Some(attempt) = attempt {
                    self.store.forget_login_attempt(attempt).await?;
                }
                tracing::info!(account = %account.id, "logged in");
                self.open_session(account, now).await
            }
            _ => {
                if attempt.is_some() {
                    self.store
                        .forget_login_attempts_before(now.plus_millis(-LOGIN_WINDOW_MS))
                        .await?;
                }
                Err(IdentityError::InvalidCredentials)
            }
        }
    }

    #[tracing::instrument(skip_all)]
    async fn refresh(&self, refresh_token: String) -> Result<Tokens, IdentityError> {
        let now = clock::now();
        let next = random_token();
        let rotation = self
            .store
            .rotate_refresh_token(
                &TokenHash::of(&refresh_token),
                &TokenHash::of(&next),
                now.plus_millis(seconds_to_millis(self.refresh_ttl_s)),
                now,
            )
            .await?;
        match rotation {
            Rotation::Rotated { account } => {
                let account = self
                    .store
                    .account(account)
                    .await?
                    .ok_or(IdentityError::UnknownAccount)?;
                self.tokens(account, next, now)
            }
            Rotation::Reused { account } => {
                tracing::warn!(
                    %account,
                    "a spent or revoked refresh token was presented; every session of the account is revoked"
                );
                Err(IdentityError::InvalidToken(
                    "this refresh token was already used or revoked; every session of the account \
                     has been signed out, log in again"
                        .to_owned(),
                ))
            }
            Rotation::Expired => Err(IdentityError::InvalidToken(
                "the refresh token has expired; log in again".to_owned(),
            )),
            Rotation::Unknown => Err(IdentityError::InvalidToken(
                "unknown refresh token".to_owned(),
            )),
        }
    }

    #[tracing::instrument(skip_all)]
    async fn log_out(&self, refresh_token: String) -> Result<(), IdentityError> {
        self.store
            .revoke_refresh_token(&TokenHash::of(&refresh_token))
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(account = %caller.account))]
    async fn account(&self, caller: &Caller) -> Result<Account, IdentityError> {
        self.store
            .account(caller.account)
            .await?
            .ok_or(IdentityError::UnknownAccount)
    }

    #[tracing::instrument(skip_all, fields(account = %caller.account))]
    async fn set_vehicle(
        &self,
        caller: &Caller,
        vehicle: Vehicle,
    ) -> Result<Account, IdentityError> {
        // The stored role decides (the caller's is a claim of its token; both should agree).
        let account = self.account(caller).await?;
        if caller.role != Role::Driver || account.role != Role::Driver {
            return Err(IdentityError::Forbidden(format!(
                "only drivers have a vehicle; this account is a {}",
                account.role
            )));
        }
        self.store
            .set_vehicle(account.id, &vehicle)
            .await?
            .ok_or(IdentityError::UnknownAccount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_counts_until_the_limit_is_no_longer_reached() {
        let now = Timestamp::from_millis(100_000);
        let at = Timestamp::from_millis;
        // Limit 3, attempts at 45 s, 50 s, 70 s: the one at 45 s leaves the window at 105 s.
        assert_eq!(
            retry_after_s(&[at(45_000), at(50_000), at(70_000)], 3, now),
            5
        );
        // Four attempts: two must leave; the second (50 s) does at 110 s.
        assert_eq!(
            retry_after_s(&[at(45_000), at(50_000), at(70_000), at(99_000)], 3, now),
            10
        );
        // Never 0, rounded up.
        assert_eq!(retry_after_s(&[at(40_000)], 1, now), 1);
        assert_eq!(retry_after_s(&[at(40_001)], 1, now), 1);
        assert_eq!(retry_after_s(&[at(41_500)], 1, now), 2);
    }
}
