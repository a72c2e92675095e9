//! The identity service's section of the config (`[identity]`): tokens, login back-off, the
//! password-hashing pool.

use platform::config::Section;
use serde::{Deserialize, Serialize};

/// Accounts and tokens.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// The HS256 key signing access tokens (at least 32 bytes). Required in the distributed mode
    /// (every gateway and service instance must share it); the embedded mode generates one under
    /// the data directory when unset. Never logged.
    pub signing_key: Option<String>,
    /// Lifetime of an access token.
    pub access_ttl_s: u64,
    /// Lifetime of a refresh token.
    pub refresh_ttl_s: u64,
    /// Failed logins an email may have before each further attempt waits (0: no limit). Past
    /// it, the wait doubles with every failure, from `login_backoff_ms` up to
    /// `login_backoff_max_ms`; failures older than `login_window_s` are forgotten.
    pub login_free_failures: u32,
    pub login_backoff_ms: u64,
    pub login_backoff_max_ms: u64,
    pub login_window_s: u64,
    /// Password hashes (Argon2id, ~19 MiB and ~150 ms each) computed at once; 0: one per core.
    pub hash_workers: usize,
    /// Hashes allowed to wait for a worker; more are refused at once with 503 and Retry-After.
    pub hash_queue: usize,
    /// How long a hash may wait for a worker before it is refused with 503 and Retry-After.
    pub hash_queue_timeout_ms: u64,
}

impl std::fmt::Debug for IdentityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityConfig")
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "<redacted>"),
            )
            .field("access_ttl_s", &self.access_ttl_s)
            .field("refresh_ttl_s", &self.refresh_ttl_s)
            .field("login_free_failures", &self.login_free_failures)
            .field("login_backoff_ms", &self.login_backoff_ms)
            .field("login_backoff_max_ms", &self.login_backoff_max_ms)
            .field("login_window_s", &self.login_window_s)
            .field("hash_workers", &self.hash_workers)
            .field("hash_queue", &self.hash_queue)
            .field("hash_queue_timeout_ms", &self.hash_queue_timeout_ms)
            .finish()
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            signing_key: None,
            access_ttl_s: 900,
            refresh_ttl_s: 30 * 24 * 3600,
            login_free_failures: 5,
            login_backoff_ms: 1_000,
            login_backoff_max_ms: 5 * 60_000,
            login_window_s: 15 * 60,
            hash_workers: 0,
            hash_queue: 64,
            hash_queue_timeout_ms: 2_000,
        }
    }
}

impl Section for IdentityConfig {
    const NAME: &'static str = "identity";

    fn validate(&self) -> Result<(), String> {
        if let Some(key) = &self.signing_key
            && key.len() < 32
        {
            return Err(format!(
                "identity.signing_key is {} bytes; use at least 32 random bytes",
                key.len()
            ));
        }
        if self.access_ttl_s == 0 || self.refresh_ttl_s == 0 {
            return Err("identity.access_ttl_s and identity.refresh_ttl_s must be positive".into());
        }
        if self.hash_queue_timeout_ms == 0 || self.login_window_s == 0 || self.login_backoff_ms == 0
        {
            return Err(
                "identity.hash_queue_timeout_ms, identity.login_window_s and identity.login_backoff_ms must be positive".into(),
            );
        }
        if self.login_backoff_max_ms < self.login_backoff_ms {
            return Err(format!(
                "identity.login_backoff_max_ms = {} must be at least identity.login_backoff_ms = {}",
                self.login_backoff_max_ms, self.login_backoff_ms
            ));
        }
        Ok(())
    }
}
