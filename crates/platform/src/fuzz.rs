//! Strategies of hostile input for property tests (feature `fuzzing`): any JSON value, its object
//! keys drawn from the ones a parser knows (so the fuzz reaches past "unknown key") and from
//! anything else; any text, from valid JSON frames to garbage. Every parser of outside input is
//! checked with them: no panic, and an error that names the problem as a 4xx.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use crate::{ApiError, ErrorCode};

/// Any JSON value up to a few levels deep; object keys from `keys` or arbitrary.
pub fn json(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just(-1e300),
            Just(1e300),
            Just(0.5),
            Just(-0.0),
            Just(90.0000001)
        ]
        .prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        "[0-9]{1,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 48, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(keys), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object (the shape bodies have) with keys from `keys` or arbitrary.
pub fn json_object(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec((key(keys), json(keys)), 0..8)
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>()))
}

fn key(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(keys).prop_map(str::to_owned),
        1 => "[a-zA-Z_]{0,12}",
        1 => ".{0,12}",
    ]
}

/// Text a client might send: JSON of any shape (objects keyed by `keys`), or anything at all.
pub fn text(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![
        json(keys).prop_map(|v| v.to_string()),
        json_object(keys).prop_map(|v| v.to_string()),
        ".{0,200}",
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// Whether `error` is what hostile input deserves: a 4xx, with a message a person can read.
pub fn is_client_error(error: &ApiError) -> bool {
    error.code.http_status().is_client_error()
        && error.code != ErrorCode::Internal
        && !error.message.trim().is_empty()
}
