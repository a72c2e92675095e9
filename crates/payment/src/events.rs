//! What the payment service announces (through its outbox: written with the payment's change,
//! published after the commit, relayed if that publish is lost).

use domain::events::Event;
use domain::ledger::TransactionKind;
use domain::{AccountId, Timestamp, TripId};
use serde::{Deserialize, Serialize};

use crate::PaymentStatus;

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
    /// The admin who gave it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refunded_by: Option<AccountId>,
}

impl Event for PaymentRefunded {
    const SUBJECT: &'static str = "payment.refunded.v1";
}

/// A hold on a rider's card changed without money being taken: held (`authorized`), waiting for
/// the card's confirmation step, let go (`voided`), lapsed (`expired`) or refused (`declined`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentHoldChanged {
    pub trip_id: TripId,
    pub rider_id: AccountId,
    pub status: PaymentStatus,
    /// What is (or was) held, minor units of `currency`.
    pub held: u64,
    pub currency: String,
    pub payment_method: String,
    pub at: Timestamp,
}

impl Event for PaymentHoldChanged {
    const SUBJECT: &'static str = "payment.hold_changed.v1";
}

impl PaymentHoldChanged {
    /// The statuses announced by this event (the others are announced as captures, or not at
    /// all: `authorizing` and `failed` are the service's own bookkeeping).
    pub fn announces(status: PaymentStatus) -> bool {
        matches!(
            status,
            PaymentStatus::Authorized
                | PaymentStatus::RequiresConfirmation
                | PaymentStatus::Voided
                | PaymentStatus::Expired
                | PaymentStatus::Declined
        )
    }
}
