//! The supply service's section of the config (`[supply]`).

use platform::config::Section;
use serde::{Deserialize, Serialize};

/// Driver availability and positions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupplyConfig {
    /// At most one position per driver is published in this interval; the positions sent in
    /// between are coalesced to the latest, published when the interval ends (0: no limit).
    pub location_interval_ms: u64,
}

impl Default for SupplyConfig {
    fn default() -> Self {
        Self {
            location_interval_ms: 1_000,
        }
    }
}

impl Section for SupplyConfig {
    const NAME: &'static str = "supply";
}
