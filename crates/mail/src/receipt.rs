//! The messages, built from a capture and the rider's account (pure: no IO).

use domain::ledger::TransactionKind;
use lettre::Message;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use payment::{PaymentCaptured, PaymentRefunded};

/// `39000` poisha → `BDT 390.00`.
pub fn money(amount: u64, currency: &str) -> String {
    format!("{currency} {}.{:02}", amount / 100, amount % 100)
}

/// The subject and the text of the message for `capture`.
pub fn text(capture: &PaymentCaptured, rider_name: &str) -> (String, String) {
    let amount = money(capture.amount, &capture.currency);
    let released = money(
        capture.held.saturating_sub(capture.amount),
        &capture.currency,
    );
    match capture.kind {
        TransactionKind::Fee => (
            format!("Rickshaw: a cancellation fee of {amount}"),
            format!(
                "Hello {rider_name},\n\n\
                 Your trip {trip} was cancelled with a fee of {amount}, charged to {method}.\n\
                 The rest of the amount held at booking, {released}, is released.\n\n\
                 Rickshaw\n",
                trip = capture.trip_id,
                method = capture.payment_method,
            ),
        ),
        _ => (
            format!("Your Rickshaw receipt: {amount}"),
            format!(
                "Hello {rider_name},\n\n\
                 Thank you for riding with Rickshaw.\n\n\
                 Trip:     {trip}\n\
                 Fare:     {amount}\n\
                 Paid by:  {method}\n\
                 Released: {released} (held at booking above the fare)\n\n\
                 Rickshaw\n",
                trip = capture.trip_id,
                method = capture.payment_method,
            ),
        ),
    }
}

/// The subject and the text of the notice of `refund`.
pub fn refund_text(refund: &PaymentRefunded, rider_name: &str) -> (String, String) {
    let amount = money(refund.amount, &refund.currency);
    (
        format!("Rickshaw: a refund of {amount}"),
        format!(
            "Hello {rider_name},\n\n\
             {amount} of what you paid for trip {trip} is on its way back to your card.\n\
             Refunded so far: {refunded} of {captured}.\n\n\
             Rickshaw\n",
            trip = refund.trip_id,
            refunded = money(refund.refunded, &refund.currency),
            captured = money(refund.captured, &refund.currency),
        ),
    )
}

/// A message of `subject` and `body`, its `Message-ID` the event's.
/// The `Message-ID` of the message caused by `event`.
pub fn message_id(event: &str) -> String {
    format!("<{event}@rickshaw>")
}

pub fn letter(
    event: &str,
    from: &Mailbox,
    to: Mailbox,
    (subject, body): (String, String),
) -> Result<Message, String> {
    Message::builder()
        .message_id(Some(message_id(event)))
        .from(from.clone())
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| e.to_string())
}

/// The whole message from `from` to `to`; its `Message-ID` is the event's, so a receipt sent
/// twice (delivery is at least once) is recognisably the same message.
pub fn message(
    capture: &PaymentCaptured,
    event: &str,
    from: &Mailbox,
    to: Mailbox,
    rider_name: &str,
) -> Result<Message, String> {
    letter(event, from, to, text(capture, rider_name))
}

#[cfg(test)]
mod tests {
    use domain::{AccountId, Timestamp, TripId};

    use super::*;

    fn capture(kind: TransactionKind, amount: u64) -> PaymentCaptured {
        PaymentCaptured {
            trip_id: TripId::from_uuid(uuid_of(1)),
            rider_id: AccountId::from_uuid(uuid_of(2)),
            driver_id: None,
            kind,
            amount,
            currency: "BDT".into(),
            held: 24_000,
            payment_method: "pm_card_visa".into(),
            captured_at: Timestamp::from_millis(0),
        }
    }

    fn uuid_of(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    #[test]
    fn receipts_and_fee_notices_show_money_as_money() {
        assert_eq!(money(39_000, "BDT"), "BDT 390.00");
        assert_eq!(money(5, "BDT"), "BDT 0.05");
        let (subject, body) = text(&capture(TransactionKind::Fare, 20_000), "Asha");
        assert_eq!(subject, "Your Rickshaw receipt: BDT 200.00");
        assert!(body.contains("Fare:     BDT 200.00"), "{body}");
        assert!(body.contains("Released: BDT 40.00"), "{body}");
        let (subject, body) = text(&capture(TransactionKind::Fee, 5_000), "Asha");
        assert_eq!(subject, "Rickshaw: a cancellation fee of BDT 50.00");
        assert!(body.contains("BDT 190.00, is released"), "{body}");
        let from: Mailbox = "Rickshaw <r@example.com>".parse().expect("address");
        let to: Mailbox = "asha@example.com".parse().expect("address");
        let message =
            message(&capture(TransactionKind::Fare, 1), "e1", &from, to, "Asha").expect("builds");
        let raw = String::from_utf8(message.formatted()).expect("text");
        assert!(raw.contains("To: asha@example.com"), "{raw}");
        assert!(raw.contains("Message-ID: <e1@rickshaw>"), "{raw}");
        let refund = PaymentRefunded {
            trip_id: TripId::from_uuid(uuid_of(1)),
            rider_id: AccountId::from_uuid(uuid_of(2)),
            amount: 5_000,
            refunded: 5_000,
            captured: 20_000,
            currency: "BDT".into(),
            refunded_at: Timestamp::from_millis(0),
            refunded_by: None,
        };
        let (subject, body) = refund_text(&refund, "Asha");
        assert_eq!(subject, "Rickshaw: a refund of BDT 50.00");
        assert!(body.contains("BDT 50.00 of BDT 200.00"), "{body}");
    }
}
