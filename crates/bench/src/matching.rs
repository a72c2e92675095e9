//! `rickshaw bench matching`: per synthetic city, size and supply ratio, the time of one tick
//! (the median of several), the peak memory, and the quality of every strategy — riders served
//! (against `nearest` and the exact optimum), total pickup, and the pickup gap to the exact
//! optimum where the exact solver runs.
//!
//! A tick here is what the matcher does under its lock: build the candidate graph from the geo
//! index of free drivers and solve it. The index itself is kept up to date by the position
//! stream between ticks (`bench ingest` measures that), so building it is not part of a tick.

use std::time::{Duration, Instant};

use domain::Point;
use domain::matching::assign::{Effort, optimal_with};
use domain::matching::{GeoIndex, Limits, Pair, Strategy, assign_indexed};
use serde::Serialize;

use crate::city::{City, CityKind};
use crate::memory;

#[derive(Clone, Debug)]
pub struct MatchingBench {
    pub cities: Vec<CityKind>,
    /// Riders per case.
    pub sizes: Vec<usize>,
    /// Drivers per rider (1.0: supply = demand).
    pub supply: Vec<f64>,
    /// Ticks timed per strategy (the median is reported).
    pub ticks: usize,
    /// Riders per square kilometre: a case's city is as large as its riders need (1k riders:
    /// about 3.2 km square; 100k: about 32 km).
    pub density: f64,
    pub limits: Limits,
    /// The exact solver runs where riders and drivers are both at most this many.
    pub exact_up_to: usize,
    /// How hard `optimal` works (`Effort::EXACT` to measure what the default costs).
    pub effort: Effort,
    pub seed: u64,
}

impl Default for MatchingBench {
    fn default() -> Self {
        Self {
            cities: vec![CityKind::Uniform, CityKind::Hotspots],
            sizes: vec![1_000, 10_000, 100_000],
            supply: vec![1.0, 1.5],
            ticks: 5,
            density: 100.0,
            limits: Limits {
                candidates: 8,
                max_pickup: 3_000.0,
                pricing_rounds: 0,
                ..Limits::default()
            },
            exact_up_to: 5_000,
            effort: Effort::DEFAULT,
            seed: 2026,
        }
    }
}

/// One strategy on one case: the line `--format json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub case: String,
    pub city: String,
    pub riders: usize,
    pub drivers: usize,
    pub strategy: String,
    /// Median tick, milliseconds.
    pub tick_ms: f64,
    pub ticks: usize,
    pub peak_rss_bytes: Option<u64>,
    pub matched: usize,
    /// Sum of the pickup distances of the pairs made, metres.
    pub total_pickup: f64,
    pub mean_pickup: f64,
    /// Riders served beyond `nearest`'s (negative: fewer).
    pub served_vs_nearest: i64,
    /// Riders served beyond the exact optimum's (never positive; where the exact solver ran).
    pub served_vs_exact: Option<i64>,
    /// Total pickup above the exact optimum's, percent — where the exact solver ran and this
    /// strategy served as many riders (`optimal` and `exact` serve the most riders first, then
    /// minimise pickup, so pickups compare only at equal counts).
    pub gap_to_exact_pct: Option<f64>,
    /// Total pickup below `nearest`'s, percent (positive: shorter pickups than `nearest`).
    pub pickup_saved_vs_nearest_pct: Option<f64>,
}

pub fn case_name(city: CityKind, riders: usize, drivers: usize) -> String {
    format!("{city}-{}x{}", short(riders), short(drivers))
}

fn short(n: usize) -> String {
    if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else if n >= 1_000 {
        format!("{:.1}k", n as f64 / 1_000.0)
    } else {
        n.to_string()
    }
}

impl MatchingBench {
    /// The side of the square city holding `riders` at the bench's density, metres.
    pub fn side_for(&self, riders: usize) -> f64 {
        (riders as f64 / self.density).sqrt() * 1_000.0
    }

