//! The gateway's section of the config (`[gateway]`).

use platform::config::Section;
use serde::{Deserialize, Serialize};

/// Limits of the public edge that are not HTTP's own: how hard one client address may push the
/// password checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Sign-ups and logins one client address may have in flight at once (0: no limit).
    pub auth_in_flight_per_address: usize,
    /// Failed logins one client address may have before each further login waits (0: no
    /// limit); the wait doubles with every failure from `login_backoff_ms` to
    /// `login_backoff_max_ms`; failures older than `login_window_s` are forgotten.
    pub login_free_failures_per_address: u32,
    pub login_backoff_ms: u64,
    pub login_backoff_max_ms: u64,
    pub login_window_s: u64,
    /// Client addresses remembered at once; past it the ones with the oldest activity go.
    pub tracked_addresses: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            auth_in_flight_per_address: 8,
            login_free_failures_per_address: 20,
            login_backoff_ms: 1_000,
            login_backoff_max_ms: 5 * 60_000,
            login_window_s: 15 * 60,
            tracked_addresses: 100_000,
        }
    }
}

impl Section for GatewayConfig {
    const NAME: &'static str = "gateway";

    fn validate(&self) -> Result<(), String> {
        if self.login_window_s == 0
            || self.login_backoff_ms == 0
            || self.login_backoff_max_ms < self.login_backoff_ms
            || self.tracked_addresses == 0
        {
            return Err(
                "gateway.login_window_s, gateway.login_backoff_ms and gateway.tracked_addresses must be positive, gateway.login_backoff_max_ms at least gateway.login_backoff_ms".into(),
            );
        }
        Ok(())
    }
}
