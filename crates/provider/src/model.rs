//! The provider's objects as its API shows them — the PaymentIntent, the Refund, the Event — and
//! the PaymentIntent's state machine. The shapes are Stripe's (a subset of their fields, with the
//! same names and meanings), so a client written against Stripe reads them unchanged.
//!
//! Amounts are integer minor units (poisha); times are unix seconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::ProviderError;

/// The one currency the provider settles in.
pub const CURRENCY: &str = "bdt";
/// The one capture method: an authorization is captured (or canceled) later, explicitly.
pub const CAPTURE_METHOD: &str = "manual";
/// The smallest and the largest amount of a PaymentIntent (Stripe's limits for a
/// two-decimal currency: 10 000 000.00 taka, in poisha).
pub const MIN_AMOUNT: u64 = 1;
pub const MAX_AMOUNT: u64 = 1_000_000_000;

/// A fresh object id: the object's prefix and 32 hex digits (a v7 UUID: time-ordered, so ids
/// sort roughly by creation, with 74 random bits).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Where a PaymentIntent is in its life. The test card decides where it starts:
/// `pm_card_visa` → `requires_capture`, `pm_card_authenticationRequired` → `requires_action`,
/// `pm_card_chargeDeclined` → `requires_payment_method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    /// Declined: nothing is held.
    RequiresPaymentMethod,
    /// The customer must authenticate (3-D Secure) before the card is authorized: `confirm`.
    RequiresAction,
    /// Authorized: `amount_capturable` is held on the card until captured or canceled.
    RequiresCapture,
    /// Captured (`amount_received`); the rest of the hold was released.
    Succeeded,
    /// Nothing held any more.
    Canceled,
}

impl IntentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RequiresPaymentMethod => "requires_payment_method",
            Self::RequiresAction => "requires_action",
            Self::RequiresCapture => "requires_capture",
            Self::Succeeded => "succeeded",
            Self::Canceled => "canceled",
        }
    }

    /// Still holding (or about to hold) the customer's money: what the expiry cancels.
    pub fn is_open(self) -> bool {
        matches!(self, Self::RequiresAction | Self::RequiresCapture)
    }
}

impl std::fmt::Display for IntentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a PaymentIntent was canceled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancellationReason {
    RequestedByCustomer,
    Abandoned,
    /// By the provider: the authorization expired uncaptured. Never accepted from a client.
    Automatic,
}

/// A manual-capture PaymentIntent, Stripe's shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentIntent {
    /// `pi_` and 32 hex digits.
    pub id: String,
    /// Always `"payment_intent"`.
    pub object: String,
    pub amount: u64,
    /// What a capture may still take: the authorized amount while `requires_capture`, else 0.
    pub amount_capturable: u64,
    /// What was captured.
    pub amount_received: u64,
    /// What was refunded of `amount_received` (the sum of the intent's refunds).
    pub amount_refunded: u64,
    pub currency: String,
    pub status: IntentStatus,
    pub payment_method: String,
    /// Always `"manual"`.
    pub capture_method: String,
    pub metadata: BTreeMap<String, String>,
    pub created: i64,
    /// When an uncaptured authorization is canceled automatically (`created` +
    /// `provider.authorization_ttl_s`); it matters only while the intent is open.
    pub authorization_expires_at: i64,
    pub cancellation_reason: Option<CancellationReason>,
}

/// The outcome of a card at confirmation: which status the intent takes.
pub(crate) enum CardOutcome {
    Authorized,
    NeedsAuthentication,
    Declined,
}

/// The test payment methods (Stripe's names) and what each does; `None`: no such method.
pub(crate) fn card_outcome(payment_method: &str) -> Option<CardOutcome> {
    match payment_method {
        "pm_card_visa" => Some(CardOutcome::Authorized),
        "pm_card_authenticationRequired" => Some(CardOutcome::NeedsAuthentication),
        "pm_card_chargeDeclined" => Some(CardOutcome::Declined),
        _ => None,
    }
}

/// A checked request to create a PaymentIntent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewIntent {
    pub amount: u64,
    pub payment_method: String,
    pub metadata: BTreeMap<String, String>,
}

impl PaymentIntent {
    /// A new intent, confirmed at once with its card (Stripe's `confirm=true`).
    pub(crate) fn confirmed(new: NewIntent, outcome: &CardOutcome, now_s: i64, ttl_s: i64) -> Self {
        let status = match outcome {
            CardOutcome::Authorized => IntentStatus::RequiresCapture,
            CardOutcome::NeedsAuthentication => IntentStatus::RequiresAction,
            CardOutcome::Declined => IntentStatus::RequiresPaymentMethod,
        };
        Self {
            id: new_id("pi"),
            object: "payment_intent".to_owned(),
            amount: new.amount,
            amount_capturable: if status == IntentStatus::RequiresCapture {
                new.amount
            } else {
                0
            },
            amount_received: 0,
            amount_refunded: 0,
            currency: CURRENCY.to_owned(),
            status,
            payment_method: new.payment_method,
            capture_method: CAPTURE_METHOD.to_owned(),
            metadata: new.metadata,
            created: now_s,
            authorization_expires_at: now_s.saturating_add(ttl_s),
            cancellation_reason: None,
        }
    }

