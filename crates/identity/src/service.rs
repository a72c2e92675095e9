//! The identity service: `IdentityApi` over a store, a token issuer and the configuration.

use std::sync::Arc;
use std::time::Duration;

use crate::IdentityConfig;
use async_trait::async_trait;
use domain::{AccountId, Email, Role, Timestamp, Vehicle};
use platform::clock;
use platform::limit::Backoff;

use crate::store::{AccountStore, RefreshGrant, Rotation, TokenHash};
use crate::tokens::random_token;
use crate::{
    Account, Caller, IdentityApi, IdentityError, SignUp, SigningKey, TokenIssuer, TokenVerifier,
    Tokens, password,
};

/// Accounts, logins and sessions.
///
/// The login limit lives in the store, so every instance shares it: each login records an
/// attempt first, and is refused without a password check while the email's other attempts in
/// the window (failures, and logins still in flight) call for a wait ([`Backoff`]: the first
/// `login_free_failures` are free, then each doubles the wait up to `login_backoff_max_ms`). A
/// successful login forgets its own attempt only. Recording before checking (rather than after
/// failing) means concurrent guesses cannot slip past the limit together.
///
/// Passwords are hashed and checked on a bounded pool ([`password::Hasher`]).
///
/// Refreshing slides the session: the new refresh token gets a full `refresh_ttl_s`.
pub struct IdentityService {
    store: Arc<dyn AccountStore>,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    refresh_ttl_s: u64,
    login_backoff: Backoff,
    hasher: password::Hasher,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService")
            .field("issuer", &self.issuer)
            .field("refresh_ttl_s", &self.refresh_ttl_s)
            .field("login_backoff", &self.login_backoff)
            .field("hasher", &self.hasher)
            .finish_non_exhaustive()
    }
}

fn seconds_to_millis(s: u64) -> i64 {
    i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// The per-email login backoff `[identity]` asks for.
pub fn login_backoff(config: &IdentityConfig) -> Backoff {
    Backoff {
        free: config.login_free_failures,
        base: Duration::from_millis(config.login_backoff_ms),
        max: Duration::from_millis(config.login_backoff_max_ms),
        window: Duration::from_secs(config.login_window_s),
    }
}

impl IdentityService {
    pub fn new(store: Arc<dyn AccountStore>, keys: SigningKey, config: &IdentityConfig) -> Self {
        password::warm_up();
        Self {
            store,
            issuer: TokenIssuer::new(&keys, config.access_ttl_s),
            verifier: TokenVerifier::new(&keys),
            refresh_ttl_s: config.refresh_ttl_s,
            login_backoff: login_backoff(config),
            hasher: password::Hasher::from_config(config),
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

    /// Records this attempt, or refuses it if the email must wait. Returns the attempt to
    /// forget on success.
    async fn admit_login(
        &self,
        email: &Email,
        now: Timestamp,
    ) -> Result<Option<uuid::Uuid>, IdentityError> {
        if self.login_backoff.free == 0 {
            return Ok(None);
        }
        let attempt = uuid::Uuid::now_v7();
        self.store.record_login_attempt(attempt, email, now).await?;
        let mut recent = self
            .store
            .login_attempts_since(email, self.login_backoff.window_start(now))
            .await?;
        if let Some(own) = recent.iter().rposition(|at| *at == now) {
            recent.remove(own);
        }
        if let Some(until) = self.login_backoff.blocked_until(&recent, now) {
            self.store.forget_login_attempt(attempt).await?;
            let retry_after_s = Backoff::retry_after_s(until, now);
            tracing::info!(retry_after_s, "login refused: too many failed attempts");
            return Err(IdentityError::TooManyAttempts { retry_after_s });
        }
        Ok(Some(attempt))
    }

    /// Opens an account of any role, admin included (`rickshaw admin create`; sign-up refuses
    /// admins). The password must be 8 to 128 characters.
    pub async fn create(&self, request: SignUp) -> Result<Account, IdentityError> {
        password::check_strength(&request.password)?;
        // Hashed whether or not the email is taken: a sign-up takes as long either way, so its
        // timing does not tell who has an account. The store's unique email decides.
        let password_hash = self.hasher.hash(request.password).await?;
        let account = Account {
            id: AccountId::from_uuid(uuid::Uuid::now_v7()),
            email: request.email,
            name: request.name,
            role: request.role,
            vehicle: None,
            created_at: clock::now(),
        };
        self.store.create_account(&account, &password_hash).await?;
        tracing::info!(account = %account.id, role = %account.role, "account created");
        Ok(account)
    }
}

#[async_trait]
impl IdentityApi for IdentityService {
    #[tracing::instrument(skip_all, fields(role = %request.role))]
    async fn sign_up(&self, request: SignUp) -> Result<Account, IdentityError> {
        if request.role == Role::Admin {
            return Err(IdentityError::Forbidden(
                "sign-up opens rider and driver accounts; an admin is made with `rickshaw admin create`"
                    .into(),
            ));
        }
        self.create(request).await
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
        let matches = match self.hasher.verify(password, hash).await {
            Ok(matches) => matches,
            Err(e) => {
                // Refused before any check (the pool is full): not a failure of the email's.
                if let Some(attempt) = attempt {
                    self.store.forget_login_attempt(attempt).await?;
                }
                return Err(e);
            }
        };
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
                        .forget_login_attempts_before(self.login_backoff.window_start(now))
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
        self.account_by_id(caller.account).await
    }

    async fn account_by_id(&self, id: AccountId) -> Result<Account, IdentityError> {
        self.store
            .account(id)
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
