//! The trip state machine of the product API (issue 4): one pure function,
//! `apply(trip, command, now, policy) → (trip, events)` or a `TransitionError` naming the state
//! and the command. The trip service persists what it returns and publishes the events; the matcher
//! proposes offers; nothing here reads a clock.
//!
//! ```text
//! searching ──offer──▶ offered ──accept──▶ driver_assigned ──arrive──▶ arrived ──start──▶ in_progress ──complete──▶ completed
//!     ▲                   │ decline / offer timeout        │ driver cancels (re-dispatch)  │
//!     └───────────────────┴────────────────────────────────┴───────────────────────────────┘
//! searching / offered ──search timeout──▶ no_drivers_found
//! searching … arrived ──rider cancels──▶ cancelled (free within the free window of assignment; a
//! late-cancel fee after it) ; arrived ──driver cancels after the no-show wait──▶ cancelled (no-show
//! fee)
//! ```
//!
//! Rules that real systems get wrong, made structural here: a driver who declined, let an offer
//! time out or cancelled is never offered the trip again; a trip in a final state accepts nothing
//! (a cancelled trip never becomes assigned); only the offered driver can accept, and only the
//! assigned driver can move the trip on.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::AccountId;
use crate::time::Timestamp;

/// Money in integer minor units (poisha for BDT).
pub type Minor = u64;

/// Timeouts and fees. Durations in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TripPolicy {
    /// How long a driver has to answer an offer.
    pub offer_timeout_ms: u64,
    /// How long a trip may search before it ends as `no_drivers_found`.
    pub search_timeout_ms: u64,
    /// A rider may cancel free of charge this long after a driver was assigned.
    pub free_cancel_window_ms: u64,
    pub late_cancel_fee: Minor,
    /// After the driver has waited this long at the pickup, the driver may cancel for a no-show.
    pub no_show_after_ms: u64,
    pub no_show_fee: Minor,
}

impl Default for TripPolicy {
    fn default() -> Self {
        Self {
            offer_timeout_ms: 15_000,
            search_timeout_ms: 120_000,
            free_cancel_window_ms: 120_000,
            late_cancel_fee: 5_000,
            no_show_after_ms: 300_000,
            no_show_fee: 8_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TripState {
    Searching,
    Offered {
        driver: AccountId,
        offered_at: Timestamp,
    },
    DriverAssigned {
        driver: AccountId,
        assigned_at: Timestamp,
    },
    Arrived {
        driver: AccountId,
        assigned_at: Timestamp,
        arrived_at: Timestamp,
    },
    InProgress {
        driver: AccountId,
        started_at: Timestamp,
    },
    Completed {
        driver: AccountId,
        completed_at: Timestamp,
    },
    Cancelled {
        by: Party,
        fee: Minor,
        cancelled_at: Timestamp,
        /// The driver it was offered or assigned to when it was cancelled.
        driver: Option<AccountId>,
    },
    NoDriversFound {
        at: Timestamp,
    },
}

/// Which state a trip is in, without the state's data: what a view shows as `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TripStatus {
    Searching,
    Offered,
    DriverAssigned,
    Arrived,
    InProgress,
    Completed,
    Cancelled,
    NoDriversFound,
}

impl TripStatus {
    pub const ALL: [TripStatus; 8] = [
        Self::Searching,
        Self::Offered,
        Self::DriverAssigned,
        Self::Arrived,
        Self::InProgress,
        Self::Completed,
        Self::Cancelled,
        Self::NoDriversFound,
    ];

    /// Its snake_case name (its serde spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Searching => "searching",
            Self::Offered => "offered",
            Self::DriverAssigned => "driver_assigned",
            Self::Arrived => "arrived",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::NoDriversFound => "no_drivers_found",
        }
    }

    /// A driver is on the way or on board: the rider follows the driver's position.
    pub fn is_under_way(self) -> bool {
        matches!(
            self,
            Self::DriverAssigned | Self::Arrived | Self::InProgress
        )
    }
}