    /// The customer authenticated: the card is authorized for the whole amount.
    pub(crate) fn confirm(&self) -> Result<Self, ProviderError> {
        if self.status != IntentStatus::RequiresAction {
            return Err(ProviderError::unexpected_state(self, "confirm"));
        }
        Ok(Self {
            status: IntentStatus::RequiresCapture,
            amount_capturable: self.amount,
            ..self.clone()
        })
    }

    /// Captures `amount` (default: all that is capturable) and releases the rest.
    pub(crate) fn capture(&self, amount: Option<u64>) -> Result<Self, ProviderError> {
        if self.status != IntentStatus::RequiresCapture {
            return Err(ProviderError::unexpected_state(self, "capture"));
        }
        let amount = amount.unwrap_or(self.amount_capturable);
        if amount < MIN_AMOUNT {
            return Err(ProviderError::amount_too_small("amount_to_capture"));
        }
        if amount > self.amount_capturable {
            return Err(ProviderError::invalid_param(
                "amount_too_large",
                "amount_to_capture",
                format!(
                    "The amount to capture ({amount}) is greater than the amount capturable ({}).",
                    self.amount_capturable
                ),
            ));
        }
        Ok(Self {
            status: IntentStatus::Succeeded,
            amount_capturable: 0,
            amount_received: amount,
            ..self.clone()
        })
    }

    /// Releases the hold (or gives up the pending authentication).
    pub(crate) fn cancel(&self, reason: Option<CancellationReason>) -> Result<Self, ProviderError> {
        if !self.status.is_open() {
            return Err(ProviderError::unexpected_state(self, "cancel"));
        }
        Ok(Self {
            status: IntentStatus::Canceled,
            amount_capturable: 0,
            cancellation_reason: reason,
            ..self.clone()
        })
    }

    /// Refunds `amount` (default: all that is not refunded yet) of what was captured: the intent
    /// with its new `amount_refunded`, and the amount.
    pub(crate) fn refund(&self, amount: Option<u64>) -> Result<(Self, u64), ProviderError> {
        if self.status != IntentStatus::Succeeded {
            return Err(
                ProviderError::unexpected_state(self, "refund").with_param("payment_intent")
            );
        }
        let refundable = self.amount_received.saturating_sub(self.amount_refunded);
        if refundable == 0 {
            return Err(ProviderError::invalid_param(
                "charge_already_refunded",
                "payment_intent",
                format!("PaymentIntent {} has already been refunded.", self.id),
            ));
        }
        let amount = amount.unwrap_or(refundable);
        if amount < MIN_AMOUNT {
            return Err(ProviderError::amount_too_small("amount"));
        }
        if amount > refundable {
            return Err(ProviderError::invalid_param(
                "amount_too_large",
                "amount",
                format!(
                    "Refund amount ({amount}) is greater than the unrefunded amount captured ({refundable})."
                ),
            ));
        }
        Ok((
            Self {
                amount_refunded: self.amount_refunded + amount,
                ..self.clone()
            },
            amount,
        ))
    }
}

/// A refund of (part of) a captured PaymentIntent; refunds succeed at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// `re_` and 32 hex digits.
    pub id: String,
    /// Always `"refund"`.
    pub object: String,
    pub amount: u64,
    pub payment_intent: String,
    pub currency: String,
    /// Always `"succeeded"`.
    pub status: String,
    pub created: i64,
}

impl Refund {
    pub(crate) fn new(intent: &PaymentIntent, amount: u64, now_s: i64) -> Self {
        Self {
            id: new_id("re"),
            object: "refund".to_owned(),
            amount,
            payment_intent: intent.id.clone(),
            currency: intent.currency.clone(),
            status: "succeeded".to_owned(),
            created: now_s,
        }
    }
}

