//! The trip service owns the product's ride lifecycle: booking a quoted trip, dispatching it in
//! batches to free drivers of its package (an offer at a time, never to a driver who declined,
//! missed or cancelled it), the driver's accept / decline / arrive / start / complete, either
//! side's cancel with its fee, and the timeouts. Every change is one compare-and-set write of the
//! trip plus its notices (the per-user event log the WebSocket replays), then a `TripNotice` on the
//! bus. The rules are `domain::trip::apply`; the store's unique indexes make "one active trip per
//! driver" and "one open trip per rider" hold under any concurrency, in SQLite and PostgreSQL.
//!
//! It never authenticates (callers arrive as a verified `Caller`), never prices (quotes are
//! verified, not computed) and never talks to sockets.

pub mod config;
mod dispatch;
pub mod module;
pub mod remote;
mod service;
pub mod store;
mod view;

use async_trait::async_trait;
pub use config::TripsConfig;
use domain::events::Event;
use domain::trip::TransitionError;
use domain::{AccountId, Package, Timestamp, TripId};
pub use platform::auth::Caller;
use platform::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

pub use dispatch::{Dispatcher, Round};
pub use module::Module;
pub use remote::RemoteTrip;
pub use service::TripService;
pub use store::{PgTripStore, SqliteTripStore, TripRecord, TripStore};
pub use view::{Money, TripView};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookTrip {
    pub quote_id: String,
    pub package: Package,
    /// The card to hold the fare on (a test payment method of the provider); `None`: the
    /// payment service's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
    /// The client's `Idempotency-Key`: a repeat with the same key gets the first answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// What a rider or driver does to a trip: `POST /v1/trips/{id}/{action}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Accept,
    Decline,
    Arrive,
    Start,
    Complete,
    Cancel,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Self::Accept,
        Self::Decline,
        Self::Arrive,
        Self::Start,
        Self::Complete,
        Self::Cancel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Accept => "accept",
            Self::Decline => "decline",
            Self::Arrive => "arrive",
            Self::Start => "start",
            Self::Complete => "complete",
            Self::Cancel => "cancel",
        }
    }

    /// Everything but cancel is the driver's alone.
    pub fn drivers_only(self) -> bool {
        self != Self::Cancel
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown trip action {s:?}; expected accept, decline, arrive, start, complete or cancel"
                )
            })
    }
}

/// One entry of a user's event log, and the bus event carrying it to the WebSocket sessions.
/// `id` grows with every notice stored; a client reconnecting with the last id it saw is sent
/// every later notice of its own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TripNotice {
    pub id: i64,
    pub kind: NoticeKind,
    pub recipients: Vec<AccountId>,
    pub trip: TripView,
    pub at: Timestamp,
}

/// What a notice tells: its `type` on `/v1/ws` (`trip.offered`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NoticeKind {
    #[serde(rename = "trip.requested")]
    Requested,
    #[serde(rename = "trip.offered")]
    Offered,
    #[serde(rename = "trip.offer_withdrawn")]
    OfferWithdrawn,
    #[serde(rename = "trip.driver_assigned")]
    DriverAssigned,
    #[serde(rename = "trip.driver_arrived")]
    DriverArrived,
    #[serde(rename = "trip.started")]
    Started,
    #[serde(rename = "trip.completed")]
    Completed,
    #[serde(rename = "trip.redispatched")]
    Redispatched,
    #[serde(rename = "trip.cancelled")]
    Cancelled,
    #[serde(rename = "trip.no_drivers_found")]
    NoDriversFound,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 10] = [
        Self::Requested,
        Self::Offered,
        Self::OfferWithdrawn,
        Self::DriverAssigned,
        Self::DriverArrived,
        Self::Started,
        Self::Completed,
        Self::Redispatched,
        Self::Cancelled,
        Self::NoDriversFound,
    ];

    /// Its name (its serde spelling, and the notice log's `kind` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "trip.requested",
            Self::Offered => "trip.offered",
            Self::OfferWithdrawn => "trip.offer_withdrawn",
            Self::DriverAssigned => "trip.driver_assigned",
            Self::DriverArrived => "trip.driver_arrived",
            Self::Started => "trip.started",
            Self::Completed => "trip.completed",
            Self::Redispatched => "trip.redispatched",
            Self::Cancelled => "trip.cancelled",
            Self::NoDriversFound => "trip.no_drivers_found",
        }
    }

    /// The kind named `name`, if any.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for NoticeKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Event for TripNotice {
    const SUBJECT: &'static str = "trip.notice.v1";
}

