//! The contract every provider store must pass; instantiate with `provider_store_contract!`.
//!
//! Stores backed by a shared server (the test PostgreSQL database) keep rows between runs: every
//! clause uses fresh ids, and the clauses that list rows across ids (expired intents, due
//! deliveries) settle whatever they list, so old rows never pile up in front of new ones.

use std::collections::BTreeMap;

use super::{Begun, DeliveryState, KeyTimes, KeyedRequest, ProviderStore, StoreError};
use crate::model::{
    CancellationReason, Event, EventObject, EventType, IntentStatus, PaymentIntent, Refund, new_id,
};

/// An intent in `status`, created now, its authorization expiring at `expires_at`.
fn intent(status: IntentStatus, amount: u64, expires_at: i64) -> PaymentIntent {
    PaymentIntent {
        id: new_id("pi"),
        object: "payment_intent".into(),
        amount,
        amount_capturable: if status == IntentStatus::RequiresCapture {
            amount
        } else {
            0
        },
        amount_received: if status == IntentStatus::Succeeded {
            amount
        } else {
            0
        },
        amount_refunded: 0,
        currency: "bdt".into(),
        status,
        payment_method: "pm_card_visa".into(),
        capture_method: "manual".into(),
        metadata: BTreeMap::from([("trip".to_owned(), "t-1".to_owned())]),
        created: crate::service::now_s(),
        authorization_expires_at: expires_at,
        cancellation_reason: None,
    }
}

/// Far enough ahead that no expiry in these tests reaches it.
fn later() -> i64 {
    crate::service::now_s() + 3600
}

fn captured(intent: &PaymentIntent) -> PaymentIntent {
    PaymentIntent {
        status: IntentStatus::Succeeded,
        amount_capturable: 0,
        amount_received: intent.amount_capturable,
        ..intent.clone()
    }
}

