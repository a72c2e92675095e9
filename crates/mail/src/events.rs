//! What the mail service announces: each message it sent (`mail.sent.v1`), for the audit log.

use domain::events::Event;
use domain::{AccountId, EventId, Timestamp, TripId};
use serde::{Deserialize, Serialize};

/// What a message was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    /// A paid trip's receipt.
    Receipt,
    /// A cancellation or no-show fee charged.
    Fee,
    /// Money given back.
    Refund,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receipt => "receipt",
            Self::Fee => "fee",
            Self::Refund => "refund",
        }
    }
}

/// A message went out (to the SMTP server, or as an `.eml` file).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailSent {
    pub trip_id: TripId,
    /// Whom it was written to.
    pub account_id: AccountId,
    pub kind: MailKind,
    pub subject: String,
    pub message_id: String,
    /// The event the message tells of (`payment.captured.v1`, `payment.refunded.v1`).
    pub cause: EventId,
    pub sent_at: Timestamp,
}

impl Event for MailSent {
    const SUBJECT: &'static str = "mail.sent.v1";
}

/// The namespace of the announcements' ids (a UUID v5 of the cause's id).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x8f0c_2b7e_51a4_4c3e_9d6a_77f1_3e0b_a5c2);

impl MailSent {
    /// The announcement's id for a message caused by `cause`: the same for every delivery of the
    /// cause, so a message sent twice (delivery is at least once) is one record downstream.
    pub fn id_for(cause: EventId) -> EventId {
        EventId::from_uuid(uuid::Uuid::new_v5(&NAMESPACE, cause.as_uuid().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_id_is_fixed_by_its_cause() {
        let (a, b) = (
            EventId::from_uuid(uuid::Uuid::now_v7()),
            EventId::from_uuid(uuid::Uuid::now_v7()),
        );
        assert_eq!(MailSent::id_for(a), MailSent::id_for(a));
        assert_ne!(MailSent::id_for(a), MailSent::id_for(b));
        assert_ne!(MailSent::id_for(a), a);
    }
}
