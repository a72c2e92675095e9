//! What the audit log keeps of an event (pure: no IO): its kind, who did it, the trip and the
//! accounts it concerns, read from the payload of each known subject. An event of a subject this
//! module does not know is kept too, by its subject, with nobody named.

use domain::events::Event;
use domain::events::{DriverRated, DriverStatusChanged};
use domain::trip::Party;
use domain::{AccountId, Role, TripId};
use mail::MailSent;
use payment::{PaymentCaptured, PaymentHoldChanged, PaymentRefunded};
use platform::bus::Envelope;
use rating::TripRated;
use serde::{Deserialize, Serialize};
use trip::{NoticeKind, TripNotice};

/// Who did it: a rider, a driver or an admin (with their account), or the system (a service's
/// own decision: dispatch, settlement, mail).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Rider,
    Driver,
    Admin,
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rider => "rider",
            Self::Driver => "driver",
            Self::Admin => "admin",
            Self::System => "system",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        [Self::Rider, Self::Driver, Self::Admin, Self::System]
            .into_iter()
            .find(|k| k.as_str() == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
}

impl Actor {
    pub const SYSTEM: Self = Self {
        kind: ActorKind::System,
        account_id: None,
    };

    fn rider(account: AccountId) -> Self {
        Self {
            kind: ActorKind::Rider,
            account_id: Some(account),
        }
    }

    fn driver(account: Option<AccountId>) -> Self {
        match account {
            Some(account) => Self {
                kind: ActorKind::Driver,
                account_id: Some(account),
            },
            None => Self::SYSTEM,
        }
    }

    fn of_role(role: Role, account: AccountId) -> Self {
        let kind = match role {
            Role::Rider => ActorKind::Rider,
            Role::Driver => ActorKind::Driver,
            Role::Admin => ActorKind::Admin,
        };
        Self {
            kind,
            account_id: Some(account),
        }
    }
}

/// What is kept of one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    pub envelope: Envelope,
    pub kind: String,
    pub actor: Actor,
    pub trip: Option<TripId>,
    pub accounts: Vec<AccountId>,
}

impl Recorded {
    /// The record of `envelope`. A payload its subject's type cannot read is kept as a record of
    /// its subject alone, never dropped.
    pub fn of(envelope: Envelope) -> Self {
        let described = describe(&envelope);
        let (kind, actor, trip, mut accounts) = described.unwrap_or_else(|| {
            (
                envelope
                    .subject
                    .rsplit_once(".v")
                    .map_or(envelope.subject.clone(), |(kind, _)| kind.to_owned()),
                Actor::SYSTEM,
                None,
                Vec::new(),
            )
        });
        accounts.sort_by_key(ToString::to_string);
        accounts.dedup();
        Self {
            envelope,
            kind,
            actor,
            trip,
            accounts,
        }
    }
}

type Description = (String, Actor, Option<TripId>, Vec<AccountId>);

