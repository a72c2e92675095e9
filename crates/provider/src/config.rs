//! The provider's section of the config (`[provider]`): its API key, where its webhooks go and
//! how they are signed, and how long an authorization holds.

use platform::config::Section;
use serde::{Deserialize, Serialize};

/// The simulated payment provider, as a Stripe account would be configured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// The API key every request must present (`Authorization: Bearer <key>`).
    pub secret_key: String,
    /// Where events are POSTed. Unset: the embedded mode's payment service in this process
    /// (`http://<listen>/v1/payments/webhook`); in the distributed mode no webhooks are sent.
    pub webhook_url: Option<String>,
    /// Signing secrets; the first signs. The receiver may hold several during a rotation.
    pub webhook_secrets: Vec<String>,
    /// An authorization not captured or canceled this long after its creation is canceled
    /// (`cancellation_reason: "automatic"`), as a card network releases an uncaptured hold.
    pub authorization_ttl_s: u64,
    /// A webhook not acknowledged after this many attempts is given up (and logged).
    pub webhook_max_attempts: u32,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            secret_key: "sk_test_rickshaw".to_owned(),
            webhook_url: None,
            webhook_secrets: vec!["whsec_rickshaw_test".to_owned()],
            authorization_ttl_s: 7 * 24 * 3600,
            webhook_max_attempts: 12,
        }
    }
}

impl ProviderConfig {
    /// The secret events are signed with (the first; validation makes sure there is one).
    pub fn signing_secret(&self) -> &str {
        self.webhook_secrets.first().map_or("", String::as_str)
    }
}

/// Ten years: a bound that keeps every deadline computed from the TTL far from overflow.
const MAX_TTL_S: u64 = 10 * 365 * 24 * 3600;

impl Section for ProviderConfig {
    const NAME: &'static str = "provider";

    fn validate(&self) -> Result<(), String> {
        if self.secret_key.trim().is_empty() {
            return Err("provider.secret_key must not be empty".into());
        }
        if self.webhook_secrets.is_empty() || self.webhook_secrets.iter().any(|s| s.is_empty()) {
            return Err(
                "provider.webhook_secrets must hold at least one secret, none of them empty".into(),
            );
        }
        if let Some(url) = &self.webhook_url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| format!("provider.webhook_url = {url:?} is not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
                return Err(format!(
                    "provider.webhook_url = {url:?} must be an http(s) URL with a host"
                ));
            }
        }
        if self.authorization_ttl_s == 0 || self.authorization_ttl_s > MAX_TTL_S {
            return Err(format!(
                "provider.authorization_ttl_s = {} must be 1 to {MAX_TTL_S}",
                self.authorization_ttl_s
            ));
        }
        if self.webhook_max_attempts == 0 {
            return Err("provider.webhook_max_attempts must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        let config = ProviderConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.signing_secret(), "whsec_rickshaw_test");
        assert_eq!(config.authorization_ttl_s, 604_800);
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        type Edit = fn(&mut ProviderConfig);
        let cases: [(&str, Edit); 6] = [
            ("secret_key", |c| c.secret_key = " ".into()),
            ("webhook_secrets", |c| c.webhook_secrets.clear()),
            ("webhook_secrets", |c| {
                c.webhook_secrets = vec![String::new()]
            }),
            ("webhook_url", |c| c.webhook_url = Some("ftp://x/y".into())),
            ("webhook_url", |c| c.webhook_url = Some("not a url".into())),
            ("authorization_ttl_s", |c| c.authorization_ttl_s = 0),
        ];
        for (key, edit) in cases {
            let mut config = ProviderConfig::default();
            edit(&mut config);
            let error = config.validate().expect_err(key);
            assert!(error.contains(key), "{error:?} names {key}");
        }
        let ok = ProviderConfig {
            webhook_url: Some("https://hooks.example.com/stripe".into()),
            ..ProviderConfig::default()
        };
        assert_eq!(ok.validate(), Ok(()));
    }
}
