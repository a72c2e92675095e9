//! What every `PaymentStore` must do, as functions each store's tests call
//! (`payment_store_contract!`).

use domain::ledger::{self, LedgerAccount, TransactionKind};
use domain::{AccountId, Timestamp, TripId};

use super::{PaymentRecord, PaymentStatus, PaymentStore, RefundWrite};

fn id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

pub fn authorized(rider: AccountId, at: i64) -> PaymentRecord {
    PaymentRecord {
        trip: TripId::from_uuid(id()),
        rider,
        driver: None,
        intent: Some(format!("pi_{}", id().simple())),
        payment_method: "pm_card_visa".into(),
        status: PaymentStatus::Authorized,
        held: 24_000,
        captured: 0,
        refunded: 0,
        charge_kind: None,
        version: 1,
        created_at: Timestamp::from_millis(at),
        updated_at: Timestamp::from_millis(at),
    }
}

pub async fn a_trip_has_one_payment(store: &dyn PaymentStore) {
    let record = authorized(AccountId::from_uuid(id()), 10);
    assert!(store.insert(&record).await.expect("insert"));
    let mut again = record.clone();
    again.held = 1;
    assert!(!store.insert(&again).await.expect("insert"), "one per trip");
    assert_eq!(
        store.get(record.trip).await.expect("get"),
        Some(record.clone())
    );
    let intent = record.intent.clone().expect("intent");
    assert_eq!(
        store.by_intent(&intent).await.expect("by intent"),
        Some(record)
    );
    assert_eq!(store.get(TripId::from_uuid(id())).await.expect("get"), None);
}

pub async fn a_change_and_its_entries_commit_together_or_not_at_all(store: &dyn PaymentStore) {
    let (rider, driver) = (AccountId::from_uuid(id()), AccountId::from_uuid(id()));
    let record = authorized(rider, 10);
    store.insert(&record).await.expect("insert");
    let before = store.ledger_sum().await.expect("sum");
    let captured = PaymentRecord {
        driver: Some(driver),
        status: PaymentStatus::Captured,
        captured: 20_000,
        charge_kind: Some(TransactionKind::Fare),
        version: 2,
        updated_at: Timestamp::from_millis(20),
        ..record.clone()
    };
    let entries = [
        ledger::release(rider, 24_000),
        ledger::charge(TransactionKind::Fare, rider, Some(driver), 20_000, 2_000),
    ];
    assert!(
        store
            .update(&captured, 7, &entries, &[])
            .await
            .expect("update")
            .is_none(),
        "a stale version changes nothing"
    );
    assert!(
        store
            .entries_of(LedgerAccount::Driver(driver), 10)
            .await
            .expect("entries")
            .is_empty()
    );
    let event = platform::bus::Envelope::new(
        platform::clock::new_id(),
        "payment.captured.v1".into(),
        Timestamp::from_millis(20),
        Default::default(),
        b"{}".to_vec(),
    );
    let written = store
        .update(&captured, 1, &entries, std::slice::from_ref(&event))
        .await
        .expect("update")
        .expect("current");
    assert_eq!(written.len(), 1);
    assert_eq!(written[0].envelope, event, "its event is in the outbox");
    assert_eq!(store.get(record.trip).await.expect("get"), Some(captured));
    assert_eq!(store.ledger_sum().await.expect("sum"), before, "balanced");
    let earned = store
        .entries_of(LedgerAccount::Driver(driver), 10)
        .await
        .expect("entries");
    assert_eq!(earned.len(), 1);
    assert_eq!(
        (earned[0].trip, earned[0].kind, earned[0].amount),
        (record.trip, TransactionKind::Fare, 16_000)
    );
}

pub async fn a_riders_payments_come_newest_first(store: &dyn PaymentStore) {
    let rider = AccountId::from_uuid(id());
    let (old, new) = (authorized(rider, 10), authorized(rider, 20));
    store.insert(&old).await.expect("insert");
    store.insert(&new).await.expect("insert");
    store
        .insert(&authorized(AccountId::from_uuid(id()), 30))
        .await
        .expect("insert");
    let mine = store.of_rider(rider, 10).await.expect("list");
    assert_eq!(mine, [new, old]);
}

pub async fn a_provider_event_is_handled_once(store: &dyn PaymentStore) {
    let event = format!("evt_{}", id().simple());
    let at = Timestamp::from_millis(5);
    assert!(!store.seen(&event).await.expect("seen"));
    assert!(
        store
            .first_sight(&event, "payment_intent.canceled", at)
            .await
            .expect("first")
    );
    assert!(
        !store
            .first_sight(&event, "payment_intent.canceled", at)
            .await
            .expect("again")
    );
    assert!(store.seen(&event).await.expect("seen"));
}

pub async fn a_refund_is_recorded_once_by_its_id(store: &dyn PaymentStore) {
    let (rider, driver) = (AccountId::from_uuid(id()), AccountId::from_uuid(id()));
    let captured = PaymentRecord {
        driver: Some(driver),
        status: PaymentStatus::Captured,
        captured: 20_000,
        charge_kind: Some(TransactionKind::Fare),
        ..authorized(rider, 10)
    };
    store.insert(&captured).await.expect("insert");
    let refunded = PaymentRecord {
        refunded: 5_000,
        version: 2,
        ..captured.clone()
    };
    let entries = [ledger::refund(rider, Some(driver), 20_000, 0, 5_000, 2_000)];
    let refund = format!("re_{}", id().simple());
    let first = store
        .record_refund(&refunded, 1, &entries, &[], &refund, 5_000)
        .await
        .expect("records");
    assert!(matches!(first, RefundWrite::Recorded(_)), "{first:?}");
    let again = PaymentRecord {
        refunded: 10_000,
        version: 3,
        ..refunded.clone()
    };
    assert_eq!(
        store
            .record_refund(&again, 2, &entries, &[], &refund, 5_000)
            .await
            .expect("answers"),
        RefundWrite::AlreadyRecorded,
        "the same refund, reported again"
    );
    assert_eq!(store.get(captured.trip).await.expect("get"), Some(refunded));
    assert_eq!(
        store
            .record_refund(
                &again,
                1,
                &entries,
                &[],
                &format!("re_{}", id().simple()),
                5_000
            )
            .await
            .expect("answers"),
        RefundWrite::Changed,
        "another refund over a stale version"
    );
    let back = store
        .entries_of(LedgerAccount::Rider(rider), 10)
        .await
        .expect("entries");
    assert_eq!(back.len(), 1, "one refund's entries: {back:?}");
}

/// One `#[tokio::test]` per clause for the store built by `$make` (an async block).
#[macro_export]
macro_rules! payment_store_contract {
    ($make:expr) => {
        $crate::payment_store_contract!(@tests $make;
            a_trip_has_one_payment,
            a_change_and_its_entries_commit_together_or_not_at_all,
            a_riders_payments_come_newest_first,
            a_provider_event_is_handled_once,
            a_refund_is_recorded_once_by_its_id,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let store = $make.await;
                $crate::store::contract::$name(&store).await;
            }
        )*
    };
}
