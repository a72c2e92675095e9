//! The payment service: a trip's money, through a provider that behaves like Stripe (the
//! `provider` crate, reached over HTTP as Stripe would be).
//!
//! - **Booking** authorizes the quoted fare plus a buffer on the rider's card (a manual-capture
//!   payment intent); a declined card stops the booking with 402 (`TripApi` calls
//!   [`PaymentApi::authorize`] before it stores the trip, and [`PaymentApi::void`] if it then
//!   cannot).
//! - **The trip's end** settles it, from the trip notices (a durable consumer, any instance):
//!   completed → capture the fare (at most once, never more than held, the rest released);
//!   cancelled with a fee → capture only the fee; cancelled free or no driver found → cancel the
//!   hold.
//! - **The provider's webhooks** (`POST /v1/payments/webhook`, signed as Stripe signs) report what
//!   happens on its side alone — an authorization that expired — deduplicated by event id.
//! - **The ledger** (`domain::ledger`): every hold, release, fare, fee and refund is a balanced set
//!   of entries, written in the same transaction as the payment's change; a rider's payments and a
//!   driver's earnings are read from it.

pub mod config;
pub mod events;
pub mod module;
pub mod provider_client;
pub mod remote;
mod service;
mod settle;
pub mod store;
mod webhook;

use async_trait::async_trait;
use domain::{AccountId, Timestamp, TripId};
use platform::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

pub use config::PaymentConfig;
pub use events::{PaymentCaptured, PaymentHoldChanged, PaymentRefunded};
pub use module::Module;
pub use service::PaymentService;
pub use store::{
    PaymentRecord, PaymentStatus, PaymentStore, PgPaymentStore, RefundWrite, SqlitePaymentStore,
};

/// Hold the fare of a trip about to be booked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorize {
    pub trip: TripId,
    pub rider: AccountId,
    /// The quoted fare (minor units); the hold adds `payment.hold_buffer_bps`.
    pub fare: u64,
    /// A payment method of the provider (`pm_card_visa`, …); `None`: `payment.default_method`.
    pub payment_method: Option<String>,
}

/// What a booking's authorization holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorization {
    pub trip: TripId,
    pub held: u64,
    pub status: PaymentStatus,
}

/// A rider's payment, as `GET /v1/me/payments` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentView {
    pub trip_id: TripId,
    pub status: PaymentStatus,
    /// What was (or still is) held on the card.
    pub held: Money,
    pub captured: Money,
    pub refunded: Money,
    /// What the capture paid for: `fare` or `fee`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub charged_for: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An amount of BDT in minor units (poisha).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: i64,
    pub currency: String,
}

impl Money {
    pub fn bdt(amount: i64) -> Self {
        Self {
            amount,
            currency: domain::fare::CURRENCY.to_owned(),
        }
    }
}

/// A driver's earnings, as `GET /v1/drivers/me/earnings` shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Earnings {
    pub total: Money,
    /// Newest first.
    pub days: Vec<DayEarnings>,
    /// Newest first: each trip's fare or fee share, less refunds.
    pub trips: Vec<TripEarnings>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayEarnings {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub amount: Money,
    pub trips: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TripEarnings {
    pub trip_id: TripId,
    pub amount: Money,
    pub at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentError {
    /// The card was declined: the message is the provider's, for the rider.
    #[error("the payment was declined: {0}")]
    Declined(String),
    /// The card needs a confirmation step (3-D Secure): confirm with
    /// `POST /v1/payments/{trip}/confirm`, then book again with the same quote.
    #[error(
        "this card needs a confirmation: POST /v1/payments/{0}/confirm, then book again with the same quote"
    )]
    ConfirmationRequired(TripId),
    #[error("{0}")]
    Invalid(String),
    #[error("no payment for trip {0}")]
    NotFound(TripId),
    #[error("{0}")]
    Conflict(String),
    /// The provider or the store could not be reached: try again.
    #[error("payments are unavailable: {0}")]
    Unavailable(String),
}

impl From<PaymentError> for ApiError {
    fn from(e: PaymentError) -> Self {
        let message = e.to_string();
        match e {
            PaymentError::Declined(_) => ApiError::new(ErrorCode::PaymentRequired, message),
            PaymentError::ConfirmationRequired(trip) => {
                ApiError::new(ErrorCode::PaymentRequired, message)
                    .with_detail("next_action", "confirm")
                    .with_detail("trip_id", trip.to_string())
            }
            PaymentError::Invalid(_) => ApiError::new(ErrorCode::InvalidInput, message),
            PaymentError::NotFound(_) => ApiError::new(ErrorCode::NotFound, message),
            PaymentError::Conflict(_) => ApiError::new(ErrorCode::Conflict, message),
            PaymentError::Unavailable(_) => ApiError::unavailable(message).with_retry_after(2),
        }
    }
}

/// What a caller in another process makes of an error that is not the payment service's own.
impl From<ApiError> for PaymentError {
    fn from(e: ApiError) -> Self {
        Self::Unavailable(e.message)
    }
}

/// How the trip service and the gateway reach the payment service.
#[async_trait]
pub trait PaymentApi: Send + Sync + 'static {
    /// Holds the fare (plus the buffer) for `trip`; idempotent by trip: a trip already held
    /// answers its authorization.
    async fn authorize(&self, request: Authorize) -> Result<Authorization, PaymentError>;
    /// Lets go of the hold of a trip that was not booked after all (nothing if there is none).
    async fn void(&self, trip: TripId) -> Result<(), PaymentError>;
    /// The confirmation step of a card that needs one (the rider's own trip only).
    async fn confirm(&self, rider: AccountId, trip: TripId) -> Result<Authorization, PaymentError>;
    /// The rider's payments, newest first.
    async fn payments_of(&self, rider: AccountId) -> Result<Vec<PaymentView>, PaymentError>;
    async fn earnings_of(&self, driver: AccountId) -> Result<Earnings, PaymentError>;
    /// Gives `amount` (`None`: all that is left) of a captured trip's money back to its rider:
    /// never more than was captured, less what was refunded already. For admins (`by`, recorded).
    /// Run once per `idempotency_key` (a repeat gets the first answer).
    async fn refund(
        &self,
        trip: TripId,
        amount: Option<u64>,
        idempotency_key: String,
        by: AccountId,
    ) -> Result<PaymentView, PaymentError>;
}