    /// Every case, in order: (city, riders, drivers).
    pub fn cases(&self) -> Vec<(CityKind, usize, usize)> {
        let mut cases = Vec::new();
        for &size in &self.sizes {
            for &ratio in &self.supply {
                for &city in &self.cities {
                    cases.push((city, size, (size as f64 * ratio).round() as usize));
                }
            }
        }
        cases
    }

    /// Runs every case; `progress` hears what is about to run, `report` gets each case's results
    /// (every strategy) once the case is done.
    pub fn run(&self, mut progress: impl FnMut(&str), mut report: impl FnMut(&[CaseResult])) {
        let cases = self.cases();
        for (n, &(kind, riders, drivers)) in cases.iter().enumerate() {
            let case = case_name(kind, riders, drivers);
            progress(&format!("[{}/{}] {case}", n + 1, cases.len()));
            let results = self.run_case(kind, riders, drivers, &mut progress);
            report(&results);
        }
    }

    pub fn run_case(
        &self,
        kind: CityKind,
        riders: usize,
        drivers: usize,
        progress: &mut impl FnMut(&str),
    ) -> Vec<CaseResult> {
        let city = City {
            kind,
            side: self.side_for(riders),
        };
        let seed = self.seed ^ (riders as u64).rotate_left(20) ^ drivers as u64;
        let (rider_points, driver_points) = city.generate(riders, drivers, seed);
        let index = build_index(&driver_points, city.side);
        let case = case_name(kind, riders, drivers);

        let mut strategies = vec![Strategy::Nearest, Strategy::Optimal];
        if riders <= self.exact_up_to && drivers <= self.exact_up_to {
            strategies.push(Strategy::Exact);
        }
        let mut results: Vec<CaseResult> = Vec::new();
        for strategy in strategies {
            progress(&format!("    {case} {strategy}"));
            memory::reset_peak();
            let (pairs, tick, ticks) = self.time_ticks(&rider_points, &index, strategy);
            let peak = memory::peak_rss_bytes();
            let total: f64 = pairs.iter().map(|p| p.distance).sum();
            results.push(CaseResult {
                case: case.clone(),
                city: kind.to_string(),
                riders,
                drivers,
                strategy: strategy.to_string(),
                tick_ms: tick.as_secs_f64() * 1e3,
                ticks,
                peak_rss_bytes: peak,
                matched: pairs.len(),
                total_pickup: total,
                mean_pickup: if pairs.is_empty() {
                    0.0
                } else {
                    total / pairs.len() as f64
                },
                served_vs_nearest: 0,
                served_vs_exact: None,
                gap_to_exact_pct: None,
                pickup_saved_vs_nearest_pct: None,
            });
        }
        let outcome = |name: &str| {
            results
                .iter()
                .find(|r| r.strategy == name)
                .map(|r| (r.matched as i64, r.total_pickup))
        };
        let (exact, nearest) = (outcome("exact"), outcome("nearest"));
        for r in &mut results {
            let served = r.matched as i64;
            if let Some((n_served, n_pickup)) = nearest {
                r.served_vs_nearest = served - n_served;
                r.pickup_saved_vs_nearest_pct =
                    (r.strategy != "nearest").then(|| percent(n_pickup - r.total_pickup, n_pickup));
            }
            if let Some((e_served, e_pickup)) = exact {
                r.served_vs_exact = Some(served - e_served);
                r.gap_to_exact_pct =
                    (served == e_served).then(|| percent(r.total_pickup - e_pickup, e_pickup));
            }
        }
        results
    }

    /// Runs `strategy` `ticks` times (once if a tick takes over 5 s) and returns the pairs and
    /// the median time.
    fn time_ticks(
        &self,
        riders: &[Point],
        index: &GeoIndex<u32>,
        strategy: Strategy,
    ) -> (Vec<Pair>, Duration, usize) {
        let mut times = Vec::with_capacity(self.ticks);
        let mut pairs = Vec::new();
        for _ in 0..self.ticks.max(1) {
            let started = Instant::now();
            pairs = match strategy {
                Strategy::Optimal => optimal_with(riders, index, self.limits, self.effort),
                _ => assign_indexed(riders, index, strategy, self.limits),
            };
            let took = started.elapsed();
            times.push(took);
            if took > Duration::from_secs(5) {
                break;
            }
        }
        times.sort();
        let median = times[times.len() / 2];
        (pairs, median, times.len())
    }
}

