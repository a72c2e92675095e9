//! The contract every bus adapter must pass. Instantiate it once per adapter:
//! `platform::bus_contract_suite!(async { MyBus::connect(…).await });`
//! Each test uses its own subject prefix, so adapters backed by a shared server are fine.

use std::time::Duration;

use super::{Bus, Delivery, Envelope, SubscribeOptions, Subscription};
use crate::clock;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

/// A prefix no other test run uses.
pub fn prefix() -> String {
    format!("contract.t{}", uuid::Uuid::now_v7().simple())
}

pub fn envelope(subject: &str, body: &str) -> Envelope {
    Envelope::new(
        clock::new_id(),
        subject.to_owned(),
        clock::now(),
        Default::default(),
        body.as_bytes().to_vec(),
    )
}

/// Every envelope `sub` delivers until it is quiet for `quiet` (each acked).
pub async fn drain(sub: &mut Subscription, quiet: std::time::Duration) -> Vec<Envelope> {
    let mut envelopes = Vec::new();
    while let Ok(Some(delivery)) = tokio::time::timeout(quiet, sub.next()).await {
        envelopes.push(delivery.envelope.clone());
        let _ = delivery.ack().await;
    }
    envelopes
}

pub async fn next(sub: &mut Subscription) -> Delivery {
    tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a delivery within 5 s")
        .expect("subscription open")
}

pub async fn assert_quiet(sub: &mut Subscription) {
    if let Ok(Some(d)) = tokio::time::timeout(QUIET, sub.next()).await {
        panic!("expected no delivery, got {:?}", d.envelope.subject);
    }
}

fn body(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.envelope.payload).into_owned()
}

pub async fn fan_out_reaches_every_ephemeral_subscriber(bus: &dyn Bus) {
    let p = prefix();
    let mut a = bus
        .subscribe(SubscribeOptions::ephemeral(format!("{p}.>")))
        .await
        .expect("subscribe");
    let mut b = bus
        .subscribe(SubscribeOptions::ephemeral(format!("{p}.x")))
        .await
        .expect("subscribe");
    bus.publish(envelope(&format!("{p}.x"), "hello"))
        .await
        .expect("publish");
    for sub in [&mut a, &mut b] {
        let d = next(sub).await;
        assert_eq!(body(&d), "hello");
        assert_eq!(d.attempt, 1);
        d.ack().await.expect("ack");
    }
}

pub async fn filters_select_subjects(bus: &dyn Bus) {
    let p = prefix();
    let mut star = bus
        .subscribe(SubscribeOptions::ephemeral(format!("{p}.*.created")))
        .await
        .expect("subscribe");
    bus.publish(envelope(&format!("{p}.ride.created"), "1"))
        .await
        .expect("publish");
    bus.publish(envelope(&format!("{p}.ride.cancelled"), "2"))
        .await
        .expect("publish");
    bus.publish(envelope(&format!("{p}.ride.x.created"), "3"))
        .await
        .expect("publish");
    let d = next(&mut star).await;
    assert_eq!(body(&d), "1");
    d.ack().await.expect("ack");
    assert_quiet(&mut star).await;
}