pub async fn an_intent_round_trips_with_its_version(store: &dyn ProviderStore) {
    let created = intent(IntentStatus::RequiresCapture, 1_250, later());
    assert_eq!(store.intent(&created.id).await.expect("reads"), None);
    store.insert_intent(&created, &[]).await.expect("stored");
    let stored = store
        .intent(&created.id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!((stored.intent, stored.version), (created.clone(), 1));
    assert!(
        store.insert_intent(&created, &[]).await.is_err(),
        "an id is stored once"
    );
}

pub async fn a_change_from_a_stale_version_is_refused(store: &dyn ProviderStore) {
    let created = intent(IntentStatus::RequiresCapture, 900, later());
    store.insert_intent(&created, &[]).await.expect("stored");
    let next = captured(&created);
    assert_eq!(store.update_intent(&next, 1, &[]).await, Ok(2));
    let canceled = PaymentIntent {
        status: IntentStatus::Canceled,
        cancellation_reason: Some(CancellationReason::Abandoned),
        ..created.clone()
    };
    assert_eq!(
        store.update_intent(&canceled, 1, &[]).await,
        Err(StoreError::Stale)
    );
    let stored = store
        .intent(&created.id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!((stored.intent, stored.version), (next, 2));
    let missing = intent(IntentStatus::RequiresCapture, 1, later());
    assert_eq!(
        store.update_intent(&missing, 1, &[]).await,
        Err(StoreError::Stale),
        "no such intent: nothing to set"
    );
}

pub async fn of_concurrent_changes_exactly_one_wins(store: &dyn ProviderStore) {
    let created = intent(IntentStatus::RequiresCapture, 5_000, later());
    store.insert_intent(&created, &[]).await.expect("stored");
    let attempts: Vec<PaymentIntent> = (1..=10)
        .map(|n| PaymentIntent {
            amount_received: n * 100,
            ..captured(&created)
        })
        .collect();
    let outcomes = futures_util::future::join_all(
        attempts
            .iter()
            .map(|next| store.update_intent(next, 1, &[])),
    )
    .await;
    let won: Vec<usize> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.is_ok().then_some(i))
        .collect();
    assert_eq!(won.len(), 1, "exactly one wins: {outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(2) | Err(StoreError::Stale))),
        "{outcomes:?}"
    );
    let stored = store
        .intent(&created.id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(
        stored.intent, attempts[won[0]],
        "the winner's change is stored"
    );
}

pub async fn a_refund_is_stored_with_its_intent_or_not_at_all(store: &dyn ProviderStore) {
    let paid = captured(&intent(IntentStatus::RequiresCapture, 2_000, later()));
    store.insert_intent(&paid, &[]).await.expect("stored");
    let refunded = PaymentIntent {
        amount_refunded: 500,
        ..paid.clone()
    };
    let refund = Refund::new(&paid, 500, crate::service::now_s());
    assert_eq!(
        store.insert_refund(&refund, &refunded, 7, &[]).await,
        Err(StoreError::Stale)
    );
    assert_eq!(store.refund(&refund.id).await.expect("reads"), None);
    store
        .insert_refund(&refund, &refunded, 1, &[])
        .await
        .expect("refunded");
    assert_eq!(
        store.refund(&refund.id).await.expect("reads"),
        Some(refund.clone())
    );
    let stored = store.intent(&paid.id).await.expect("reads").expect("found");
    assert_eq!((stored.intent.amount_refunded, stored.version), (500, 2));
    assert_eq!(store.refund(&new_id("re")).await.expect("reads"), None);
}

pub async fn expired_open_intents_are_listed(store: &dyn ProviderStore) {
    // Expiry times long past (1970): intents of the other clauses never expire this early.
    let expired = intent(IntentStatus::RequiresCapture, 100, 1_000);
    let waiting = intent(IntentStatus::RequiresAction, 100, 1_500);
    let not_yet = intent(IntentStatus::RequiresCapture, 100, 2_500);
    let settled = captured(&intent(IntentStatus::RequiresCapture, 100, 1_000));
    for i in [&expired, &waiting, &not_yet, &settled] {
        store.insert_intent(i, &[]).await.expect("stored");
    }
    // Cancel all that is listed, as the expiry does, until nothing is.
    let mut listed = Vec::new();
    for _ in 0..100 {
        let batch = store.expired_intents(2_000, 10).await.expect("lists");
        if batch.is_empty() {
            break;
        }
        assert!(
            batch
                .windows(2)
                .all(|w| w[0].intent.authorization_expires_at
                    <= w[1].intent.authorization_expires_at),
            "the longest expired first"
        );
        for stored in batch {
            assert!(stored.intent.status.is_open());
            assert!(stored.intent.authorization_expires_at <= 2_000);
            let canceled = stored
                .intent
                .cancel(Some(CancellationReason::Automatic))
                .expect("open");
            match store.update_intent(&canceled, stored.version, &[]).await {
                Ok(_) | Err(StoreError::Stale) => {}
                Err(e) => panic!("cannot cancel: {e}"),
            }
            listed.push(stored.intent.id);
        }
    }
    assert!(listed.contains(&expired.id));
    assert!(listed.contains(&waiting.id));
    assert!(!listed.contains(&not_yet.id));
    assert!(!listed.contains(&settled.id));
    assert!(
        store
            .expired_intents(2_000, 10)
            .await
            .expect("lists")
            .iter()
            .all(|s| s.intent.id != expired.id),
        "a canceled intent is not listed again"
    );
}

fn keyed(key: &str, fingerprint: &str) -> KeyedRequest {
    KeyedRequest {
        scope: "scope-a".into(),
        key: key.to_owned(),
        fingerprint: fingerprint.to_owned(),
    }
}

fn at(now_ms: i64) -> KeyTimes {
    KeyTimes {
        now_ms,
        expired_before_ms: now_ms - 86_400_000,
        lease_until_ms: now_ms + 60_000,
    }
}

pub async fn an_idempotency_key_runs_once_then_replays(store: &dyn ProviderStore) {
    let key = new_id("key");
    let now = crate::service::now_ms();
    let first = keyed(&key, "fp-1");
    let Begun::Started { owner } = store.begin_request(&first, at(now)).await.expect("begins")
    else {
        panic!("a new key starts");
    };
    assert_eq!(
        store.begin_request(&first, at(now + 1)).await,
        Ok(Begun::InFlight)
    );
    assert_eq!(
        store.begin_request(&keyed(&key, "fp-2"), at(now + 1)).await,
        Ok(Begun::Mismatch)
    );
    let other_scope = KeyedRequest {
        scope: "scope-b".into(),
        ..keyed(&key, "fp-2")
    };
    assert!(
        matches!(
            store.begin_request(&other_scope, at(now + 1)).await,
            Ok(Begun::Started { .. })
        ),
        "keys are per scope"
    );
    store
        .finish_request(&first, "someone-else", 500, "{}")
        .await
        .expect("no-op");
    assert_eq!(
        store.begin_request(&first, at(now + 2)).await,
        Ok(Begun::InFlight),
        "only the owner finishes"
    );
    store
        .finish_request(&first, &owner, 402, r#"{"error":{}}"#)
        .await
        .expect("finishes");
    for _ in 0..2 {
        assert_eq!(
            store.begin_request(&first, at(now + 3)).await,
            Ok(Begun::Replay {
                status: 402,
                body: r#"{"error":{}}"#.into()
            })
        );
    }
    assert_eq!(
        store.begin_request(&keyed(&key, "fp-2"), at(now + 3)).await,
        Ok(Begun::Mismatch)
    );
}

pub async fn a_key_is_free_again_when_released_abandoned_or_expired(store: &dyn ProviderStore) {
    let now = crate::service::now_ms();
    // Released: the next request runs afresh, even a different one.
    let key = new_id("key");
    let Ok(Begun::Started { owner }) = store.begin_request(&keyed(&key, "a"), at(now)).await else {
        panic!("starts");
    };
    store
        .release_request(&keyed(&key, "a"), &owner)
        .await
        .expect("releases");
    assert!(matches!(
        store.begin_request(&keyed(&key, "b"), at(now)).await,
        Ok(Begun::Started { .. })
    ));

    // Abandoned: the first run's lease ended without an answer (its process died).
    let key = new_id("key");
    let Ok(Begun::Started { owner: dead }) = store.begin_request(&keyed(&key, "a"), at(now)).await
    else {
        panic!("starts");
    };
    let after_lease = now + 60_001;
    let Ok(Begun::Started { owner: taker }) = store
        .begin_request(&keyed(&key, "a"), at(after_lease))
        .await
    else {
        panic!("an abandoned key is taken over");
    };
    store
        .finish_request(&keyed(&key, "a"), &dead, 200, "late")
        .await
        .expect("no-op");
    store
        .finish_request(&keyed(&key, "a"), &taker, 200, "taker")
        .await
        .expect("finishes");
    assert_eq!(
        store
            .begin_request(&keyed(&key, "a"), at(after_lease))
            .await,
        Ok(Begun::Replay {
            status: 200,
            body: "taker".into()
        })
    );

    // Expired: a day later the key is new again.
    let a_day_later = after_lease + 86_400_001;
    assert!(matches!(
        store
            .begin_request(&keyed(&key, "b"), at(a_day_later))
            .await,
        Ok(Begun::Started { .. })
    ));

    // Forgotten: deleted by the cleanup. (Created in 1970, so that the cleanup leaves the keys
    // of the clauses running beside this one alone.)
    let key = new_id("key");
    let Ok(Begun::Started { owner }) = store.begin_request(&keyed(&key, "a"), at(1_000)).await
    else {
        panic!("starts");
    };
    store
        .finish_request(&keyed(&key, "a"), &owner, 200, "{}")
        .await
        .expect("finishes");
    assert!(store.forget_requests(1_001).await.expect("forgets") >= 1);
    assert!(matches!(
        store.begin_request(&keyed(&key, "b"), at(1_002)).await,
        Ok(Begun::Started { .. })
    ));
}

pub async fn events_are_delivered_through_claims(store: &dyn ProviderStore) {
    let now_s = crate::service::now_s();
    let created = intent(IntentStatus::RequiresCapture, 700, later());
    let authorized = Event::of_intent(&created, now_s);
    store
        .insert_intent(&created, std::slice::from_ref(&authorized))
        .await
        .expect("stored");
    let paid = captured(&created);
    let succeeded = Event::of_intent(&paid, now_s);
    assert_eq!(succeeded.kind, EventType::Succeeded);
    let refund = Refund::new(&paid, 700, now_s);
    let refunded = Event::new(
        EventType::ChargeRefunded,
        EventObject::Refund(refund.clone()),
        now_s,
    );
    store
        .update_intent(&paid, 1, std::slice::from_ref(&succeeded))
        .await
        .expect("captured");
    let fully_refunded = PaymentIntent {
        amount_refunded: 700,
        ..paid.clone()
    };
    store
        .insert_refund(&refund, &fully_refunded, 2, std::slice::from_ref(&refunded))
        .await
        .expect("refunded");
    let ours = [&authorized.id, &succeeded.id, &refunded.id];

    let now = crate::service::now_ms();
    let claimed = store
        .claim_deliveries(now, 1_000, now + 10_000)
        .await
        .expect("claims");
    // Rows of earlier runs that died mid-test are settled, so they never crowd out new ones.
    for other in claimed.iter().filter(|d| !ours.contains(&&d.event_id)) {
        store
            .delivery_succeeded(other.id, now)
            .await
            .expect("settles");
    }
    let mine: Vec<_> = claimed
        .iter()
        .filter(|d| ours.contains(&&d.event_id))
        .collect();
    assert_eq!(mine.len(), 3, "every event is due at once: {claimed:?}");
    for delivery in &mine {
        assert_eq!(delivery.attempts, 1);
        let event: Event = serde_json::from_str(&delivery.body).expect("the event's JSON");
        assert_eq!(&event.id, &delivery.event_id);
        if event.id == refunded.id {
            assert_eq!(event, refunded, "the body is the event as it was emitted");
        }
    }
    let again = store
        .claim_deliveries(now + 1, 1_000, now + 10_000)
        .await
        .expect("claims");
    assert!(
        again.iter().all(|d| !ours.contains(&&d.event_id)),
        "a claimed delivery is not claimed again before its claim ends"
    );

    let by_id = |event: &str| mine.iter().find(|d| d.event_id == event).map(|d| d.id);
    let (first, second, third) = (
        by_id(&authorized.id).expect("claimed"),
        by_id(&succeeded.id).expect("claimed"),
        by_id(&refunded.id).expect("claimed"),
    );
    store
        .delivery_failed(first, "the endpoint answered 500", Some(now + 5_000), now)
        .await
        .expect("recorded");
    store
        .delivery_succeeded(second, now)
        .await
        .expect("recorded");
    store
        .delivery_failed(third, "connection refused", None, now)
        .await
        .expect("recorded");

    let status = store
        .delivery(&authorized.id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(
        (status.state, status.attempts, status.next_attempt_ms),
        (DeliveryState::Pending, 1, now + 5_000)
    );
    assert_eq!(
        status.last_error.as_deref(),
        Some("the endpoint answered 500")
    );
    let retried = store
        .claim_deliveries(now + 5_000, 1_000, now + 20_000)
        .await
        .expect("claims");
    let retry = retried
        .iter()
        .find(|d| d.event_id == authorized.id)
        .expect("due again after its backoff");
    assert_eq!(retry.attempts, 2);
    store
        .delivery_succeeded(retry.id, now + 5_000)
        .await
        .expect("recorded");
    for other in retried.iter().filter(|d| d.event_id != authorized.id) {
        store
            .delivery_succeeded(other.id, now)
            .await
            .expect("settles");
    }
    let state = |event: &str| {
        let event = event.to_owned();
        async move {
            store
                .delivery(&event)
                .await
                .expect("reads")
                .map(|s| s.state)
        }
    };
    assert_eq!(state(&authorized.id).await, Some(DeliveryState::Delivered));
    assert_eq!(state(&succeeded.id).await, Some(DeliveryState::Delivered));
    assert_eq!(state(&refunded.id).await, Some(DeliveryState::Failed));

    assert!(
        store
            .forget_deliveries(now + 10_000)
            .await
            .expect("forgets")
            >= 3,
        "finished deliveries are forgotten"
    );
    assert_eq!(store.delivery(&refunded.id).await.expect("reads"), None);
}

/// One `#[tokio::test]` per clause for the store built by `$make` (an async block).
#[macro_export]
macro_rules! provider_store_contract {
    ($make:expr) => {
        $crate::provider_store_contract!(@tests $make;
            an_intent_round_trips_with_its_version,
            a_change_from_a_stale_version_is_refused,
            of_concurrent_changes_exactly_one_wins,
            a_refund_is_stored_with_its_intent_or_not_at_all,
            expired_open_intents_are_listed,
            an_idempotency_key_runs_once_then_replays,
            a_key_is_free_again_when_released_abandoned_or_expired,
            events_are_delivered_through_claims,
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
