//! Geometry. Planar `Point`s for the course protocol (seed 002 speaks of coordinates `(x, y)` in
//! abstract units) and for everything the matcher indexes; `LatLng` for the product API, brought
//! onto the plane by a city's `Projection` (metres east and north of the city's centre). A `Point`
//! can only be built from finite coordinates within `MAX_ABS_COORDINATE`, so every distance
//! computed from points is finite.

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
        // `hypot`, not sqrt(dx² + dy²): clients check the course fare (2 × this) to the last bit,
        // and `hypot` is what their languages compute.
        (self.x - other.x).hypot(self.y - other.y)
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

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A position on Earth: latitude −90..=90, longitude −180..=180, degrees.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawLatLng")]
pub struct LatLng {
    lat: f64,
    lng: f64,
}

#[derive(Deserialize)]
struct RawLatLng {
    lat: f64,
    lng: f64,
}

impl TryFrom<RawLatLng> for LatLng {
    type Error = LatLngError;

    fn try_from(raw: RawLatLng) -> Result<Self, Self::Error> {
        LatLng::new(raw.lat, raw.lng)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum LatLngError {
    #[error("latitude {0} is outside -90..=90")]
    Latitude(f64),
    #[error("longitude {0} is outside -180..=180")]
    Longitude(f64),
}

impl LatLngError {
    /// The coordinate at fault: `lat` or `lng`.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Latitude(_) => "lat",
            Self::Longitude(_) => "lng",
        }
    }
}

impl LatLng {
    pub fn new(lat: f64, lng: f64) -> Result<Self, LatLngError> {
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err(LatLngError::Latitude(lat));
        }
        if !(lng.is_finite() && (-180.0..=180.0).contains(&lng)) {
            return Err(LatLngError::Longitude(lng));
        }
        Ok(Self { lat, lng })
    }

    pub const fn lat(&self) -> f64 {
        self.lat
    }

    pub const fn lng(&self) -> f64 {
        self.lng
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance_m(&self, other: &LatLng) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lng - self.lng).to_radians();
        let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
    }
}

/// A city's plane: metres east (`x`) and north (`y`) of its centre, by the equirectangular
/// projection at the centre's latitude. Within a city (tens of kilometres) planar distances stay
/// within a fraction of a percent of great-circle ones, which is what matching needs; fares and
/// ETAs use [`LatLng::distance_m`] or a router.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Projection {
    centre: LatLng,
    metres_per_degree_lng: f64,
}

const METRES_PER_DEGREE: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

impl Projection {
    pub fn centred_at(centre: LatLng) -> Self {
        Self {
            centre,
            metres_per_degree_lng: METRES_PER_DEGREE * centre.lat.to_radians().cos(),
        }
    }

    /// `at` on the city's plane; an error if it lies more than `MAX_ABS_COORDINATE` metres away
    /// (a thousand kilometres: not in this city).
    pub fn to_plane(&self, at: LatLng) -> Result<Point, CoordinateError> {
        let mut dlng = at.lng - self.centre.lng;
        if dlng > 180.0 {
            dlng -= 360.0;
        } else if dlng < -180.0 {
            dlng += 360.0;
        }
        Point::new(
            dlng * self.metres_per_degree_lng,
            (at.lat - self.centre.lat) * METRES_PER_DEGREE,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lat_lng_is_validated_and_projected_distances_track_great_circle_ones() {
        assert_eq!(LatLng::new(91.0, 0.0), Err(LatLngError::Latitude(91.0)));
        assert_eq!(
            LatLng::new(0.0, -180.5),
            Err(LatLngError::Longitude(-180.5))
        );
        assert!(LatLng::new(f64::NAN, 0.0).is_err());
        assert!(serde_json::from_str::<LatLng>(r#"{"lat":23.8,"lng":90.4}"#).is_ok());
        assert!(serde_json::from_str::<LatLng>(r#"{"lat":123.8,"lng":90.4}"#).is_err());

        // Dhaka: a city 30 km across.
        let centre = LatLng::new(23.8103, 90.4125).expect("valid");
        let city = Projection::centred_at(centre);
        assert_eq!(city.to_plane(centre), Point::new(0.0, 0.0));
        let (a, b) = (
            LatLng::new(23.70, 90.30).expect("valid"),
            LatLng::new(23.92, 90.52).expect("valid"),
        );
        let great_circle = a.distance_m(&b);
        assert!(
            (30_000.0..35_000.0).contains(&great_circle),
            "{great_circle}"
        );
        let planar = city
            .to_plane(a)
            .expect("in the city")
            .distance_to(&city.to_plane(b).expect("in the city"));
        let error = (planar - great_circle).abs() / great_circle;
        assert!(error < 0.005, "{planar} vs {great_circle}: {error}");
        // Across the antimeridian the short way round is taken.
        let fiji = Projection::centred_at(LatLng::new(-17.0, 179.9).expect("valid"));
        let east = fiji
            .to_plane(LatLng::new(-17.0, -179.9).expect("valid"))
            .expect("near");
        assert!((east.x() - 21_270.0).abs() < 100.0, "{east:?}");
    }

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
