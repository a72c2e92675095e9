//! The audit service's section of the config (`[audit]`).

use platform::config::Section;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The subjects recorded, each a durable consumer group (`audit-<n>`, shared by every
    /// instance). The default is every event of the product, its payments, ratings and mail, and
    /// drivers going online and offline. The course protocol's anonymous ride requests and
    /// matches (`rider.>`, `matching.>`) are left out by default: they name nobody, and come by the
    /// thousand a second under its load tests; add them here to keep them. Positions are
    /// telemetry, not events, and are never recorded.
    pub subjects: Vec<String>,
    /// Most events recorded in one transaction.
    pub batch: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            subjects: vec![
                "trip.notice.v1".into(),
                "payment.>".into(),
                "rating.>".into(),
                "mail.>".into(),
                "supply.driver_status.v1".into(),
            ],
            batch: 256,
        }
    }
}

/// Subjects that are telemetry, refused in `audit.subjects`.
const POSITIONS: [&str; 2] = ["supply.driver_located.v1", "supply.driver_available.v1"];

impl Section for AuditConfig {
    const NAME: &'static str = "audit";

    fn validate(&self) -> Result<(), String> {
        if !(1..=10_000).contains(&self.batch) {
            return Err(format!("audit.batch = {} must be 1 to 10000", self.batch));
        }
        for subject in &self.subjects {
            let first = subject.split('.').next().unwrap_or_default();
            if subject.is_empty() || first == "*" || first == ">" || subject.contains(' ') {
                return Err(format!(
                    "audit.subjects: {subject:?} must start with a literal token (as payment.>)"
                ));
            }
            if POSITIONS.contains(&subject.as_str()) || subject == "supply.>" {
                return Err(format!(
                    "audit.subjects: {subject:?} carries drivers' positions, which are not audited; name supply.driver_status.v1"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_positions_are_refused() {
        assert_eq!(AuditConfig::default().validate(), Ok(()));
        for bad in ["", ">", "supply.>", "supply.driver_located.v1"] {
            let config = AuditConfig {
                subjects: vec![bad.into()],
                ..AuditConfig::default()
            };
            assert!(config.validate().is_err(), "{bad:?}");
        }
    }
}
