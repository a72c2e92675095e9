//! The pricing service's section of the config (`[pricing]`): the router and quotes.

use platform::config::Section;
use serde::{Deserialize, Serialize};

/// Trip previews and quotes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricingConfig {
    /// An OSRM-compatible routing server (`http://host:5000`); unset: great-circle distance ×
    /// `detour_factor` at `speed_kmh`.
    pub osrm_url: Option<String>,
    pub detour_factor: f64,
    pub speed_kmh: f64,
    /// How long a quote can be booked.
    pub quote_ttl_s: u64,
}

impl Default for PricingConfig {
    fn default() -> Self {
        Self {
            osrm_url: None,
            detour_factor: 1.35,
            speed_kmh: 20.0,
            quote_ttl_s: 300,
        }
    }
}

impl Section for PricingConfig {
    const NAME: &'static str = "pricing";

    fn validate(&self) -> Result<(), String> {
        if !(self.detour_factor.is_finite() && (1.0..=3.0).contains(&self.detour_factor)) {
            return Err(format!(
                "pricing.detour_factor = {} must be 1 to 3",
                self.detour_factor
            ));
        }
        if !(self.speed_kmh.is_finite() && (1.0..=200.0).contains(&self.speed_kmh)) {
            return Err(format!(
                "pricing.speed_kmh = {} must be 1 to 200",
                self.speed_kmh
            ));
        }
        if self.quote_ttl_s == 0 {
            return Err("pricing.quote_ttl_s must be positive".into());
        }
        Ok(())
    }
}
