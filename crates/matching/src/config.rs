//! The course matcher's section of the config (`[matching]`): ticks, hold time, strategy, shards.

use domain::matching::Strategy;
use platform::config::Section;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchingConfig {
    /// How often waiting riders are paired with free drivers.
    pub tick_ms: u64,
    /// How long an unmatched rider request or driver report is kept (seed 002: at least 5 s).
    pub hold_ms: u64,
    pub strategy: Strategy,
    /// `optimal`: how many nearest drivers each rider is a candidate for.
    pub candidates: usize,
    /// `optimal`: rounds of pricing after the first solve (0: none; each one brings the result
    /// closer to the exact optimum at the cost of a range query per rider).
    pub pricing_rounds: usize,
    /// `optimal`: a tick of at most this many riders gets 64 candidates a rider instead of
    /// `candidates`, and a second pass without a budget (0: never): where supply meets demand
    /// the gap to the exact optimum falls from about 13 % to under 0.5 % (2.3 % in 5,000-rider
    /// hotspots), at 5–15× the tick's time (docs/BENCHMARKS.md).
    pub dense_up_to: usize,
    /// No rider is paired with a driver farther than this (units of the coordinates); unset means
    /// no limit.
    pub max_pickup: Option<f64>,
    /// Side of the cells of the matcher's geo index of free drivers (units of the coordinates);
    /// about one to a few drivers a cell answers nearest-driver queries fastest.
    pub index_cell: f64,
    /// Geographic shards: the plane is cut into square cells of `shard_cell` units, each cell
    /// belongs to one of `shards` shards, and riders are paired with drivers of their shard only.
    pub shards: u32,
    pub shard_cell: f64,
    /// In the distributed mode, how long a matching instance's lease on a shard lasts unrenewed;
    /// a dead instance's shards are taken over after about this long.
    pub lease_ttl_ms: u64,
}

impl Default for MatchingConfig {
    fn default() -> Self {
        Self {
            tick_ms: 1_000,
            hold_ms: 5_000,
            strategy: Strategy::Optimal,
            candidates: 8,
            pricing_rounds: 0,
            dense_up_to: domain::matching::Limits::default().dense_up_to,
            max_pickup: None,
            index_cell: 10.0,
            shards: 1,
            shard_cell: 50.0,
            lease_ttl_ms: 2_000,
        }
    }
}

impl MatchingConfig {
    /// How far the matcher's search for a rider's driver goes.
    pub fn limits(&self) -> domain::matching::Limits {
        domain::matching::Limits {
            candidates: self.candidates,
            max_pickup: self.max_pickup.unwrap_or(f64::INFINITY),
            pricing_rounds: self.pricing_rounds,
            dense_up_to: self.dense_up_to,
        }
    }
}

impl Section for MatchingConfig {
    const NAME: &'static str = "matching";

    fn validate(&self) -> Result<(), String> {
        let m = self;
        if m.tick_ms < 10 {
            return Err(format!(
                "matching.tick_ms = {} is below the 10 ms minimum",
                m.tick_ms
            ));
        }
        if m.hold_ms < m.tick_ms {
            return Err(format!(
                "matching.hold_ms = {} must be at least matching.tick_ms = {}: a request must live through one tick",
                m.hold_ms, m.tick_ms
            ));
        }
        if m.shards == 0 || m.shards > 1024 {
            return Err(format!("matching.shards = {} must be 1 to 1024", m.shards));
        }
        if !(m.shard_cell.is_finite() && m.shard_cell > 0.0) {
            return Err(format!(
                "matching.shard_cell = {} must be a positive number",
                m.shard_cell
            ));
        }
        if m.candidates == 0 || m.candidates > 64 {
            return Err(format!(
                "matching.candidates = {} must be 1 to 64",
                m.candidates
            ));
        }
        if m.pricing_rounds > 100 {
            return Err(format!(
                "matching.pricing_rounds = {} must be at most 100",
                m.pricing_rounds
            ));
        }
        if m.max_pickup.is_some_and(|d| !(d.is_finite() && d > 0.0)) {
            return Err(format!(
                "matching.max_pickup = {:?} must be a positive number (or unset for no limit)",
                m.max_pickup
            ));
        }
        if !(m.index_cell.is_finite() && m.index_cell >= domain::matching::index::MIN_CELL_SIZE) {
            return Err(format!(
                "matching.index_cell = {} must be a number of at least {}",
                m.index_cell,
                domain::matching::index::MIN_CELL_SIZE
            ));
        }
        if m.lease_ttl_ms < 400 {
            return Err(format!(
                "matching.lease_ttl_ms = {} is below the 400 ms minimum",
                m.lease_ttl_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use platform::config::{Config, SectionSpec};

    use super::*;

    #[test]
    fn the_section_loads_from_the_config_tree_and_names_bad_values() {
        let specs = [SectionSpec::of::<MatchingConfig>()];
        let config = Config::load(
            None,
            serde_json::json!({"matching": {"tick_ms": 250, "strategy": "nearest"}}),
            &specs,
        )
        .expect("loads");
        let matching: MatchingConfig = config.section().expect("section");
        assert_eq!((matching.tick_ms, matching.hold_ms), (250, 5_000));
        assert_eq!(matching.strategy, Strategy::Nearest);
        for (bad, named) in [
            (serde_json::json!({"tick_ms": 1}), "matching.tick_ms"),
            (serde_json::json!({"strategy": "random"}), "random"),
            (
                serde_json::json!({"hold_ms": 50, "tick_ms": 100}),
                "matching.hold_ms",
            ),
        ] {
            let err = Config::load(None, serde_json::json!({ "matching": bad }), &specs)
                .expect_err("refused");
            assert!(err.to_string().contains(named), "{err}");
        }
    }
}
