//! The provider's store seam: PaymentIntents (every change a compare-and-set on `version`),
//! refunds, the saved responses of idempotent requests, and the webhook deliveries — an outbox:
//! each event is written in the same transaction as the change it reports, so an event is sent
//! if and only if its change committed.
//!
//! Both implementations share their SQL (`sql.rs`: SQLite and PostgreSQL both take `$n`
//! parameters and `RETURNING`) and pass `provider_store_contract!`.

#[doc(hidden)]
pub mod contract;
mod postgres;
mod sql;
mod sqlite;

use async_trait::async_trait;

pub use postgres::PgProviderStore;
pub use sqlite::SqliteProviderStore;

use crate::model::{Event, PaymentIntent, Refund};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The intent changed since it was read (`version` moved on): read it again and decide anew.
    #[error("the payment intent changed since it was read")]
    Stale,
    #[error("provider store: {0}")]
    Backend(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Backend(e.to_string())
    }
}

/// An intent as stored, with the version its next change must name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredIntent {
    pub intent: PaymentIntent,
    pub version: u64,
}

/// A request carrying an Idempotency-Key, as the store keys and compares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedRequest {
    /// Whose key it is (a digest of the API key): keys of different API keys never meet.
    pub scope: String,
    pub key: String,
    /// A digest of the method, the path and the body: a repeat must match it.
    pub fingerprint: String,
}

/// What the store makes of a keyed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Begun {
    /// The key is new (or expired, or abandoned by a crashed first request): run the request,
    /// then `finish_request` (or `release_request`) with `owner`.
    Started { owner: String },
    /// The first request finished: answer its response again.
    Replay { status: u16, body: String },
    /// The key was first used with another request.
    Mismatch,
    /// The first request is still running.
    InFlight,
}

/// How long keys live and how long a running first request holds its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyTimes {
    pub now_ms: i64,
    /// A key created before this is expired: it is taken over as if new.
    pub expired_before_ms: i64,
    /// A first request not finished by then is taken to have died with its process.
    pub lease_until_ms: i64,
}

/// A webhook delivery claimed for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub event_id: String,
    /// The event's JSON, exactly the bytes that are signed and sent.
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Given up after the last attempt.
    Failed,
}

impl DeliveryState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            other => Err(StoreError::Backend(format!(
                "stored delivery state {other:?}"
            ))),
        }
    }
}

/// A delivery as stored (for operators and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryStatus {
    pub event_id: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
}

#[async_trait]
pub trait ProviderStore: Send + Sync + 'static {
    /// Stores a new intent (at version 1) with its events.
    async fn insert_intent(
        &self,
        intent: &PaymentIntent,
        events: &[Event],
    ) -> Result<(), StoreError>;

    async fn intent(&self, id: &str) -> Result<Option<StoredIntent>, StoreError>;

    /// Replaces the intent if it is still at `expected_version` (`Stale` otherwise), with its
    /// events; returns the new version.
    async fn update_intent(
        &self,
        next: &PaymentIntent,
        expected_version: u64,
        events: &[Event],
    ) -> Result<u64, StoreError>;

    /// Stores a refund and its intent's new `amount_refunded` (a compare-and-set like
    /// `update_intent`), with the events, atomically.
    async fn insert_refund(
        &self,
        refund: &Refund,
        intent: &PaymentIntent,
        expected_version: u64,
        events: &[Event],
    ) -> Result<(), StoreError>;

    async fn refund(&self, id: &str) -> Result<Option<Refund>, StoreError>;

    /// Open intents (`requires_capture`, `requires_action`) whose authorization expired at or
    /// before `now_s`, the longest expired first.
    async fn expired_intents(
        &self,
        now_s: i64,
        limit: u32,
    ) -> Result<Vec<StoredIntent>, StoreError>;

    /// Claims `request`'s key for a first run, or says why not.
    async fn begin_request(
        &self,
        request: &KeyedRequest,
        times: KeyTimes,
    ) -> Result<Begun, StoreError>;

    /// Saves the first run's response for replays (only if `owner` still holds the key).
    async fn finish_request(
        &self,
        request: &KeyedRequest,
        owner: &str,
        status: u16,
        body: &str,
    ) -> Result<(), StoreError>;

    /// Frees a key whose first run saved nothing (it failed before, or in, the store): the next
    /// request with it runs afresh.
    async fn release_request(&self, request: &KeyedRequest, owner: &str) -> Result<(), StoreError>;

    /// Deletes keys created before `before_ms`; returns how many.
    async fn forget_requests(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// Claims up to `limit` pending deliveries due at `now_ms` for one attempt each: none is
    /// claimed again (by this or another instance) before `claim_until_ms`.
    async fn claim_deliveries(
        &self,
        now_ms: i64,
        limit: u32,
        claim_until_ms: i64,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// The receiver acknowledged the delivery.
    async fn delivery_succeeded(&self, id: i64, at_ms: i64) -> Result<(), StoreError>;

    /// The attempt failed with `error`: try again at `retry_at_ms`, or give up (`None`).
    async fn delivery_failed(
        &self,
        id: i64,
        error: &str,
        retry_at_ms: Option<i64>,
        at_ms: i64,
    ) -> Result<(), StoreError>;

    async fn delivery(&self, event_id: &str) -> Result<Option<DeliveryStatus>, StoreError>;

    /// Deletes deliveries delivered or given up before `before_ms`; returns how many.
    async fn forget_deliveries(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// The connection a backend's transaction bodies write on.
type Connection<S> = <<S as Backend>::Db as sqlx::Database>::Connection;

/// Which sqlx database a store runs on (for the shared SQL).
trait Backend {
    type Db: sqlx::Database;
}
