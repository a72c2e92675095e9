//! The course protocol's payloads, in the spellings public implementations of seed 002 use.
//! Each field may come in one of several families; giving a field twice (in two families), an
//! unknown key, or a value of the wrong type is a 422 naming the key.
//!
//! | field | nested (`{"x":…,"y":…}` or `[x, y]`) | flat pairs |
//! |---|---|---|
//! | rider/driver position | `position` `location` `current` `currentLocation` `current_location` `coordinates` `coords` `pickup` `source` `from` | `x`/`y` `currentX`/`currentY` `current_x`/`current_y` `positionX`/`positionY` `position_x`/`position_y` |
//! | rider destination | `destination` `dest` `dropoff` `to` | `destinationX`/`destinationY` `destination_x`/`destination_y` `destX`/`destY` `dest_x`/`dest_y` |
//! | rider name | `name` `riderName` `rider_name` `rider` | |
//! | driver name | `name` `driverName` `driver_name` `driver` | |
//! | car number | `car` `carNumber` `car_number` | |

use std::collections::BTreeSet;

use domain::course::RideRequestDraft;
use domain::{CarNumber, PersonName, Point};
use platform::{ApiError, ErrorCode};
use serde_json::{Map, Value};

const POSITION_NESTED: &[&str] = &[
    "position",
    "location",
    "current",
    "currentLocation",
    "current_location",
    "coordinates",
    "coords",
    "pickup",
    "source",
    "from",
];
const POSITION_FLAT: &[(&str, &str)] = &[
    ("x", "y"),
    ("currentX", "currentY"),
    ("current_x", "current_y"),
    ("positionX", "positionY"),
    ("position_x", "position_y"),
];
const DESTINATION_NESTED: &[&str] = &["destination", "dest", "dropoff", "to"];
const DESTINATION_FLAT: &[(&str, &str)] = &[
    ("destinationX", "destinationY"),
    ("destination_x", "destination_y"),
    ("destX", "destY"),
    ("dest_x", "dest_y"),
];
const RIDER_NAME: &[&str] = &["name", "riderName", "rider_name", "r_name", "rider"];
const DRIVER_NAME: &[&str] = &["name", "driverName", "driver_name", "d_name", "driver"];
const CAR_NUMBER: &[&str] = &["car", "carNumber", "car_number", "d_car"];
const RATING_DRIVER: &[&str] = &["driver", "driverName", "driver_name", "d_name", "name"];
const RATING_VALUE: &[&str] = &["rating", "stars", "score"];

/// A driver's report as posted.
#[derive(Debug, Clone, PartialEq)]
pub struct DriverPayload {
    pub name: PersonName,
    pub car_number: CarNumber,
    pub position: Point,
}

/// A rating as posted: the driver by name or by car, and 1–5 stars.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingPayload {
    pub driver: rating::DriverRef,
    pub stars: domain::rating::Stars,
}

