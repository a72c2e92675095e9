//! The operations service's section of the config (`[operations]`).

use platform::config::Section;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperationsConfig {
    /// How often the map's viewers are sent what changed (one frame with every change since).
    pub push_interval_ms: u64,
    /// How often they are sent the headline figures and the cells.
    pub figures_interval_ms: u64,
    /// H3 resolution of the demand and supply cells (0–15; 8 is about 0.7 km² a cell).
    pub h3_resolution: u8,
    /// A course driver counts as free this long after its last report: the matcher's
    /// `matching.hold_ms`.
    pub course_window_ms: u64,
    /// A product driver not heard from (position or status) for this long leaves the map: the
    /// trip service's `trips.position_ttl_ms`.
    pub stale_after_ms: u64,
    /// Course riders and drivers kept at most, each (beyond it they are counted, not drawn).
    pub max_course_entries: usize,
    /// Map viewers at once, on this instance; one more is refused with 429.
    pub max_viewers: usize,
}

impl Default for OperationsConfig {
    fn default() -> Self {
        Self {
            push_interval_ms: 250,
            figures_interval_ms: 1_000,
            h3_resolution: 8,
            course_window_ms: 5_000,
            stale_after_ms: 60_000,
            max_course_entries: 100_000,
            max_viewers: 64,
        }
    }
}

impl Section for OperationsConfig {
    const NAME: &'static str = "operations";

    fn validate(&self) -> Result<(), String> {
        if self.push_interval_ms == 0
            || self.figures_interval_ms == 0
            || self.course_window_ms == 0
            || self.stale_after_ms == 0
            || self.max_viewers == 0
        {
            return Err("operations.push_interval_ms, figures_interval_ms, course_window_ms, stale_after_ms and max_viewers must be positive".into());
        }
        if self.h3_resolution > 15 {
            return Err(format!(
                "operations.h3_resolution must be 0 to 15; got {}",
                self.h3_resolution
            ));
        }
        Ok(())
    }
}
