//! Typed ids: one macro, so a `RideRequestId` can never be passed where an `EventId` is expected.
//! Ids are UUIDs (v7 when minted by a service, so they sort by creation time); minting happens at
//! the edge because it needs a clock and randomness.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

typed_id!(
    /// One ride request posted by a rider (course protocol `POST /rider`).
    RideRequestId
);
typed_id!(
    /// One pairing made by the matching service.
    MatchId
);
typed_id!(
    /// One event on the bus; consumers deduplicate by it.
    EventId
);
typed_id!(
    /// One trip of the product API, from request to completion or cancellation.
    TripId
);
typed_id!(
    /// An account (rider or driver) of the product API.
    AccountId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_json() {
        let id = RideRequestId::from_uuid(Uuid::from_u128(42));
        let parsed: RideRequestId = id.to_string().parse().expect("parses");
        assert_eq!(parsed, id);
        let json = serde_json::to_string(&id).expect("serializes");
        assert_eq!(json, format!("\"{id}\""));
        assert!("not-a-uuid".parse::<EventId>().is_err());
    }
}