fn describe(envelope: &Envelope) -> Option<Description> {
    let subject = envelope.subject.as_str();
    if subject == TripNotice::SUBJECT {
        let notice: TripNotice = envelope.decode().ok()?;
        let view = &notice.trip;
        let actor = match notice.kind {
            NoticeKind::Requested => Actor::rider(view.rider_id),
            NoticeKind::DriverAssigned
            | NoticeKind::DriverArrived
            | NoticeKind::Started
            | NoticeKind::Completed => Actor::driver(view.driver_id),
            NoticeKind::Cancelled => match view.cancelled_by {
                Some(Party::Rider) => Actor::rider(view.rider_id),
                Some(Party::Driver) => Actor::driver(view.driver_id),
                None => Actor::SYSTEM,
            },
            NoticeKind::Offered
            | NoticeKind::OfferWithdrawn
            | NoticeKind::Redispatched
            | NoticeKind::NoDriversFound => Actor::SYSTEM,
        };
        let mut accounts = notice.recipients.clone();
        accounts.push(view.rider_id);
        accounts.extend(view.driver_id);
        return Some((
            notice.kind.as_str().to_owned(),
            actor,
            Some(view.id),
            accounts,
        ));
    }
    if subject == PaymentCaptured::SUBJECT {
        let e: PaymentCaptured = envelope.decode().ok()?;
        let mut accounts = vec![e.rider_id];
        accounts.extend(e.driver_id);
        return Some((
            "payment.captured".into(),
            Actor::SYSTEM,
            Some(e.trip_id),
            accounts,
        ));
    }
    if subject == PaymentRefunded::SUBJECT {
        let e: PaymentRefunded = envelope.decode().ok()?;
        let actor = e.refunded_by.map_or(Actor::SYSTEM, |admin| Actor {
            kind: ActorKind::Admin,
            account_id: Some(admin),
        });
        let mut accounts = vec![e.rider_id];
        accounts.extend(e.refunded_by);
        return Some(("payment.refunded".into(), actor, Some(e.trip_id), accounts));
    }
    if subject == PaymentHoldChanged::SUBJECT {
        let e: PaymentHoldChanged = envelope.decode().ok()?;
        // Holds are made and refused at the rider's booking or confirmation; they are let go or
        // lapse by settlement and the provider.
        let actor = match e.status {
            payment::PaymentStatus::Authorized
            | payment::PaymentStatus::RequiresConfirmation
            | payment::PaymentStatus::Declined => Actor::rider(e.rider_id),
            _ => Actor::SYSTEM,
        };
        return Some((
            format!("payment.{}", e.status.as_str()),
            actor,
            Some(e.trip_id),
            vec![e.rider_id],
        ));
    }
    if subject == TripRated::SUBJECT {
        let e: TripRated = envelope.decode().ok()?;
        return Some((
            "rating.trip_rated".into(),
            Actor::of_role(e.rater_role, e.rater_id),
            Some(e.trip_id),
            vec![e.rater_id, e.ratee_id],
        ));
    }
    if subject == MailSent::SUBJECT {
        let e: MailSent = envelope.decode().ok()?;
        return Some((
            format!("mail.{}", e.kind.as_str()),
            Actor::SYSTEM,
            Some(e.trip_id),
            vec![e.account_id],
        ));
    }
    if subject == DriverStatusChanged::SUBJECT {
        let e: DriverStatusChanged = envelope.decode().ok()?;
        let kind = if e.online {
            "driver.online"
        } else {
            "driver.offline"
        };
        return Some((
            kind.into(),
            Actor::driver(Some(e.driver)),
            None,
            vec![e.driver],
        ));
    }
    if subject == DriverRated::SUBJECT {
        // The course protocol's anonymous rating of a driver by car number: nobody to name.
        let _: DriverRated = envelope.decode().ok()?;
        return Some((
            "rating.driver_rated".into(),
            Actor::SYSTEM,
            None,
            Vec::new(),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use domain::Timestamp;
    use domain::ledger::TransactionKind;

    use super::*;

    fn id<T: From<uuid::Uuid>>(n: u128) -> T {
        T::from(uuid::Uuid::from_u128(n))
    }

    fn envelope<E: Event>(event: &E) -> Envelope {
        Envelope::from_event(event, id(99), Timestamp::from_millis(5)).expect("encodes")
    }

    #[test]
    fn a_capture_names_the_trip_rider_and_driver() {
        let capture = PaymentCaptured {
            trip_id: id(1),
            rider_id: id(2),
            driver_id: Some(id(3)),
            kind: TransactionKind::Fare,
            amount: 100,
            currency: "BDT".into(),
            held: 200,
            payment_method: "pm_card_visa".into(),
            captured_at: Timestamp::from_millis(5),
        };
        let r = Recorded::of(envelope(&capture));
        assert_eq!(r.kind, "payment.captured");
        assert_eq!(r.actor, Actor::SYSTEM);
        assert_eq!(r.trip, Some(id(1)));
        assert_eq!(r.accounts.len(), 2);
        assert!(r.accounts.contains(&id(2)) && r.accounts.contains(&id(3)));
    }

    #[test]
    fn a_refund_names_its_admin() {
        let refund = PaymentRefunded {
            trip_id: id(1),
            rider_id: id(2),
            amount: 50,
            refunded: 50,
            captured: 100,
            currency: "BDT".into(),
            refunded_at: Timestamp::from_millis(5),
            refunded_by: Some(id(7)),
        };
        let r = Recorded::of(envelope(&refund));
        assert_eq!(r.kind, "payment.refunded");
        assert_eq!(r.actor.kind, ActorKind::Admin);
        assert_eq!(r.actor.account_id, Some(id(7)));
    }

    #[test]
    fn a_rating_is_its_raters_act() {
        let rated = TripRated {
            trip_id: id(1),
            rater_role: Role::Driver,
            rater_id: id(3),
            ratee_id: id(2),
            stars: 4,
            comment: None,
            tags: vec![],
            rated_at: Timestamp::from_millis(5),
        };
        let r = Recorded::of(envelope(&rated));
        assert_eq!(r.kind, "rating.trip_rated");
        assert_eq!(r.actor.kind, ActorKind::Driver);
        assert_eq!(r.actor.account_id, Some(id(3)));
    }

    #[test]
    fn an_unknown_or_unreadable_event_is_kept_by_its_subject() {
        let mut e = envelope(&TripRated {
            trip_id: id(1),
            rater_role: Role::Rider,
            rater_id: id(2),
            ratee_id: id(3),
            stars: 5,
            comment: None,
            tags: vec![],
            rated_at: Timestamp::from_millis(5),
        });
        e.subject = "matching.ride_matched.v1".into();
        let r = Recorded::of(e.clone());
        assert_eq!(r.kind, "matching.ride_matched");
        assert_eq!(r.actor, Actor::SYSTEM);
        assert!(r.accounts.is_empty() && r.trip.is_none());
        e.subject = PaymentCaptured::SUBJECT.into();
        assert_eq!(
            Recorded::of(e).kind,
            "payment.captured",
            "a payload its type cannot read is still kept"
        );
    }
}
