//! Planar geometry for the course protocol (seed 002 speaks of coordinates `(x, y)` in abstract
//! units). A `Point` can only be built from finite coordinates within `MAX_ABS_COORDINATE`, so every
//! distance computed from points is finite.

use serde::{Deserialize, Serialize};

/// Coordinates beyond this magnitude are rejected as absurd: a city a million units wide is far
/// beyond any map the course bots draw, and it keeps every squared distance well inside `f64`.
pub const MAX_ABS_COORDINATE: f64 = 1_000_000.0;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawPoint")]
pub struct Point {
    x: f64,
    y: f64,
}

#[derive(Deserialize)]
struct RawPoint {
    x: f64,
    y: f64,
}

impl TryFrom<RawPoint> for Point {
    type Error = CoordinateError;

    fn try_from(raw: RawPoint) -> Result<Self, Self::Error> {
        Point::new(raw.x, raw.y)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum CoordinateError {
    #[error("coordinate {axis} is not a finite number")]
    NotFinite { axis: char },
    #[error("coordinate {axis} = {value} is outside -{max}..={max}", max = MAX_ABS_COORDINATE)]
    OutOfRange { axis: char, value: f64 },
}

impl Point {
    pub fn new(x: f64, y: f64) -> Result<Self, CoordinateError> {
        check_axis('x', x)?;
        check_axis('y', y)?;
        Ok(Self { x, y })
    }

    pub const fn x(&self) -> f64 {
        self.x
    }

    pub const fn y(&self) -> f64 {
        self.y
    }

    /// Euclidean ("linear", in the seed's words) distance.
    pub fn distance_to(&self, other: &Point) -> f64 {
        let (dx, dy) = (self.x - other.x, self.y - other.y);
        // Coordinates are bounded, so the squares cannot overflow: no need for `hypot`'s care.
        (dx * dx + dy * dy).sqrt()
    }
}

fn check_axis(axis: char, value: f64) -> Result<(), CoordinateError> {
    if !value.is_finite() {
        return Err(CoordinateError::NotFinite { axis });
    }
    if value.abs() > MAX_ABS_COORDINATE {
        return Err(CoordinateError::OutOfRange { axis, value });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_finite_and_absurd_coordinates() {
        assert_eq!(
            Point::new(f64::NAN, 0.0),
            Err(CoordinateError::NotFinite { axis: 'x' })
        );
        assert_eq!(
            Point::new(0.0, f64::INFINITY),
            Err(CoordinateError::NotFinite { axis: 'y' })
        );
        assert!(matches!(
            Point::new(0.0, 2e6),
            Err(CoordinateError::OutOfRange { axis: 'y', .. })
        ));
        assert!(Point::new(-MAX_ABS_COORDINATE, MAX_ABS_COORDINATE).is_ok());
    }

    #[test]
    fn distance_is_euclidean() {
        let a = Point::new(0.0, 0.0).expect("valid");
        let b = Point::new(3.0, 4.0).expect("valid");
        assert_eq!(a.distance_to(&b), 5.0);
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<Point>(r#"{"x":1,"y":2}"#).is_ok());
        assert!(serde_json::from_str::<Point>(r#"{"x":1,"y":1e300}"#).is_err());
    }
}
