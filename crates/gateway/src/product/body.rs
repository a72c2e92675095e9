//! Reading request bodies field by field, so every 422 names the field that was wrong (`pickup.lat`,
//! `package`, …) rather than a serde position.

use domain::{LatLng, Package};
use platform::ApiError;
use serde_json::Value;

pub fn object(body: &Value) -> Result<&serde_json::Map<String, Value>, ApiError> {
    body.as_object()
        .ok_or_else(|| ApiError::invalid_field("body", "the body must be a JSON object"))
}

pub fn string<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    match object(body)?.get(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::invalid_field(
            field,
            format!("{field} must be a string"),
        )),
        None => Err(ApiError::invalid_field(
            field,
            format!("{field} is required"),
        )),
    }
}

/// An optional string field: absent or `null` is `None`.
pub fn optional_string<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, ApiError> {
    match object(body)?.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid_field(
            field,
            format!("{field} must be a string"),
        )),
    }
}

pub fn package(body: &Value, field: &str) -> Result<Package, ApiError> {
    string(body, field)?
        .parse()
        .map_err(|e: domain::pricing::UnknownPackage| ApiError::invalid_field(field, e.to_string()))
}

fn number(body: &Value, field: &str, path: &str) -> Result<f64, ApiError> {
    match object(body)?.get(field) {
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| ApiError::invalid_field(path, format!("{path} is not a number"))),
        Some(_) => Err(ApiError::invalid_field(
            path,
            format!("{path} must be a number"),
        )),
        None => Err(ApiError::invalid_field(path, format!("{path} is required"))),
    }
}

/// `{"lat": …, "lng": …}` at `field` (or the body itself when `field` is empty).
pub fn lat_lng(body: &Value, field: &str) -> Result<LatLng, ApiError> {
    let (at, prefix) = if field.is_empty() {
        (body, String::new())
    } else {
        let inner = object(body)?
            .get(field)
            .ok_or_else(|| ApiError::invalid_field(field, format!("{field} is required")))?;
        if !inner.is_object() {
            return Err(ApiError::invalid_field(
                field,
                format!("{field} must be an object {{\"lat\": …, \"lng\": …}}"),
            ));
        }
        (inner, format!("{field}."))
    };
    let lat = number(at, "lat", &format!("{prefix}lat"))?;
    let lng = number(at, "lng", &format!("{prefix}lng"))?;
    LatLng::new(lat, lng)
        .map_err(|e| ApiError::invalid_field(format!("{prefix}{}", e.field()), e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn errors_name_the_field() {
        let field = |r: Result<LatLng, ApiError>| r.expect_err("invalid").field;
        assert_eq!(field(lat_lng(&json!({}), "pickup")), Some("pickup".into()));
        assert_eq!(
            field(lat_lng(&json!({"pickup": {"lat": 91, "lng": 0}}), "pickup")),
            Some("pickup.lat".into())
        );
        assert_eq!(
            field(lat_lng(
                &json!({"pickup": {"lat": 1, "lng": "x"}}),
                "pickup"
            )),
            Some("pickup.lng".into())
        );
        assert_eq!(
            field(lat_lng(&json!({"lat": 1, "lng": -181}), "")),
            Some("lng".into())
        );
        let ok = lat_lng(&json!({"pickup": {"lat": 23.7, "lng": 90.4}}), "pickup").expect("ok");
        assert_eq!((ok.lat(), ok.lng()), (23.7, 90.4));
        let err = package(&json!({"package": "rickshaw"}), "package").expect_err("unknown");
        assert_eq!(err.field.as_deref(), Some("package"));
        assert!(string(&json!([]), "email").is_err());
    }

    mod fuzzing {
        use proptest::prelude::*;

        use super::super::{lat_lng, optional_string, package, string};

        const KEYS: &[&str] = &[
            "pickup",
            "dropoff",
            "lat",
            "lng",
            "package",
            "email",
            "password",
            "name",
            "role",
            "quote_id",
            "payment_method",
            "plate",
            "model",
            "status",
            "stars",
            "comment",
            "tags",
            "amount",
        ];

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// Every field reader of the product API answers any JSON with a value or a 4xx that
            /// names the field.
            #[test]
            fn any_body_is_read_or_named(body in platform::fuzz::json(KEYS)) {
                let errors = [
                    lat_lng(&body, "pickup").err(),
                    lat_lng(&body, "").err(),
                    package(&body, "package").err(),
                    string(&body, "email").err(),
                    optional_string(&body, "payment_method").err(),
                ];
                for e in errors.into_iter().flatten() {
                    prop_assert!(platform::fuzz::is_client_error(&e), "{e:?}");
                    prop_assert!(e.field.is_some(), "names its field: {e:?}");
                }
            }
        }
    }
}
