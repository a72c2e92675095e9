//! What the payment service announces (through its outbox: written with the payment's change,
//! published after the commit, relayed if that publish is lost).

use domain::events::Event;
use domain::ledger::TransactionKind;
use domain::{AccountId, Timestamp, TripId};
use serde::{Deserialize, Serialize};

/// Money was taken from a rider's card: a trip's fare, or a cancellation or no-show fee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCaptured {
    pub trip_id: TripId,
    pub rider_id: AccountId,
    pub driver_id: Option<AccountId>,
    /// `fare` or `fee`.
    pub kind: TransactionKind,
    /// Minor units (poisha) of `currency`.
    pub amount: u64,
    pub currency: String,
    /// What had been held; the rest was released.
    pub held: u64,
    pub payment_method: String,
    pub captured_at: Timestamp,
}

impl Event for PaymentCaptured {
    const SUBJECT: &'static str = "payment.captured.v1";
}

/// Money was given back to a rider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    pub trip_id: TripId,
    pub rider_id: AccountId,
    /// This refund, and all refunded so far (minor units of `currency`).
    pub amount: u64,
    pub refunded: u64,
    pub captured: u64,
    pub currency: String,
    pub refunded_at: Timestamp,
}

impl Event for PaymentRefunded {
    const SUBJECT: &'static str = "payment.refunded.v1";
}
