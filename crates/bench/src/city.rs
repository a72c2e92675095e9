//! Synthetic cities for the matching benchmarks, in metres on a square of side `side`.
//!
//! - `uniform`: riders and drivers anywhere, equally likely.
//! - `hotspots`: like a real city at rush hour — most riders at a centre and a few stations
//!   (Gaussian clusters), while most drivers cruise everywhere. Demand and supply then disagree
//!   locally, which is what makes batching worth it (and the candidate graph's job hard).

use std::fmt;
use std::str::FromStr;

use domain::Point;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CityKind {
    Uniform,
    Hotspots,
}

impl FromStr for CityKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "uniform" => Ok(Self::Uniform),
            "hotspots" => Ok(Self::Hotspots),
            other => Err(format!(
                "unknown city {other:?}: expected \"uniform\" or \"hotspots\""
            )),
        }
    }
}

impl fmt::Display for CityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Uniform => "uniform",
            Self::Hotspots => "hotspots",
        })
    }
}

/// A city's shape: its kind and its side in metres.
#[derive(Clone, Copy, Debug)]
pub struct City {
    pub kind: CityKind,
    pub side: f64,
}

/// Hotspots as (x, y, sigma, weight) in fractions of the side: a centre and four stations.
const HOTSPOTS: [(f64, f64, f64, f64); 5] = [
    (0.50, 0.50, 0.06, 0.40),
    (0.20, 0.25, 0.03, 0.15),
    (0.78, 0.30, 0.03, 0.15),
    (0.30, 0.80, 0.03, 0.15),
    (0.75, 0.75, 0.03, 0.15),
];
/// Share of riders drawn from the hotspots, and of drivers.
const RIDERS_AT_HOTSPOTS: f64 = 0.7;
const DRIVERS_AT_HOTSPOTS: f64 = 0.3;

impl City {
    /// `riders` and `drivers` positions, the same for the same seed.
    pub fn generate(&self, riders: usize, drivers: usize, seed: u64) -> (Vec<Point>, Vec<Point>) {
        let mut rng = SmallRng::seed_from_u64(seed);
        let (rider_share, driver_share) = match self.kind {
            CityKind::Uniform => (0.0, 0.0),
            CityKind::Hotspots => (RIDERS_AT_HOTSPOTS, DRIVERS_AT_HOTSPOTS),
        };
        let r = (0..riders)
            .map(|_| self.point(&mut rng, rider_share))
            .collect();
        let d = (0..drivers)
            .map(|_| self.point(&mut rng, driver_share))
            .collect();
        (r, d)
    }

    /// A point: from a hotspot with probability `hotspot_share`, else uniform.
    pub fn point(&self, rng: &mut SmallRng, hotspot_share: f64) -> Point {
        let (x, y) = if rng.random_bool(hotspot_share.clamp(0.0, 1.0)) {
            let mut pick = rng.random_range(0.0..1.0);
            let &(cx, cy, sigma, _) = HOTSPOTS
                .iter()
                .find(|h| {
                    pick -= h.3;
                    pick < 0.0
                })
                .unwrap_or(&HOTSPOTS[0]);
            let (gx, gy) = gaussian_pair(rng);
            ((cx + sigma * gx) * self.side, (cy + sigma * gy) * self.side)
        } else {
            (
                rng.random_range(0.0..self.side),
                rng.random_range(0.0..self.side),
            )
        };
        self.clamped(x, y)
    }

    /// `at` moved by up to `step` metres in each axis, kept inside the city.
    pub fn nudge(&self, rng: &mut SmallRng, at: Point, step: f64) -> Point {
        self.clamped(
            at.x() + rng.random_range(-step..=step),
            at.y() + rng.random_range(-step..=step),
        )
    }

    fn clamped(&self, x: f64, y: f64) -> Point {
        Point::new(x.clamp(0.0, self.side), y.clamp(0.0, self.side))
            .expect("a city fits the coordinate bounds")
    }
}

/// Two independent standard normal draws (Box–Muller).
fn gaussian_pair(rng: &mut SmallRng) -> (f64, f64) {
    let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    let radius = (-2.0 * u1.ln()).sqrt();
    let angle = std::f64::consts::TAU * u2;
    (radius * angle.cos(), radius * angle.sin())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cities_are_reproducible_inside_their_bounds_and_hotspots_are_denser() {
        let uniform = City {
            kind: CityKind::Uniform,
            side: 10_000.0,
        };
        let hot = City {
            kind: CityKind::Hotspots,
            ..uniform
        };
        assert_eq!(uniform.generate(50, 60, 7), uniform.generate(50, 60, 7));
        let (riders, drivers) = hot.generate(4_000, 4_000, 7);
        assert_eq!((riders.len(), drivers.len()), (4_000, 4_000));
        for p in riders.iter().chain(&drivers) {
            assert!((0.0..=10_000.0).contains(&p.x()) && (0.0..=10_000.0).contains(&p.y()));
        }
        let near_centre = |ps: &[Point]| {
            ps.iter()
                .filter(|p| (p.x() - 5_000.0).hypot(p.y() - 5_000.0) < 600.0)
                .count()
        };
        let (uniform_riders, _) = uniform.generate(4_000, 0, 7);
        assert!(
            near_centre(&riders) > 5 * near_centre(&uniform_riders),
            "the centre is a hotspot: {} vs {}",
            near_centre(&riders),
            near_centre(&uniform_riders)
        );
        assert!(
            near_centre(&riders) > near_centre(&drivers),
            "demand outstrips supply there"
        );
    }
}
