//! What travels over `/communication`, on both transports. WebSocket frames are JSON objects with a
//! `type`; socket.io events carry the same objects under the event name `type`.

use domain::events::{RideExpired, RideMatched};
use domain::{EventId, MatchId, Point, RideRequestId, Timestamp};
use serde::{Deserialize, Serialize};

use super::Notice;

/// Client → server (WebSocket text frames).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// From now on, send only messages about `name`.
    Identify {
        name: String,
    },
    Ping,
}

/// Server → client (WebSocket text frames).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Identified {
        name: String,
    },
    Match(Box<MatchNotice>),
    Unmatched(UnmatchedNotice),
    /// The session fell behind and `missed` messages were dropped for it.
    Lagged {
        missed: u64,
    },
    Pong,
}

/// A rider and a driver were paired; the fare is 2 taka × trip distance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchNotice {
    pub event_id: EventId,
    pub ride_id: RideRequestId,
    pub match_id: MatchId,
    pub tick: u64,
    pub rider: String,
    pub driver: String,
    pub car_number: String,
    /// The same names, car and fare as the course's client families spell them.
    #[serde(flatten)]
    pub spellings: Spellings,
    pub pickup_distance: f64,
    pub trip_distance: f64,
    pub fare: f64,
    pub currency: String,
    pub rider_position: Point,
    pub destination: Point,
    pub driver_position: Point,
    pub requested_at: Timestamp,
    pub matched_at: Timestamp,
}

/// A match's names, car number and fare in every spelling the accepted request families use
/// (camelCase, snake_case, the short `r_`/`d_` forms), and `cost` beside `fare`: a class's client
/// reads the match under whichever it was written for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spellings {
    #[serde(rename = "riderName")]
    pub rider_camel: String,
    pub rider_name: String,
    pub r_name: String,
    #[serde(rename = "driverName")]
    pub driver_camel: String,
    pub driver_name: String,
    pub d_name: String,
    #[serde(rename = "carNumber")]
    pub car_camel: String,
    pub car: String,
    pub d_car: String,
    pub cost: f64,
}

impl Spellings {
    fn of(event: &RideMatched) -> Self {
        let (rider, driver, car) = (
            event.rider.to_string(),
            event.driver.to_string(),
            event.car_number.to_string(),
        );
        Self {
            rider_camel: rider.clone(),
            rider_name: rider.clone(),
            r_name: rider,
            driver_camel: driver.clone(),
            driver_name: driver.clone(),
            d_name: driver,
            car_camel: car.clone(),
            car: car.clone(),
            d_car: car,
            cost: event.fare,
        }
    }
}

/// A ride request waited past the hold time without a driver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnmatchedNotice {
    pub event_id: EventId,
    pub ride_id: RideRequestId,
    pub rider: String,
    pub reason: String,
}

/// The match, emitted as `name` (one of `course.match_events`).
pub(crate) fn match_notice(event: &RideMatched, event_id: EventId, name: &str) -> Notice {
    let message = ServerMessage::Match(Box::new(MatchNotice {
        event_id,
        ride_id: event.request_id,
        match_id: event.match_id,
        tick: event.tick,
        rider: event.rider.to_string(),
        driver: event.driver.to_string(),
        car_number: event.car_number.to_string(),
        spellings: Spellings::of(event),
        pickup_distance: event.pickup_distance,
        trip_distance: event.trip_distance,
        fare: event.fare,
        currency: event.currency.clone(),
        rider_position: event.rider_position,
        destination: event.destination,
        driver_position: event.driver_position,
        requested_at: event.requested_at,
        matched_at: event.matched_at,
    }));
    let recipients = vec![event.rider.to_string(), event.driver.to_string()];
    Notice::new(event_id, message, name, recipients, true)
}

pub(crate) fn unmatched_notice(event: &RideExpired, event_id: EventId) -> Notice {
    let message = ServerMessage::Unmatched(UnmatchedNotice {
        event_id,
        ride_id: event.request_id,
        rider: event.rider.to_string(),
        reason: "no driver became free within the hold time".to_owned(),
    });
    // Only the rider it concerns: anonymous listeners asked for matches.
    Notice::new(
        event_id,
        message,
        "unmatched",
        vec![event.rider.to_string()],
        false,
    )
}

/// Where a session's text frame goes wrong, in words for the close reason.
pub(crate) fn parse_client_message(text: &str) -> Result<ClientMessage, String> {
    serde_json::from_str(text).map_err(|e| {
        let mut reason = format!("invalid message: {e}");
        // A close reason must fit in 123 bytes.
        while reason.len() > 120 {
            reason.pop();
        }
        reason
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    mod fuzzing {
        use proptest::prelude::*;

        use super::super::parse_client_message;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(3000))]

            /// Whatever a course WebSocket client sends is a message or a close reason that fits
            /// a close frame (123 bytes) — never a panic.
            #[test]
            fn any_frame_is_read_or_closed_with_a_reason(text in platform::fuzz::text(&["type", "name", "identify", "ping"])) {
                if let Err(reason) = parse_client_message(&text) {
                    prop_assert!(!reason.is_empty() && reason.len() <= 123, "{reason:?}");
                }
            }
        }
    }

    #[test]
    fn client_messages_parse_and_garbage_is_named() {
        assert_eq!(
            parse_client_message(r#"{"type":"identify","name":"asha"}"#),
            Ok(ClientMessage::Identify {
                name: "asha".into()
            })
        );
        assert_eq!(
            parse_client_message(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping)
        );
        let err = parse_client_message("not json at all").expect_err("garbage");
        assert!(err.starts_with("invalid message"), "{err}");
        assert!(
            parse_client_message(&format!(r#"{{"type":"{}"}}"#, "x".repeat(500)))
                .expect_err("unknown")
                .len()
                <= 123
        );
    }
}