/// What happened, as a webhook reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// Authorized (at creation, or by `confirm` after authentication): `amount_capturable` is
    /// held.
    #[serde(rename = "payment_intent.amount_capturable_updated")]
    AmountCapturableUpdated,
    #[serde(rename = "payment_intent.requires_action")]
    RequiresAction,
    /// Declined.
    #[serde(rename = "payment_intent.payment_failed")]
    PaymentFailed,
    /// Captured.
    #[serde(rename = "payment_intent.succeeded")]
    Succeeded,
    /// Canceled, by a client or by the expiry (`cancellation_reason: "automatic"`).
    #[serde(rename = "payment_intent.canceled")]
    Canceled,
    /// A refund succeeded (`data.object` is the Refund).
    #[serde(rename = "charge.refunded")]
    ChargeRefunded,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AmountCapturableUpdated => "payment_intent.amount_capturable_updated",
            Self::RequiresAction => "payment_intent.requires_action",
            Self::PaymentFailed => "payment_intent.payment_failed",
            Self::Succeeded => "payment_intent.succeeded",
            Self::Canceled => "payment_intent.canceled",
            Self::ChargeRefunded => "charge.refunded",
        }
    }

    /// The event an intent's new status announces, if any.
    pub(crate) fn of_intent(status: IntentStatus) -> Self {
        match status {
            IntentStatus::RequiresCapture => Self::AmountCapturableUpdated,
            IntentStatus::RequiresAction => Self::RequiresAction,
            IntentStatus::RequiresPaymentMethod => Self::PaymentFailed,
            IntentStatus::Succeeded => Self::Succeeded,
            IntentStatus::Canceled => Self::Canceled,
        }
    }
}

/// The object an event is about, as it was right after the change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventObject {
    PaymentIntent(PaymentIntent),
    Refund(Refund),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventData {
    pub object: EventObject,
}

/// A webhook event, Stripe's shape: `{id, object: "event", type, created, data: {object}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `evt_` and 32 hex digits; the same on every delivery attempt (receivers deduplicate by
    /// it).
    pub id: String,
    /// Always `"event"`.
    pub object: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub created: i64,
    pub data: EventData,
}

impl Event {
    pub(crate) fn new(kind: EventType, object: EventObject, now_s: i64) -> Self {
        Self {
            id: new_id("evt"),
            object: "event".to_owned(),
            kind,
            created: now_s,
            data: EventData { object },
        }
    }

    /// The event announcing `intent`'s status.
    pub(crate) fn of_intent(intent: &PaymentIntent, now_s: i64) -> Self {
        Self::new(
            EventType::of_intent(intent.status),
            EventObject::PaymentIntent(intent.clone()),
            now_s,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authorized(amount: u64) -> PaymentIntent {
        PaymentIntent::confirmed(
            NewIntent {
                amount,
                payment_method: "pm_card_visa".into(),
                metadata: BTreeMap::new(),
            },
            &CardOutcome::Authorized,
            1_000,
            60,
        )
    }

    #[test]
    fn ids_have_their_prefix_and_32_hex_digits() {
        let id = new_id("pi");
        let hex = id.strip_prefix("pi_").expect("prefix");
        assert_eq!(hex.len(), 32);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(new_id("pi"), new_id("pi"));
    }

    #[test]
    fn a_partial_capture_releases_the_rest_and_refunds_stay_within_it() {
        let intent = authorized(500);
        assert_eq!(
            (
                intent.status,
                intent.amount_capturable,
                intent.authorization_expires_at
            ),
            (IntentStatus::RequiresCapture, 500, 1_060)
        );
        assert_eq!(
            intent.capture(Some(501)).expect_err("above").object.code,
            "amount_too_large"
        );
        let captured = intent.capture(Some(300)).expect("captures");
        assert_eq!(
            (
                captured.status,
                captured.amount_capturable,
                captured.amount_received
            ),
            (IntentStatus::Succeeded, 0, 300)
        );
        assert!(captured.capture(None).is_err(), "at most once");
        assert!(captured.cancel(None).is_err());
        let (refunded, amount) = captured.refund(Some(200)).expect("refunds");
        assert_eq!((refunded.amount_refunded, amount), (200, 200));
        assert_eq!(
            refunded.refund(Some(101)).expect_err("above").object.code,
            "amount_too_large"
        );
        let (all, rest) = refunded.refund(None).expect("the rest");
        assert_eq!((all.amount_refunded, rest), (300, 100));
        assert_eq!(
            all.refund(None).expect_err("nothing left").object.code,
            "charge_already_refunded"
        );
    }

    #[test]
    fn events_serialize_with_stripe_type_names() {
        let event = Event::of_intent(&authorized(100), 1_000);
        let json = serde_json::to_value(&event).expect("serializes");
        assert_eq!(json["type"], "payment_intent.amount_capturable_updated");
        assert_eq!(json["object"], "event");
        assert_eq!(json["data"]["object"]["object"], "payment_intent");
        assert_eq!(
            json["data"]["object"]["cancellation_reason"],
            serde_json::Value::Null
        );
        let back: Event = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, event);
        for kind in [
            EventType::AmountCapturableUpdated,
            EventType::RequiresAction,
            EventType::PaymentFailed,
            EventType::Succeeded,
            EventType::Canceled,
            EventType::ChargeRefunded,
        ] {
            assert_eq!(
                serde_json::to_value(kind).expect("serializes"),
                serde_json::Value::from(kind.as_str())
            );
        }
    }
}