impl std::fmt::Display for TripStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for TripStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl TripState {
    pub fn status(&self) -> TripStatus {
        match self {
            Self::Searching => TripStatus::Searching,
            Self::Offered { .. } => TripStatus::Offered,
            Self::DriverAssigned { .. } => TripStatus::DriverAssigned,
            Self::Arrived { .. } => TripStatus::Arrived,
            Self::InProgress { .. } => TripStatus::InProgress,
            Self::Completed { .. } => TripStatus::Completed,
            Self::Cancelled { .. } => TripStatus::Cancelled,
            Self::NoDriversFound { .. } => TripStatus::NoDriversFound,
        }
    }

    pub fn name(&self) -> &'static str {
        self.status().as_str()
    }

    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Completed { .. } | Self::Cancelled { .. } | Self::NoDriversFound { .. }
        )
    }

    /// The driver the trip is offered or assigned to (or was, when it ended), if any.
    pub fn driver(&self) -> Option<AccountId> {
        match *self {
            Self::Offered { driver, .. }
            | Self::DriverAssigned { driver, .. }
            | Self::Arrived { driver, .. }
            | Self::InProgress { driver, .. }
            | Self::Completed { driver, .. } => Some(driver),
            Self::Cancelled { driver, .. } => driver,
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Rider,
    Driver,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trip {
    pub rider: AccountId,
    pub state: TripState,
    pub requested_at: Timestamp,
    /// Drivers who declined, let the offer lapse or cancelled: never offered this trip again.
    pub excluded: BTreeSet<AccountId>,
    /// Bumped by every transition (optimistic concurrency in the store).
    pub version: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// The matcher offers the trip to `driver`.
    Offer {
        driver: AccountId,
    },
    Accept {
        driver: AccountId,
    },
    Decline {
        driver: AccountId,
    },
    /// The offer was not answered in time.
    ExpireOffer,
    /// The search ran out of time.
    ExpireSearch,
    Arrive {
        driver: AccountId,
    },
    Start {
        driver: AccountId,
    },
    Complete {
        driver: AccountId,
    },
    Cancel {
        by: Party,
        driver: Option<AccountId>,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Offer { .. } => "offer",
            Self::Accept { .. } => "accept",
            Self::Decline { .. } => "decline",
            Self::ExpireOffer => "expire_offer",
            Self::ExpireSearch => "expire_search",
            Self::Arrive { .. } => "arrive",
            Self::Start { .. } => "start",
            Self::Complete { .. } => "complete",
            Self::Cancel { .. } => "cancel",
        }
    }
}

/// What happened, for the bus and the WebSocket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TripEvent {
    Offered {
        driver: AccountId,
    },
    OfferDeclined {
        driver: AccountId,
    },
    OfferExpired {
        driver: AccountId,
    },
    DriverAssigned {
        driver: AccountId,
    },
    DriverArrived {
        driver: AccountId,
    },
    Started {
        driver: AccountId,
    },
    Completed {
        driver: AccountId,
    },
    /// The assigned driver cancelled; the trip searches again without them.
    Redispatched {
        cancelled_by: AccountId,
    },
    Cancelled {
        by: Party,
        fee: Minor,
    },
    NoDriversFound,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The command makes no sense in this state (HTTP 409).
    #[error("cannot {command} a trip that is {state}")]
    Illegal {
        state: &'static str,
        command: &'static str,
    },
    /// The driver is not the one this trip is offered or assigned to (HTTP 403/404 at the edge).
    #[error("the trip is not offered or assigned to this driver")]
    NotYourTrip,
    /// This driver may not be offered the trip again.
    #[error("this driver declined, missed or cancelled the trip before")]
    DriverExcluded,
    /// The offer's time ran out before the accept (the dispatcher withdraws it on its next round).
    #[error("the offer lapsed; the trip goes to another driver")]
    OfferLapsed,
    /// A timeout command arrived before its time (a stale timer): ignore it.
    #[error("{command} before its time")]
    TooEarly { command: &'static str },
}

impl Trip {
    pub fn new(rider: AccountId, requested_at: Timestamp) -> Self {
        Self {
            rider,
            state: TripState::Searching,
            requested_at,
            excluded: BTreeSet::new(),
            version: 0,
        }
    }
}

/// The trip after `command` at `now`, and what happened; or why not (the trip is unchanged).
pub fn apply(
    trip: &Trip,
    command: Command,
    now: Timestamp,
    policy: &TripPolicy,
) -> Result<(Trip, Vec<TripEvent>), TransitionError> {
    use TripState as S;
    let illegal = || TransitionError::Illegal {
        state: trip.state.name(),
        command: command.name(),
    };
    let holder = |driver: AccountId| {
        if trip.state.driver() == Some(driver) {
            Ok(())
        } else {
            Err(TransitionError::NotYourTrip)
        }
    };
    if trip.state.is_final() {
        return Err(illegal());
    }
    let mut next = trip.clone();
    next.version += 1;
    let mut events = Vec::with_capacity(1);
    match (trip.state, command) {
        (S::Searching, Command::Offer { driver }) => {
            if trip.excluded.contains(&driver) {
                return Err(TransitionError::DriverExcluded);
            }
            next.state = S::Offered {
                driver,
                offered_at: now,
            };
            events.push(TripEvent::Offered { driver });
        }
        (S::Offered { driver, offered_at }, Command::Accept { driver: who }) => {
            holder(who)?;
            if now.millis_since(offered_at) >= policy.offer_timeout_ms {
                return Err(TransitionError::OfferLapsed);
            }
            next.state = S::DriverAssigned {
                driver,
                assigned_at: now,
            };
            events.push(TripEvent::DriverAssigned { driver });
        }
        (S::Offered { driver, .. }, Command::Decline { driver: who }) => {
            holder(who)?;
            next.excluded.insert(driver);
            next.state = S::Searching;
            events.push(TripEvent::OfferDeclined { driver });
        }
        (S::Offered { driver, offered_at }, Command::ExpireOffer) => {
            if now.millis_since(offered_at) < policy.offer_timeout_ms {
                return Err(TransitionError::TooEarly {
                    command: command.name(),
                });
            }
            next.excluded.insert(driver);
            next.state = S::Searching;
            events.push(TripEvent::OfferExpired { driver });
        }
        (S::Searching, Command::ExpireSearch) => {
            if now.millis_since(trip.requested_at) < policy.search_timeout_ms {
                return Err(TransitionError::TooEarly {
                    command: command.name(),
                });
            }
            next.state = S::NoDriversFound { at: now };
            events.push(TripEvent::NoDriversFound);
        }
        (
            S::DriverAssigned {
                driver,
                assigned_at,
            },
            Command::Arrive { driver: who },
        ) => {
            holder(who)?;
            next.state = S::Arrived {
                driver,
                assigned_at,
                arrived_at: now,
            };
            events.push(TripEvent::DriverArrived { driver });
        }
        (S::Arrived { driver, .. }, Command::Start { driver: who }) => {
            holder(who)?;
            next.state = S::InProgress {
                driver,
                started_at: now,
            };
            events.push(TripEvent::Started { driver });
        }
        (S::InProgress { driver, .. }, Command::Complete { driver: who }) => {
            holder(who)?;
            next.state = S::Completed {
                driver,
                completed_at: now,
            };
            events.push(TripEvent::Completed { driver });
        }
        (
            state,
            Command::Cancel {
                by: Party::Rider, ..
            },
        ) => {
            let fee = match state {
                S::Searching | S::Offered { .. } => 0,
                S::DriverAssigned { assigned_at, .. } | S::Arrived { assigned_at, .. } => {
                    if now.millis_since(assigned_at) <= policy.free_cancel_window_ms {
                        0
                    } else {
                        policy.late_cancel_fee
                    }
                }
                _ => return Err(illegal()),
            };
            next.state = S::Cancelled {
                by: Party::Rider,
                fee,
                cancelled_at: now,
                driver: state.driver(),
            };
            events.push(TripEvent::Cancelled {
                by: Party::Rider,
                fee,
            });
        }
        (
            state @ (S::DriverAssigned { driver, .. } | S::Arrived { driver, .. }),
            Command::Cancel {
                by: Party::Driver,
                driver: who,
            },
        ) => {
            holder(who.ok_or(TransitionError::NotYourTrip)?)?;
            let no_show = matches!(state, S::Arrived { arrived_at, .. }
                if now.millis_since(arrived_at) >= policy.no_show_after_ms);
            if no_show {
                next.state = S::Cancelled {
                    by: Party::Driver,
                    fee: policy.no_show_fee,
                    cancelled_at: now,
                    driver: Some(driver),
                };
                events.push(TripEvent::Cancelled {
                    by: Party::Driver,
                    fee: policy.no_show_fee,
                });
            } else {
                next.excluded.insert(driver);
                next.state = S::Searching;
                events.push(TripEvent::Redispatched {
                    cancelled_by: driver,
                });
            }
        }
        _ => return Err(illegal()),
    }
    Ok((next, events))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{Strategy, prop, prop_assert, prop_assert_eq, prop_oneof, proptest};
    use uuid::Uuid;

    use super::*;

    fn id(n: u128) -> AccountId {
        AccountId::from_uuid(Uuid::from_u128(n))
    }

    const T0: Timestamp = Timestamp::from_millis(1_000_000);

    fn run(trip: &Trip, steps: &[(Command, i64)]) -> Result<Trip, TransitionError> {
        let policy = TripPolicy::default();
        let mut trip = trip.clone();
        let mut now = T0;
        for (command, after_ms) in steps {
            now = now.plus_millis(*after_ms);
            trip = apply(&trip, *command, now, &policy)?.0;
        }
        Ok(trip)
    }

    #[test]
    fn the_happy_path_and_its_events() {
        let policy = TripPolicy::default();
        let (rider, driver) = (id(1), id(2));
        let mut trip = Trip::new(rider, T0);
        let mut seen = Vec::new();
        for command in [
            Command::Offer { driver },
            Command::Accept { driver },
            Command::Arrive { driver },
            Command::Start { driver },
            Command::Complete { driver },
        ] {
            let (next, events) = apply(&trip, command, T0, &policy).expect("legal");
            assert_eq!(next.version, trip.version + 1);
            seen.push(next.state.name());
            seen.extend(events.iter().map(|_| "·"));
            trip = next;
        }
        assert_eq!(
            seen,
            [
                "offered",
                "·",
                "driver_assigned",
                "·",
                "arrived",
                "·",
                "in_progress",
                "·",
                "completed",
                "·"
            ]
        );
        let err = apply(
            &trip,
            Command::Cancel {
                by: Party::Rider,
                driver: None,
            },
            T0,
            &policy,
        )
        .expect_err("final");
        assert_eq!(
            err,
            TransitionError::Illegal {
                state: "completed",
                command: "cancel"
            }
        );
        assert_eq!(err.to_string(), "cannot cancel a trip that is completed");
    }

    #[test]
    fn fees_follow_the_windows() {
        let (rider, d) = (id(1), id(2));
        let assigned = [
            (Command::Offer { driver: d }, 0),
            (Command::Accept { driver: d }, 1_000),
        ];
        let fee_after = |extra: &[(Command, i64)]| {
            let mut steps = assigned.to_vec();
            steps.extend_from_slice(extra);
            match run(&Trip::new(rider, T0), &steps).expect("legal").state {
                TripState::Cancelled { fee, by, .. } => (by, fee),
                other => panic!("not cancelled: {other:?}"),
            }
        };
        let rider_cancels = Command::Cancel {
            by: Party::Rider,
            driver: None,
        };
        assert_eq!(fee_after(&[(rider_cancels, 120_000)]), (Party::Rider, 0));
        assert_eq!(
            fee_after(&[(rider_cancels, 120_001)]),
            (Party::Rider, 5_000)
        );
        let arrive = (Command::Arrive { driver: d }, 10_000);
        let driver_cancels = Command::Cancel {
            by: Party::Driver,
            driver: Some(d),
        };
        assert_eq!(
            fee_after(&[arrive, (driver_cancels, 300_000)]),
            (Party::Driver, 8_000),
            "a no-show after 5 minutes at the pickup"
        );
        // Before the no-show wait, a driver's cancel re-dispatches and excludes them.
        let trip = run(
            &Trip::new(rider, T0),
            &[assigned[0], assigned[1], arrive, (driver_cancels, 299_999)],
        )
        .expect("legal");
        assert_eq!(trip.state, TripState::Searching);
        assert!(trip.excluded.contains(&d));
        assert_eq!(
            run(&trip, &[(Command::Offer { driver: d }, 0)]),
            Err(TransitionError::DriverExcluded)
        );
    }

    #[test]
    fn timers_that_fire_early_are_refused_and_strangers_cannot_act() {
        let (rider, d, other) = (id(1), id(2), id(3));
        let offered =
            run(&Trip::new(rider, T0), &[(Command::Offer { driver: d }, 0)]).expect("legal");
        assert_eq!(
            run(&offered, &[(Command::ExpireOffer, 14_999)]),
            Err(TransitionError::TooEarly {
                command: "expire_offer"
            })
        );
        let lapsed = run(&offered, &[(Command::ExpireOffer, 15_000)]).expect("legal");
        assert!(lapsed.excluded.contains(&d));
        assert_eq!(
            run(&offered, &[(Command::Accept { driver: other }, 0)]),
            Err(TransitionError::NotYourTrip)
        );
        assert_eq!(
            run(&Trip::new(rider, T0), &[(Command::ExpireSearch, 119_999)]),
            Err(TransitionError::TooEarly {
                command: "expire_search"
            })
        );
        let gone = run(&Trip::new(rider, T0), &[(Command::ExpireSearch, 120_000)]).expect("legal");
        assert_eq!(gone.state.name(), "no_drivers_found");
    }

    fn commands() -> impl Strategy<Value = Vec<(Command, i64)>> {
        let driver = (1u128..4).prop_map(id);
        let command = prop_oneof![
            driver.clone().prop_map(|driver| Command::Offer { driver }),
            driver.clone().prop_map(|driver| Command::Accept { driver }),
            driver
                .clone()
                .prop_map(|driver| Command::Decline { driver }),
            driver.clone().prop_map(|driver| Command::Arrive { driver }),
            driver.clone().prop_map(|driver| Command::Start { driver }),
            driver
                .clone()
                .prop_map(|driver| Command::Complete { driver }),
            (prop::bool::ANY, driver).prop_map(|(rider, driver)| Command::Cancel {
                by: if rider { Party::Rider } else { Party::Driver },
                driver: (!rider).then_some(driver),
            }),
            prop::strategy::Just(Command::ExpireOffer),
            prop::strategy::Just(Command::ExpireSearch),
        ];
        prop::collection::vec((command, 0i64..200_000), 0..40)
    }

    proptest! {
        #[test]
        fn random_command_sequences_keep_every_rule(steps in commands()) {
            let policy = TripPolicy::default();
            let mut trip = Trip::new(id(100), T0);
            let mut now = T0;
            let mut refused_before: BTreeSet<AccountId> = BTreeSet::new();
            let mut accepted_by: Option<AccountId> = None;
            for (command, after) in steps {
                now = now.plus_millis(after);
                let before = trip.clone();
                match apply(&trip, command, now, &policy) {
                    Err(error) => {
                        if before.state.is_final() {
                            prop_assert!(matches!(error, TransitionError::Illegal { .. }), "{error:?}");
                        }
                        if let (TransitionError::Illegal { state, command: name }, false) = (error, before.state.is_final()) {
                            prop_assert_eq!(state, before.state.name());
                            prop_assert_eq!(name, command.name());
                        }
                    }
                    Ok((next, events)) => {
                        prop_assert!(!before.state.is_final(), "a final trip moved: {:?} -> {:?}", before.state, next.state);
                        prop_assert_eq!(next.version, before.version + 1);
                        prop_assert!(!events.is_empty());
                        prop_assert!(next.excluded.is_superset(&before.excluded), "exclusions are never lifted");
                        if let TripState::Offered { driver, .. } = next.state {
                            prop_assert!(!refused_before.contains(&driver), "re-offered to {driver:?}");
                        }
                        if let TripState::DriverAssigned { driver, .. } = next.state {
                            prop_assert_eq!(before.state.driver(), Some(driver), "only the offered driver accepts");
                            accepted_by = Some(driver);
                        }
                        if matches!(next.state, TripState::Arrived { .. } | TripState::InProgress { .. } | TripState::Completed { .. }) {
                            prop_assert_eq!(next.state.driver(), accepted_by);
                        }
                        if let TripState::Cancelled { by: Party::Rider, fee, .. } = next.state {
                            prop_assert!(fee == 0 || fee == policy.late_cancel_fee);
                            if matches!(before.state, TripState::Searching | TripState::Offered { .. }) {
                                prop_assert_eq!(fee, 0, "no fee before a driver is assigned");
                            }
                        }
                        refused_before.extend(next.excluded.iter().copied());
                        trip = next;
                    }
                }
            }
        }
    }
}