/// Serialises as its variant (for the RPC between processes); read back through
/// `remote::WireTripError`, whose names must be ones its `&'static str` fields can hold.
#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TripError {
    #[error("{0}")]
    Forbidden(String),
    #[error("no trip {0} of yours")]
    NotFound(TripId),
    #[error("{field}: {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    #[error("cannot {command} a trip that is {state}")]
    Illegal {
        state: &'static str,
        command: &'static str,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("trip store: {0}")]
    Store(String),
    /// The fare could not be held (a declined card, a confirmation needed, the payment service
    /// unavailable).
    #[error(transparent)]
    Payment(payment::PaymentError),
    /// What a remote trip service answered that none of the above is (an unauthenticated call,
    /// an unreachable service, …), kept as it came.
    #[error("{}", .0.message)]
    Remote(ApiError),
}

impl TripError {
    fn from_transition(e: TransitionError, trip: TripId) -> Self {
        match e {
            TransitionError::Illegal { state, command } => Self::Illegal { state, command },
            TransitionError::NotYourTrip => Self::NotFound(trip),
            TransitionError::DriverExcluded => {
                Self::Conflict("this driver may not be offered the trip again".into())
            }
            TransitionError::OfferLapsed => Self::Conflict(e.to_string()),
            TransitionError::TooEarly { command } => {
                Self::Conflict(format!("{command} before its time"))
            }
        }
    }
}

impl From<TripError> for ApiError {
    fn from(e: TripError) -> Self {
        let message = e.to_string();
        match e {
            TripError::Forbidden(_) => ApiError::new(ErrorCode::Forbidden, message),
            TripError::NotFound(_) => ApiError::not_found(message),
            TripError::InvalidField { field, message } => ApiError::invalid_field(field, message),
            TripError::Illegal { state, command } => ApiError::new(ErrorCode::Conflict, message)
                .with_detail("state", state)
                .with_detail("command", command),
            TripError::Conflict(_) => ApiError::new(ErrorCode::Conflict, message),
            TripError::Unavailable(_) => ApiError::new(ErrorCode::Unavailable, message),
            // The store is down or overloaded: the caller may try again shortly.
            TripError::Store(_) => ApiError::unavailable(message).with_retry_after(1),
            TripError::Payment(e) => e.into(),
            TripError::Remote(e) => e,
        }
    }
}

impl From<ApiError> for TripError {
    fn from(e: ApiError) -> Self {
        Self::Remote(e)
    }
}

/// How the gateway (and the WebSocket) reach the trip service.
#[async_trait]
pub trait TripApi: Send + Sync + 'static {
    /// A rider books a quoted trip. Booking the same quote again returns the same trip.
    async fn book(&self, caller: &Caller, request: BookTrip) -> Result<TripView, TripError>;
    async fn get(&self, caller: &Caller, id: TripId) -> Result<TripView, TripError>;
    /// The caller's trips, newest first.
    async fn list(&self, caller: &Caller, limit: u32) -> Result<Vec<TripView>, TripError>;
    async fn act(
        &self,
        caller: &Caller,
        id: TripId,
        action: Action,
    ) -> Result<TripView, TripError> {
        self.act_keyed(caller, id, action, None).await
    }
    /// `act`, run once per `idempotency_key` (a repeat with the same key gets the first answer).
    async fn act_keyed(
        &self,
        caller: &Caller,
        id: TripId,
        action: Action,
        idempotency_key: Option<String>,
    ) -> Result<TripView, TripError>;
    /// The newest notice id of the whole log (0 while empty): a client's `last_event_id` beyond
    /// it names nothing ever sent.
    async fn notice_head(&self) -> Result<i64, TripError>;
    /// The caller's notices after `after` (oldest first, at most `limit`).
    async fn notices(
        &self,
        caller: &Caller,
        after: i64,
        limit: u32,
    ) -> Result<Vec<TripNotice>, TripError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_store_is_a_503_with_retry_after() {
        let api = ApiError::from(TripError::Store("connection refused".into()));
        assert_eq!(api.code, ErrorCode::Unavailable);
        assert_eq!(api.retry_after_s(), Some(1));
    }
}