/// The index the matcher would hold for these drivers: about four drivers a cell on average
/// (measured fastest for k-nearest queries of 8, among 1, 2, 4 and 8).
pub fn build_index(drivers: &[Point], side: f64) -> GeoIndex<u32> {
    GeoIndex::from_points(
        drivers,
        GeoIndex::<u32>::cell_size_for(side * side, drivers.len(), 4.0),
    )
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole == 0.0 {
        0.0
    } else {
        100.0 * part / whole
    }
}

/// The results as an aligned text table (one line per strategy per case).
pub fn table_header() -> String {
    format!(
        "{:<22} {:>8} {:>8} {:<8} {:>10} {:>9} {:>8} {:>8} {:>12} {:>9} {:>10} {:>10}",
        "case",
        "riders",
        "drivers",
        "strategy",
        "tick_ms",
        "peak_MiB",
        "matched",
        "vs_near",
        "total_km",
        "mean_m",
        "vs_nearest",
        "gap_exact"
    )
}

pub fn table_row(r: &CaseResult) -> String {
    let pct = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:+.2}%"));
    format!(
        "{:<22} {:>8} {:>8} {:<8} {:>10.1} {:>9} {:>8} {:>+8} {:>12.1} {:>9.1} {:>10} {:>10}",
        r.case,
        r.riders,
        r.drivers,
        r.strategy,
        r.tick_ms,
        r.peak_rss_bytes.map_or_else(
            || "-".to_owned(),
            |b| format!("{:.0}", b as f64 / 1048576.0)
        ),
        r.matched,
        r.served_vs_nearest,
        r.total_pickup / 1_000.0,
        r.mean_pickup,
        pct(r.pickup_saved_vs_nearest_pct),
        pct(r.gap_to_exact_pct),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_case_reports_every_strategy_and_optimal_serves_the_most() {
        let mut bench = MatchingBench {
            ticks: 1,
            ..MatchingBench::default()
        };
        let by = |results: &[CaseResult], s: &str| {
            results
                .iter()
                .find(|r| r.strategy == s)
                .cloned()
                .unwrap_or_else(|| panic!("{s} ran"))
        };
        let results = bench.run_case(CityKind::Hotspots, 300, 300, &mut |_| {});
        let (nearest, optimal, exact) = (
            by(&results, "nearest"),
            by(&results, "optimal"),
            by(&results, "exact"),
        );
        assert_eq!(exact.gap_to_exact_pct, Some(0.0));
        assert_eq!(nearest.served_vs_nearest, 0);
        assert!(optimal.served_vs_nearest >= 0 && exact.served_vs_nearest >= 0);
        assert_eq!(optimal.served_vs_exact, Some(0), "optimal serves the most");
        assert!(
            optimal.total_pickup < nearest.total_pickup || optimal.served_vs_nearest > 0,
            "batching beats greedy: {} vs {} m",
            optimal.total_pickup,
            nearest.total_pickup
        );
        // Without a radius the first pass is the whole problem, and pricing to convergence
        // reaches the exact optimum.
        bench.limits.max_pickup = f64::INFINITY;
        bench.limits.pricing_rounds = 100;
        let priced = bench.run_case(CityKind::Hotspots, 300, 300, &mut |_| {});
        let gap = by(&priced, "optimal").gap_to_exact_pct.expect("exact ran");
        assert!(gap.abs() < 1e-6, "pricing to convergence is exact: {gap} %");
        assert!(
            results
                .iter()
                .all(|r| r.matched <= 300 && r.case == "hotspots-300x300")
        );
        let line = serde_json::to_value(optimal).expect("serialises");
        for key in [
            "case",
            "riders",
            "drivers",
            "strategy",
            "tick_ms",
            "peak_rss_bytes",
            "total_pickup",
            "served_vs_nearest",
            "served_vs_exact",
            "gap_to_exact_pct",
        ] {
            assert!(line.get(key).is_some(), "json lines carry {key}");
        }
    }
}
