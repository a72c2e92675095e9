//! Field-by-field conversions between the domain's shared types and `common::v1`, and the checks
//! a received message goes through: a missing, unspecified or out-of-range field is
//! `invalid_input` naming it (on the server: the caller sent it; on a client: see [`malformed`]).

use std::str::FromStr;

use domain::{LatLng, Package, RouteEstimate, Timestamp};
use platform::ApiError;

use crate::common::v1 as pb;

impl From<Package> for pb::Package {
    fn from(p: Package) -> Self {
        match p {
            Package::Bike => Self::Bike,
            Package::Auto => Self::Auto,
            Package::Car => Self::Car,
            Package::Premium => Self::Premium,
        }
    }
}

/// The package of an enum field (`UNSPECIFIED` and unknown numbers are refused).
pub fn package(value: i32, field: &str) -> Result<Package, ApiError> {
    match pb::Package::try_from(value) {
        Ok(pb::Package::Bike) => Ok(Package::Bike),
        Ok(pb::Package::Auto) => Ok(Package::Auto),
        Ok(pb::Package::Car) => Ok(Package::Car),
        Ok(pb::Package::Premium) => Ok(Package::Premium),
        Ok(pb::Package::Unspecified) | Err(_) => Err(ApiError::invalid_field(
            field,
            format!("{field} must be one of bike, auto, car, premium"),
        )),
    }
}

impl From<LatLng> for pb::LatLng {
    fn from(p: LatLng) -> Self {
        Self {
            lat: p.lat(),
            lng: p.lng(),
        }
    }
}

/// A required position, checked.
pub fn lat_lng(value: Option<pb::LatLng>, field: &str) -> Result<LatLng, ApiError> {
    let value = required(value, field)?;
    LatLng::new(value.lat, value.lng).map_err(|e| ApiError::invalid_field(field, e.to_string()))
}

impl From<RouteEstimate> for pb::RouteEstimate {
    fn from(r: RouteEstimate) -> Self {
        Self {
            distance_m: r.distance_m,
            duration_s: r.duration_s,
        }
    }
}

/// A required route estimate.
pub fn route(value: Option<pb::RouteEstimate>, field: &str) -> Result<RouteEstimate, ApiError> {
    let value = required(value, field)?;
    Ok(RouteEstimate {
        distance_m: value.distance_m,
        duration_s: value.duration_s,
    })
}

/// A required message field.
pub fn required<T>(value: Option<T>, field: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::invalid_field(field, format!("{field} is required")))
}

/// A typed id (a UUID string).
pub fn id<T: FromStr>(value: &str, field: &str) -> Result<T, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::invalid_field(field, format!("{field} {value:?} is not a UUID")))
}

/// Milliseconds since the epoch.
pub fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// What a client makes of an answer it cannot read (a checking error from the functions above):
/// the service broke the contract, so it is an internal error naming the service and the field.
pub fn malformed(service: &str) -> impl Fn(ApiError) -> ApiError + '_ {
    move |e| {
        ApiError::internal(format!(
            "the {service} service answered a malformed {}: {}",
            e.field.as_deref().unwrap_or("message"),
            e.message
        ))
    }
}

#[cfg(test)]
mod tests {
    use platform::ErrorCode;

    use super::*;

    #[test]
    fn shared_types_go_there_and_back() {
        for p in Package::ALL {
            assert_eq!(package(pb::Package::from(p) as i32, "package"), Ok(p));
        }
        let e = package(0, "package").expect_err("unspecified");
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidInput, Some("package"))
        );
        assert!(package(99, "package").is_err());

        let p = LatLng::new(23.780_612_345, -90.407_4).expect("valid");
        assert_eq!(lat_lng(Some(p.into()), "pickup"), Ok(p));
        let e = lat_lng(
            Some(pb::LatLng {
                lat: 91.0,
                lng: 0.0,
            }),
            "pickup",
        )
        .expect_err("range");
        assert_eq!(e.field.as_deref(), Some("pickup"));
        assert!(lat_lng(None, "pickup").is_err());

        let r = RouteEstimate {
            distance_m: 4_321,
            duration_s: 777,
        };
        assert_eq!(route(Some(r.into()), "route"), Ok(r));

        let e = id::<domain::TripId>("nope", "id").expect_err("not a uuid");
        assert_eq!(e.field.as_deref(), Some("id"));
        let e = malformed("trip")(e);
        assert_eq!(e.code, ErrorCode::Internal);
        assert!(e.message.contains("trip service"), "{}", e.message);
    }
}
