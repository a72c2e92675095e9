//! The payment service's section of the config (`[payment]`).

use platform::config::Section;
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentConfig {
    /// The provider's API (`…/provider/v1`); unset: in the embedded mode this process's own
    /// provider, in the distributed mode required.
    pub provider_url: Option<String>,
    /// The provider's secret API key. Never logged.
    pub provider_key: String,
    /// The secrets the provider signs webhooks with; several while one is rotated. Never logged.
    pub webhook_secrets: Vec<String>,
    /// A webhook signed longer ago than this (or that far in the future) is refused.
    pub webhook_tolerance_s: i64,
    /// The hold is the quoted fare plus this share (basis points), rounded up to a whole taka.
    pub hold_buffer_bps: u32,
    /// The platform's commission on every fare and fee (basis points); the driver earns the rest.
    pub commission_bps: u32,
    /// The payment method of a booking that names none (a test card of the provider).
    pub default_method: String,
    /// How long a call to the provider may take.
    pub provider_timeout_ms: u64,
    /// Calls to the provider in flight at once; more wait for one to end (within the timeout).
    pub provider_max_in_flight: usize,
}

impl std::fmt::Debug for PaymentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentConfig")
            .field("provider_url", &self.provider_url)
            .field("provider_key", &"<redacted>")
            .field("webhook_secrets", &"<redacted>")
            .field("webhook_tolerance_s", &self.webhook_tolerance_s)
            .field("hold_buffer_bps", &self.hold_buffer_bps)
            .field("commission_bps", &self.commission_bps)
            .field("default_method", &self.default_method)
            .field("provider_timeout_ms", &self.provider_timeout_ms)
            .field("provider_max_in_flight", &self.provider_max_in_flight)
            .finish()
    }
}

impl Default for PaymentConfig {
    fn default() -> Self {
        Self {
            provider_url: None,
            provider_key: "sk_test_rickshaw".to_owned(),
            webhook_secrets: vec!["whsec_rickshaw_test".to_owned()],
            webhook_tolerance_s: 300,
            hold_buffer_bps: 2_000,
            commission_bps: 2_000,
            default_method: "pm_card_visa".to_owned(),
            provider_timeout_ms: 5_000,
            provider_max_in_flight: 128,
        }
    }
}

impl Section for PaymentConfig {
    const NAME: &'static str = "payment";

    fn validate(&self) -> Result<(), String> {
        if self.provider_key.is_empty() || self.webhook_secrets.iter().any(String::is_empty) {
            return Err(
                "payment.provider_key and every payment.webhook_secrets entry must be non-empty"
                    .into(),
            );
        }
        if self.webhook_secrets.is_empty() {
            return Err("payment.webhook_secrets needs at least one secret".into());
        }
        if !(1..=3_600).contains(&self.webhook_tolerance_s) {
            return Err(format!(
                "payment.webhook_tolerance_s = {} must be 1 to 3600",
                self.webhook_tolerance_s
            ));
        }
        if self.hold_buffer_bps > 10_000 || self.commission_bps > 10_000 {
            return Err(format!(
                "payment.hold_buffer_bps = {} and payment.commission_bps = {} must be at most 10000 (100 %)",
                self.hold_buffer_bps, self.commission_bps
            ));
        }
        if let Some(url) = &self.provider_url
            && reqwest::Url::parse(url).is_err()
        {
            return Err(format!("payment.provider_url = {url:?} is not a URL"));
        }
        if self.provider_timeout_ms == 0 {
            return Err("payment.provider_timeout_ms must be positive".into());
        }
        if !(1..=10_000).contains(&self.provider_max_in_flight) {
            return Err(format!(
                "payment.provider_max_in_flight = {} must be 1 to 10000",
                self.provider_max_in_flight
            ));
        }
        Ok(())
    }
}

impl PaymentConfig {
    /// The hold for `fare`: the fare plus the buffer, rounded up to a whole taka.
    pub fn hold_for(&self, fare: u64) -> u64 {
        let buffered = u128::from(fare) * (10_000 + u128::from(self.hold_buffer_bps));
        let hold = u64::try_from(buffered.div_ceil(10_000)).unwrap_or(u64::MAX);
        hold.div_ceil(100).saturating_mul(100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hold_is_the_fare_and_its_buffer_in_whole_taka() {
        let config = PaymentConfig::default();
        assert_eq!(config.hold_for(20_000), 24_000);
        assert_eq!(config.hold_for(12_345), 14_900);
        assert!(format!("{config:?}").contains("<redacted>"));
        assert!(!format!("{config:?}").contains("sk_test"));
    }
}