pub async fn a_group_shares_each_message_once(bus: &dyn Bus) {
    let p = prefix();
    let group = format!("g{}", uuid::Uuid::now_v7().simple());
    let filter = format!("{p}.work");
    let mut one = bus
        .subscribe(SubscribeOptions::durable(&filter, &group))
        .await
        .expect("subscribe");
    let mut two = bus
        .subscribe(SubscribeOptions::durable(&filter, &group))
        .await
        .expect("subscribe");
    for i in 0..20 {
        bus.publish(envelope(&filter, &i.to_string()))
            .await
            .expect("publish");
    }
    let mut seen = Vec::new();
    while seen.len() < 20 {
        let d = tokio::select! {
            d = next(&mut one) => d,
            d = next(&mut two) => d,
        };
        seen.push(body(&d));
        d.ack().await.expect("ack");
    }
    seen.sort_by_key(|s| s.parse::<u32>().unwrap_or(u32::MAX));
    assert_eq!(seen, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_quiet(&mut one).await;
    assert_quiet(&mut two).await;
}

pub async fn nak_redelivers_with_a_higher_attempt(bus: &dyn Bus) {
    let p = prefix();
    let subject = format!("{p}.retry");
    let mut sub = bus
        .subscribe(SubscribeOptions::durable(
            &subject,
            format!("g{}", uuid::Uuid::now_v7().simple()),
        ))
        .await
        .expect("subscribe");
    bus.publish(envelope(&subject, "again"))
        .await
        .expect("publish");
    let first = next(&mut sub).await;
    assert_eq!(first.attempt, 1);
    first.nak(Duration::from_millis(50)).await.expect("nak");
    let second = next(&mut sub).await;
    assert_eq!(body(&second), "again");
    assert_eq!(second.attempt, 2);
    second.ack().await.expect("ack");
    assert_quiet(&mut sub).await;
}

pub async fn an_unsettled_delivery_is_redelivered(bus: &dyn Bus) {
    let p = prefix();
    let subject = format!("{p}.dropped");
    let mut sub = bus
        .subscribe(SubscribeOptions::durable(
            &subject,
            format!("g{}", uuid::Uuid::now_v7().simple()),
        ))
        .await
        .expect("subscribe");
    bus.publish(envelope(&subject, "lost?"))
        .await
        .expect("publish");
    drop(next(&mut sub).await);
    let again = next(&mut sub).await;
    assert_eq!(body(&again), "lost?");
    assert!(again.attempt >= 2);
    again.ack().await.expect("ack");
}

pub async fn poison_goes_to_the_dead_letter_subject(bus: &dyn Bus) {
    let p = prefix();
    let subject = format!("{p}.poison");
    let mut dead = bus
        .subscribe(SubscribeOptions::ephemeral(format!("deadletter.{subject}")))
        .await
        .expect("subscribe");
    let mut options =
        SubscribeOptions::durable(&subject, format!("g{}", uuid::Uuid::now_v7().simple()));
    options.max_deliver = 3;
    let mut sub = bus.subscribe(options).await.expect("subscribe");
    let original = envelope(&subject, "bad");
    bus.publish(original.clone()).await.expect("publish");
    for attempt in 1..=3 {
        let d = next(&mut sub).await;
        assert_eq!(d.attempt, attempt);
        d.nak(Duration::from_millis(10)).await.expect("nak");
    }
    let d = next(&mut dead).await;
    assert_eq!(body(&d), "bad");
    assert_eq!(
        d.envelope.headers.get("original-id"),
        Some(&original.id.to_string())
    );
    d.ack().await.expect("ack");
    assert_quiet(&mut sub).await;
}

pub async fn a_repeated_event_id_is_delivered_once(bus: &dyn Bus) {
    let p = prefix();
    let subject = format!("{p}.dedup");
    let mut sub = bus
        .subscribe(SubscribeOptions::ephemeral(&subject))
        .await
        .expect("subscribe");
    let e = envelope(&subject, "once");
    bus.publish(e.clone()).await.expect("publish");
    bus.publish(e).await.expect("publish again");
    next(&mut sub).await.ack().await.expect("ack");
    assert_quiet(&mut sub).await;
}

pub async fn invalid_subjects_are_refused(bus: &dyn Bus) {
    assert!(bus.publish(envelope("a.>", "x")).await.is_err());
    assert!(bus.publish(envelope("a..b", "x")).await.is_err());
    assert!(
        bus.subscribe(SubscribeOptions::ephemeral("a.>.b"))
            .await
            .is_err()
    );
}

/// Generates one `#[tokio::test]` per contract clause for the bus built by `$make` (an async block
/// evaluating to something implementing `Bus`).
#[macro_export]
macro_rules! bus_contract_suite {
    ($make:expr) => {
        $crate::bus_contract_suite!(@tests $make;
            fan_out_reaches_every_ephemeral_subscriber,
            filters_select_subjects,
            a_group_shares_each_message_once,
            nak_redelivers_with_a_higher_attempt,
            an_unsettled_delivery_is_redelivered,
            poison_goes_to_the_dead_letter_subject,
            a_repeated_event_id_is_delivered_once,
            invalid_subjects_are_refused,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let bus = $make.await;
                $crate::bus::contract::$name(&bus).await;
            }
        )*
    };
}
