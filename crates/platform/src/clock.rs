//! The one place that reads the wall clock and mints ids (the domain takes both as arguments).

use std::time::{SystemTime, UNIX_EPOCH};

use domain::Timestamp;
use uuid::Uuid;

pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    Timestamp::from_millis(millis)
}

/// A fresh UUID v7 (time-ordered), typed by the caller: `let id: RideRequestId = new_id();`.
pub fn new_id<T: From<Uuid>>() -> T {
    T::from(Uuid::now_v7())
}
