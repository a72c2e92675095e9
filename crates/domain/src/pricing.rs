//! What the product prices (issue 4): ride packages, and the route estimate used when no router
//! is configured. The fare of a package over a route is `crate::fare::product_fare`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::geo::LatLng;

/// What a rider books: the kind of vehicle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Package {
    Bike,
    Auto,
    Car,
    Premium,
}

impl Package {
    pub const ALL: [Package; 4] = [Self::Bike, Self::Auto, Self::Car, Self::Premium];

    pub fn name(self) -> &'static str {
        match self {
            Self::Bike => "bike",
            Self::Auto => "auto",
            Self::Car => "car",
            Self::Premium => "premium",
        }
    }
}

impl fmt::Display for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown ride package {0:?}; expected one of bike, auto, car, premium")]
pub struct UnknownPackage(pub String);

impl FromStr for Package {
    type Err = UnknownPackage;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownPackage(s.to_owned()))
    }
}

/// A route's length and expected duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEstimate {
    pub distance_m: u32,
    pub duration_s: u32,
}

/// The estimate without a router: the great-circle distance times a detour factor, driven at an
/// average city speed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StraightLineRouting {
    pub detour_factor: f64,
    pub speed_kmh: f64,
}

impl Default for StraightLineRouting {
    fn default() -> Self {
        // Road distance in dense cities is typically 1.3–1.4× the straight line; Dhaka's mean
        // traffic speed is near 20 km/h.
        Self {
            detour_factor: 1.35,
            speed_kmh: 20.0,
        }
    }
}

impl StraightLineRouting {
    pub fn estimate(&self, from: &LatLng, to: &LatLng) -> RouteEstimate {
        let distance = from.distance_m(to) * self.detour_factor.max(1.0);
        let duration = distance / (self.speed_kmh.max(1.0) / 3.6);
        RouteEstimate {
            distance_m: clamp_u32(distance),
            duration_s: clamp_u32(duration),
        }
    }
}

fn clamp_u32(x: f64) -> u32 {
    // Finite and non-negative by construction; `as` saturates.
    x.round() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).expect("valid")
    }

    #[test]
    fn packages_round_trip_through_their_names() {
        for p in Package::ALL {
            assert_eq!(p.name().parse::<Package>(), Ok(p));
            assert_eq!(
                serde_json::to_string(&p).expect("json"),
                format!("\"{}\"", p.name())
            );
        }
        let err = "rickshaw".parse::<Package>().expect_err("unknown");
        assert!(err.to_string().contains("bike, auto, car, premium"));
    }

    #[test]
    fn the_straight_line_estimate_applies_the_detour_and_the_speed() {
        let routing = StraightLineRouting {
            detour_factor: 1.5,
            speed_kmh: 36.0,
        };
        let (a, b) = (at(23.78, 90.40), at(23.75, 90.39));
        let straight = a.distance_m(&b);
        let route = routing.estimate(&a, &b);
        assert!((f64::from(route.distance_m) - 1.5 * straight).abs() <= 0.5);
        // 36 km/h = 10 m/s.
        assert!((f64::from(route.duration_s) - 0.15 * straight).abs() <= 0.5);
        assert_eq!(routing.estimate(&a, &a).distance_m, 0);
    }
}