struct Fields<'a> {
    map: &'a Map<String, Value>,
    used: BTreeSet<&'a str>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_field(field, message)
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value) -> Result<Self, ApiError> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                used: BTreeSet::new(),
            }),
            other => Err(ApiError::new(
                ErrorCode::InvalidInput,
                format!("the body must be a JSON object, not {}", kind(other)),
            )),
        }
    }

    /// The one key of `keys` present, if any; two present is an error.
    fn one_of(
        &mut self,
        what: &str,
        keys: &[&'static str],
    ) -> Result<Option<(&'static str, &'a Value)>, ApiError> {
        let present: Vec<(&'static str, &'a Value)> = keys
            .iter()
            .filter_map(|k| self.map.get(*k).map(|v| (*k, v)))
            .collect();
        match present.as_slice() {
            [] => Ok(None),
            [(key, value)] => {
                self.used.insert(key);
                Ok(Some((key, *value)))
            }
            [(first, _), (second, _), ..] => Err(invalid(
                second,
                format!("{what} is given twice, as `{first}` and `{second}`; send one"),
            )),
        }
    }

    fn text(
        &mut self,
        what: &str,
        keys: &[&'static str],
    ) -> Result<(&'static str, &'a str), ApiError> {
        match self.one_of(what, keys)? {
            None => Err(invalid(
                keys[0],
                format!("missing {what}: send one of {}", list(keys)),
            )),
            Some((key, Value::String(s))) => Ok((key, s.as_str())),
            Some((key, other)) => Err(invalid(
                key,
                format!("`{key}` must be a string, not {}", kind(other)),
            )),
        }
    }

    /// A car number: a string, or a whole number (clients that keep plates as numbers).
    fn car(&mut self, keys: &[&'static str]) -> Result<Option<(&'static str, String)>, ApiError> {
        match self.one_of("the car number", keys)? {
            None => Ok(None),
            Some((key, value)) => car_text(key, value).map(|car| Some((key, car))),
        }
    }

    fn point(
        &mut self,
        what: &str,
        nested: &[&'static str],
        flat: &[(&'static str, &'static str)],
    ) -> Result<Point, ApiError> {
        let mut found: Vec<String> = Vec::new();
        let nested_hit = self.one_of(what, nested)?;
        if let Some((key, _)) = nested_hit {
            found.push(format!("`{key}`"));
        }
        let mut flat_hit = None;
        for (kx, ky) in flat {
            if self.map.contains_key(*kx) || self.map.contains_key(*ky) {
                found.push(format!("`{kx}`/`{ky}`"));
                flat_hit = Some((*kx, *ky));
            }
        }
        if found.len() > 1 {
            return Err(invalid(
                nested.first().copied().unwrap_or("position"),
                format!(
                    "{what} is given twice, as {}; send one",
                    found.join(" and ")
                ),
            ));
        }
        if let Some((key, value)) = nested_hit {
            return nested_point(key, value);
        }
        if let Some((kx, ky)) = flat_hit {
            self.used.insert(kx);
            self.used.insert(ky);
            let x = number(kx, self.map.get(kx))?;
            let y = number(ky, self.map.get(ky))?;
            return Point::new(x, y)
                .map_err(|e| invalid(if e_axis(&e) == 'x' { kx } else { ky }, e.to_string()));
        }
        Err(invalid(
            nested.first().copied().unwrap_or("position"),
            format!(
                "missing {what}: send {} as {{\"x\": …, \"y\": …}} or [x, y], or flat {}",
                list(nested),
                flat.iter()
                    .map(|(x, y)| format!("`{x}`/`{y}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ))
    }

    fn finish(self) -> Result<(), ApiError> {
        match self.map.keys().find(|k| !self.used.contains(k.as_str())) {
            Some(unknown) => Err(invalid(
                unknown.as_str(),
                format!("unknown field `{unknown}`; the accepted fields are listed in docs/API.md"),
            )),
            None => Ok(()),
        }
    }
}

fn e_axis(e: &domain::CoordinateError) -> char {
    match e {
        domain::CoordinateError::NotFinite { axis }
        | domain::CoordinateError::OutOfRange { axis, .. } => *axis,
    }
}

fn list(keys: &[&str]) -> String {
    keys.iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn number(key: &str, value: Option<&Value>) -> Result<f64, ApiError> {
    match value {
        None => Err(invalid(key, format!("missing `{key}`"))),
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| invalid(key, format!("`{key}` is not a representable number"))),
        Some(other) => Err(invalid(
            key,
            format!("`{key}` must be a number, not {}", kind(other)),
        )),
    }
}

fn nested_point(key: &str, value: &Value) -> Result<Point, ApiError> {
    let (x, y) = match value {
        Value::Object(map) => {
            if let Some(extra) = map.keys().find(|k| *k != "x" && *k != "y") {
                return Err(invalid(
                    key,
                    format!(
                        "`{key}` has an unknown field `{extra}`; expected {{\"x\": …, \"y\": …}}"
                    ),
                ));
            }
            (
                number(&format!("{key}.x"), map.get("x"))?,
                number(&format!("{key}.y"), map.get("y"))?,
            )
        }
        Value::Array(items) if items.len() == 2 => (
            number(&format!("{key}[0]"), items.first())?,
            number(&format!("{key}[1]"), items.get(1))?,
        ),
        Value::Array(items) => {
            return Err(invalid(
                key,
                format!("`{key}` must be [x, y], got {} elements", items.len()),
            ));
        }
        other => {
            return Err(invalid(
                key,
                format!(
                    "`{key}` must be {{\"x\": …, \"y\": …}} or [x, y], not {}",
                    kind(other)
                ),
            ));
        }
    };
    Point::new(x, y).map_err(|e| invalid(key, format!("`{key}`: {e}")))
}

/// A car number given as a string or a whole number (`4242` is the car "4242").
fn car_text(key: &str, value: &Value) -> Result<String, ApiError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        other => Err(invalid(
            key,
            format!(
                "`{key}` must be a string or a whole number, not {}",
                match other {
                    Value::Number(_) => "a fraction",
                    other => kind(other),
                }
            ),
        )),
    }
}

fn name(key: &str, raw: &str) -> Result<PersonName, ApiError> {
    PersonName::parse(raw).map_err(|e| invalid(key, e.to_string()))
}

pub fn parse_rider(body: &Value) -> Result<RideRequestDraft, ApiError> {
    let mut fields = Fields::of(body)?;
    let (key, raw) = fields.text("the rider's name", RIDER_NAME)?;
    let rider = name(key, raw)?;
    let position = fields.point("the rider's position", POSITION_NESTED, POSITION_FLAT)?;
    let destination = fields.point("the destination", DESTINATION_NESTED, DESTINATION_FLAT)?;
    fields.finish()?;
    Ok(RideRequestDraft {
        rider,
        position,
        destination,
    })
}

pub fn parse_driver(body: &Value) -> Result<DriverPayload, ApiError> {
    let mut fields = Fields::of(body)?;
    let (key, raw) = fields.text("the driver's name", DRIVER_NAME)?;
    let driver = name(key, raw)?;
    let (car_key, car_raw) = fields.car(CAR_NUMBER)?.ok_or_else(|| {
        invalid(
            CAR_NUMBER[0],
            format!("missing the car number: send one of {}", list(CAR_NUMBER)),
        )
    })?;
    let car_number = CarNumber::parse(&car_raw).map_err(|e| invalid(car_key, e.to_string()))?;
    let position = fields.point("the driver's position", POSITION_NESTED, POSITION_FLAT)?;
    fields.finish()?;
    Ok(DriverPayload {
        name: driver,
        car_number,
        position,
    })
}

pub fn parse_rating(body: &Value) -> Result<RatingPayload, ApiError> {
    let mut fields = Fields::of(body)?;
    let by_name = fields.one_of("the driver", RATING_DRIVER)?;
    let by_car = fields.car(CAR_NUMBER)?;
    let driver = match (by_name, by_car) {
        (Some((key, _)), Some((car_key, _))) => {
            return Err(invalid(
                car_key,
                format!("name the driver by `{key}` or by `{car_key}`, not both"),
            ));
        }
        (Some((key, Value::String(raw))), None) => rating::DriverRef::Name(name(key, raw)?),
        (None, Some((key, raw))) => {
            rating::DriverRef::Car(CarNumber::parse(&raw).map_err(|e| invalid(key, e.to_string()))?)
        }
        (Some((key, other)), None) => {
            return Err(invalid(
                key,
                format!("`{key}` must be a string, not {}", kind(other)),
            ));
        }
        (None, None) => {
            return Err(invalid(
                "driver",
                format!(
                    "missing the driver: send one of {} or {}",
                    list(RATING_DRIVER),
                    list(CAR_NUMBER)
                ),
            ));
        }
    };
    let stars = match fields.one_of("the rating", RATING_VALUE)? {
        None => {
            return Err(invalid(
                "rating",
                "missing `rating` (a whole number from 1 to 5)",
            ));
        }
        Some((key, Value::Number(n))) => {
            let whole = n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e9)
                    .map(|f| f as i64)
            });
            match whole {
                Some(v) => {
                    domain::rating::Stars::new(v).map_err(|e| invalid(key, e.to_string()))?
                }
                None => {
                    return Err(invalid(
                        key,
                        format!("`{key}` must be a whole number from 1 to 5, got {n}"),
                    ));
                }
            }
        }
        Some((key, other)) => {
            return Err(invalid(
                key,
                format!(
                    "`{key}` must be a whole number from 1 to 5, not {}",
                    kind(other)
                ),
            ));
        }
    };
    fields.finish()?;
    Ok(RatingPayload { driver, stars })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field_of(err: ApiError) -> String {
        assert_eq!(err.code, ErrorCode::InvalidInput, "{err}");
        err.field.unwrap_or_default()
    }

    #[test]
    fn every_rider_family_is_accepted() {
        let bodies = [
            json!({"name": "a", "x": 1, "y": 2, "destinationX": 4, "destinationY": 6}),
            json!({"name": "a", "currentX": 1, "currentY": 2, "destX": 4, "destY": 6}),
            json!({"riderName": "a", "current_x": 1, "current_y": 2, "dest_x": 4, "dest_y": 6}),
            json!({"rider": "a", "positionX": 1, "positionY": 2, "destination_x": 4, "destination_y": 6}),
            json!({"rider_name": "a", "position": {"x": 1, "y": 2}, "destination": {"x": 4, "y": 6}}),
            json!({"name": "a", "location": [1, 2], "destination": [4.0, 6.0]}),
            json!({"name": "a", "currentLocation": {"x": 1, "y": 2}, "to": [4, 6]}),
            json!({"name": "a", "from": [1, 2], "dropoff": {"x": 4, "y": 6}}),
        ];
        for body in bodies {
            let draft = parse_rider(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(draft.rider.as_str(), "a");
            assert_eq!(
                (draft.position.x(), draft.position.y()),
                (1.0, 2.0),
                "{body}"
            );
            assert_eq!(
                (draft.destination.x(), draft.destination.y()),
                (4.0, 6.0),
                "{body}"
            );
        }
    }

    #[test]
    fn every_driver_family_is_accepted() {
        for body in [
            json!({"name": "d", "car": "DHA-1", "x": 3, "y": 4}),
            json!({"driverName": "d", "carNumber": "DHA-1", "currentX": 3, "currentY": 4}),
            json!({"driver_name": "d", "car_number": "DHA-1", "position": [3, 4]}),
            json!({"driver": "d", "car": "DHA-1", "coordinates": {"x": 3, "y": 4}}),
        ] {
            let driver = parse_driver(&body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(driver.car_number.as_str(), "DHA-1");
            assert_eq!((driver.position.x(), driver.position.y()), (3.0, 4.0));
        }
    }

    #[test]
    fn bad_rider_bodies_name_the_problem() {
        let cases = [
            (json!({"x": 1, "y": 2, "destination": [1, 1]}), "name"),
            (json!({"name": "a", "destination": [1, 1]}), "position"),
            (json!({"name": "a", "x": 1, "destination": [1, 1]}), "y"),
            (
                json!({"name": "a", "x": "1", "y": 2, "destination": [1, 1]}),
                "x",
            ),
            (
                json!({"name": "a", "x": 1, "y": 2e7, "destination": [1, 1]}),
                "y",
            ),
            (json!({"name": "a", "x": 1, "y": 2}), "destination"),
            (
                json!({"name": "a", "x": 1, "y": 2, "position": [1, 2], "destination": [1, 1]}),
                "position",
            ),
            (
                json!({"name": "a", "x": 1, "y": 2, "destination": [1, 1, 1]}),
                "destination",
            ),
            (
                json!({"name": "a", "x": 1, "y": 2, "destination": {"x": 1, "y": 1, "z": 0}}),
                "destination",
            ),
            (
                json!({"name": "a", "x": 1, "y": 2, "destination": [1, 1], "speed": 3}),
                "speed",
            ),
            (
                json!({"name": "", "x": 1, "y": 2, "destination": [1, 1]}),
                "name",
            ),
            (
                json!({"name": 7, "x": 1, "y": 2, "destination": [1, 1]}),
                "name",
            ),
            (
                json!({"name": "a", "rider": "b", "x": 1, "y": 2, "destination": [1, 1]}),
                "rider",
            ),
        ];
        for (body, field) in cases {
            let err = parse_rider(&body).expect_err(&body.to_string());
            assert_eq!(field_of(err), field, "{body}");
        }
        assert_eq!(
            parse_rider(&json!([1, 2])).expect_err("array").code,
            ErrorCode::InvalidInput
        );
    }

    #[test]
    fn ratings_name_a_driver_and_whole_stars() {
        let ok = parse_rating(&json!({"driver": "d", "rating": 5})).expect("valid");
        assert_eq!(ok.stars.get(), 5);
        let by_car = parse_rating(&json!({"carNumber": "DHA-1", "stars": 3.0})).expect("valid");
        assert!(matches!(by_car.driver, rating::DriverRef::Car(_)));
        for (body, field) in [
            (json!({"driver": "d", "rating": 0}), "rating"),
            (json!({"driver": "d", "rating": 6}), "rating"),
            (json!({"driver": "d", "rating": 4.5}), "rating"),
            (json!({"driver": "d", "rating": "5"}), "rating"),
            (json!({"rating": 5}), "driver"),
            (json!({"driver": "d", "car": "c", "rating": 5}), "car"),
            (json!({"driver": "d"}), "rating"),
        ] {
            assert_eq!(
                field_of(parse_rating(&body).expect_err(&body.to_string())),
                field,
                "{body}"
            );
        }
    }

    mod fuzzing {
        use proptest::prelude::*;

        use super::super::{parse_driver, parse_rating, parse_rider};

        use super::super::{
            CAR_NUMBER, DESTINATION_FLAT, DESTINATION_NESTED, DRIVER_NAME, POSITION_FLAT,
            POSITION_NESTED, RATING_DRIVER, RATING_VALUE, RIDER_NAME,
        };

        /// Every key the course parsers know, so generated bodies get past "unknown key".
        fn keys() -> &'static [&'static str] {
            static KEYS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
            KEYS.get_or_init(|| {
                let lists = [
                    RIDER_NAME,
                    DRIVER_NAME,
                    CAR_NUMBER,
                    RATING_DRIVER,
                    RATING_VALUE,
                    POSITION_NESTED,
                    DESTINATION_NESTED,
                ];
                let pairs = POSITION_FLAT.iter().chain(DESTINATION_FLAT);
                lists
                    .concat()
                    .into_iter()
                    .chain(pairs.flat_map(|(x, y)| [*x, *y]))
                    .collect()
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// Whatever JSON arrives, every course parser answers: a value, or a 4xx naming the
            /// problem — never a panic.
            #[test]
            fn any_course_body_is_parsed_or_named(body in platform::fuzz::json_object(keys())) {
                for result in [
                    parse_rider(&body).map(drop),
                    parse_driver(&body).map(drop),
                    parse_rating(&body).map(drop),
                ] {
                    if let Err(e) = result {
                        prop_assert!(platform::fuzz::is_client_error(&e), "{e:?}");
                    }
                }
            }

            #[test]
            fn any_json_at_all_is_refused_or_parsed(body in platform::fuzz::json(keys())) {
                for result in [
                    parse_rider(&body).map(drop),
                    parse_driver(&body).map(drop),
                    parse_rating(&body).map(drop),
                ] {
                    if let Err(e) = result {
                        prop_assert!(platform::fuzz::is_client_error(&e), "{e:?}");
                    }
                }
            }
        }
    }
}
