//! The course protocol's two inputs (seed 002): a rider asking for a ride from a position to a
//! destination, and a driver reporting a car and a position. Names are the course's identities.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::geo::Point;
use crate::ids::RideRequestId;
use crate::time::Timestamp;

pub const MAX_NAME_CHARS: usize = 64;
pub const MAX_CAR_NUMBER_CHARS: usize = 32;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} must not contain control characters")]
    ControlCharacters { field: &'static str },
}

fn checked_text(field: &'static str, raw: &str, max: usize) -> Result<String, ValidationError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(ValidationError::Empty { field });
    }
    if text.chars().count() > max {
        return Err(ValidationError::TooLong { field, max });
    }
    if text.chars().any(char::is_control) {
        return Err(ValidationError::ControlCharacters { field });
    }
    Ok(text.to_owned())
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Trims surrounding white space and checks length and characters.
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                checked_text($field, raw, $max).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;

            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// A rider's or driver's name: 1 to 64 characters after trimming, no control characters.
    PersonName,
    "name",
    MAX_NAME_CHARS
);
text_newtype!(
    /// A car's registration number: 1 to 32 characters after trimming.
    CarNumber,
    "car number",
    MAX_CAR_NUMBER_CHARS
);

/// What a rider asked for, before the rider service gave it an id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RideRequestDraft {
    pub rider: PersonName,
    pub position: Point,
    pub destination: Point,
}

/// A ride request accepted by the rider service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RideRequest {
    pub id: RideRequestId,
    pub rider: PersonName,
    pub position: Point,
    pub destination: Point,
    pub requested_at: Timestamp,
}

impl RideRequest {
    pub fn new(id: RideRequestId, draft: RideRequestDraft, requested_at: Timestamp) -> Self {
        Self {
            id,
            rider: draft.rider,
            position: draft.position,
            destination: draft.destination,
            requested_at,
        }
    }

    /// The straight-line length of the trip the rider asked for.
    pub fn trip_distance(&self) -> f64 {
        self.position.distance_to(&self.destination)
    }
}

/// A driver saying "I am here, with this car, and free".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriverReport {
    pub driver: PersonName,
    pub car_number: CarNumber,
    pub position: Point,
    pub reported_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(
            PersonName::parse("  Rahim ").expect("valid").as_str(),
            "Rahim"
        );
        assert_eq!(
            PersonName::parse("   "),
            Err(ValidationError::Empty { field: "name" })
        );
        assert_eq!(
            PersonName::parse(&"a".repeat(65)),
            Err(ValidationError::TooLong {
                field: "name",
                max: 64
            })
        );
        assert_eq!(
            CarNumber::parse("DHA\u{0}1"),
            Err(ValidationError::ControlCharacters {
                field: "car number"
            })
        );
    }

    #[test]
    fn names_validate_when_deserialized() {
        assert!(serde_json::from_str::<PersonName>("\"\"").is_err());
        let name: PersonName = serde_json::from_str("\" Karim \"").expect("valid");
        assert_eq!(name.as_str(), "Karim");
    }
}
