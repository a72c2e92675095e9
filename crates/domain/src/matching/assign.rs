//! `assign`: given the waiting riders (in arrival order) and the free drivers of one tick, choose
//! pairs. Each rider and each driver appears in at most one pair, and as many pairs as possible are
//! made (`min(riders, drivers)`).
//!
//! - `Nearest` is the seed's rule and what most peers do: riders in arrival order each take the
//!   closest driver still free. Cheap, but early riders steal drivers later riders needed.
//! - `Optimal` minimises the total pickup distance over the whole batch (exact assignment).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::hungarian;
use crate::geo::Point;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Nearest,
    #[default]
    Optimal,
}

impl FromStr for Strategy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nearest" => Ok(Self::Nearest),
            "optimal" => Ok(Self::Optimal),
            other => Err(format!(
                "unknown matching strategy {other:?}: expected \"nearest\" or \"optimal\""
            )),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Nearest => "nearest",
            Self::Optimal => "optimal",
        })
    }
}

/// Rider `rider` (index into the riders slice) is picked up by driver `driver`, `distance` away.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pair {
    pub rider: usize,
    pub driver: usize,
    pub distance: f64,
}

pub fn assign(riders: &[Point], drivers: &[Point], strategy: Strategy) -> Vec<Pair> {
    match strategy {
        Strategy::Nearest => nearest(riders, drivers),
        Strategy::Optimal => optimal(riders, drivers),
    }
}

pub fn total_distance(pairs: &[Pair]) -> f64 {
    pairs.iter().map(|p| p.distance).sum()
}

fn nearest(riders: &[Point], drivers: &[Point]) -> Vec<Pair> {
    let mut free = vec![true; drivers.len()];
    let mut pairs = Vec::with_capacity(riders.len().min(drivers.len()));
    for (rider, position) in riders.iter().enumerate() {
        let closest = drivers
            .iter()
            .enumerate()
            .filter(|(driver, _)| free[*driver])
            .map(|(driver, at)| (driver, position.distance_to(at)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((driver, distance)) = closest else {
            break;
        };
        free[driver] = false;
        pairs.push(Pair {
            rider,
            driver,
            distance,
        });
    }
    pairs
}

fn optimal(riders: &[Point], drivers: &[Point]) -> Vec<Pair> {
    if riders.is_empty() || drivers.is_empty() {
        return Vec::new();
    }
    let distance = |r: usize, d: usize| riders[r].distance_to(&drivers[d]);
    let mut pairs: Vec<Pair> = if riders.len() <= drivers.len() {
        hungarian::solve(riders.len(), drivers.len(), distance)
            .into_iter()
            .enumerate()
            .map(|(rider, driver)| Pair {
                rider,
                driver,
                distance: distance(rider, driver),
            })
            .collect()
    } else {
        hungarian::solve(drivers.len(), riders.len(), |d, r| distance(r, d))
            .into_iter()
            .enumerate()
            .map(|(driver, rider)| Pair {
                rider,
                driver,
                distance: distance(rider, driver),
            })
            .collect()
    };
    pairs.sort_by_key(|p| p.rider);
    pairs
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{Strategy as Generator, prop, prop_assert, prop_assert_eq, proptest};

    use super::{Pair, Point, Strategy, assign, total_distance};

    fn pt(x: f64, y: f64) -> Point {
        Point::new(x, y).expect("valid point")
    }

    /// Minimum total over every maximum-cardinality matching, by exhaustive search.
    fn brute_force(riders: &[Point], drivers: &[Point]) -> f64 {
        fn go(
            r: usize,
            riders: &[Point],
            drivers: &[Point],
            used: &mut Vec<bool>,
            left: usize,
        ) -> f64 {
            if left == 0 {
                return 0.0;
            }
            if riders.len() - r < left {
                return f64::INFINITY;
            }
            // Either rider r sits out (possible only when riders outnumber the pairs still to make)…
            let mut best = go(r + 1, riders, drivers, used, left);
            // …or takes some free driver.
            for d in 0..drivers.len() {
                if !used[d] {
                    used[d] = true;
                    let rest = go(r + 1, riders, drivers, used, left - 1);
                    best = best.min(riders[r].distance_to(&drivers[d]) + rest);
                    used[d] = false;
                }
            }
            best
        }
        let pairs = riders.len().min(drivers.len());
        go(0, riders, drivers, &mut vec![false; drivers.len()], pairs)
    }

    fn points(max: usize) -> impl Generator<Value = Vec<Point>> {
        prop::collection::vec((-100.0..100.0_f64, -100.0..100.0_f64), 0..=max)
            .prop_map(|v| v.into_iter().map(|(x, y)| pt(x, y)).collect())
    }

    fn assert_valid(pairs: &[Pair], riders: usize, drivers: usize) {
        let mut seen_riders = vec![false; riders];
        let mut seen_drivers = vec![false; drivers];
        for p in pairs {
            assert!(!seen_riders[p.rider], "rider {} matched twice", p.rider);
            assert!(!seen_drivers[p.driver], "driver {} used twice", p.driver);
            seen_riders[p.rider] = true;
            seen_drivers[p.driver] = true;
        }
        assert_eq!(
            pairs.len(),
            riders.min(drivers),
            "as many pairs as possible"
        );
    }

    #[test]
    fn nearest_is_greedy_in_arrival_order_and_optimal_is_not() {
        // Rider 0 (at 6) arrived first and grabs the driver at 5, leaving rider 1 (at 0) the
        // driver at 12.
        let riders = [pt(6.0, 0.0), pt(0.0, 0.0)];
        let drivers = [pt(5.0, 0.0), pt(12.0, 0.0)];
        let greedy = assign(&riders, &drivers, Strategy::Nearest);
        let best = assign(&riders, &drivers, Strategy::Optimal);
        // Greedy: rider0→driver0 (1), rider1→driver1 (12): 13. Optimal: 6 + 5 = 11.
        assert_eq!(total_distance(&greedy), 13.0);
        assert_eq!(total_distance(&best), 11.0);
        assert_eq!(best[0].driver, 1);
    }

    #[test]
    fn empty_sides_make_no_pairs() {
        assert!(assign(&[], &[pt(0.0, 0.0)], Strategy::Optimal).is_empty());
        assert!(assign(&[pt(0.0, 0.0)], &[], Strategy::Nearest).is_empty());
    }

    proptest! {
        #[test]
        fn no_rider_or_driver_twice(riders in points(30), drivers in points(30)) {
            for strategy in [Strategy::Nearest, Strategy::Optimal] {
                let pairs = assign(&riders, &drivers, strategy);
                assert_valid(&pairs, riders.len(), drivers.len());
                for p in &pairs {
                    prop_assert_eq!(p.distance, riders[p.rider].distance_to(&drivers[p.driver]));
                }
            }
        }

        #[test]
        fn optimal_never_worse_than_nearest(riders in points(40), drivers in points(40)) {
            let greedy = total_distance(&assign(&riders, &drivers, Strategy::Nearest));
            let best = total_distance(&assign(&riders, &drivers, Strategy::Optimal));
            prop_assert!(best <= greedy + 1e-9 * greedy.max(1.0), "optimal {best} > nearest {greedy}");
        }

        #[test]
        fn optimal_equals_brute_force_on_small_cases(riders in points(6), drivers in points(6)) {
            let best = total_distance(&assign(&riders, &drivers, Strategy::Optimal));
            let exact = brute_force(&riders, &drivers);
            prop_assert!((best - exact).abs() <= 1e-9 * exact.max(1.0), "optimal {best} vs exact {exact}");
        }
    }
}
