//! The bus contract, and JetStream's delivery semantics, on a real NATS server.

use std::time::Duration;

use platform::bus::contract::{envelope, next, prefix};
use platform::bus::{Bus, NatsBus, NatsBusConfig, SubscribeOptions};

fn config() -> NatsBusConfig {
    NatsBusConfig {
        url: crate::nats_url(),
        stream_prefix: "RICKSHAW_TEST".to_owned(),
        ack_wait: Duration::from_secs(1),
        max_age: Duration::from_secs(600),
        durable_inactive_threshold: Some(Duration::from_secs(120)),
        ..NatsBusConfig::default()
    }
}

async fn bus() -> NatsBus {
    NatsBus::connect(config())
        .await
        .expect("a NATS server with JetStream (set RICKSHAW_TEST_NATS_URL)")
}

platform::bus_contract_suite!(bus());

fn group() -> String {
    format!("g{}", uuid::Uuid::now_v7().simple())
}

#[tokio::test]
async fn a_durable_group_keeps_what_was_published_while_nobody_listened() {
    let bus = bus().await;
    let subject = format!("{}.kept", prefix());
    let group = group();
    drop(
        bus.subscribe(SubscribeOptions::durable(&subject, &group))
            .await
            .expect("subscribe"),
    );
    bus.publish(envelope(&subject, "while away"))
        .await
        .expect("publish");
    let mut back = bus
        .subscribe(SubscribeOptions::durable(&subject, &group))
        .await
        .expect("resubscribe");
    let d = next(&mut back).await;
    assert_eq!(d.envelope.payload, b"while away");
    d.ack().await.expect("ack");
}

#[tokio::test]
async fn a_delivery_whose_consumer_died_is_redelivered_after_ack_wait() {
    let bus = bus().await;
    let subject = format!("{}.crash", prefix());
    let group = group();
    let mut doomed = bus
        .subscribe(SubscribeOptions::durable(&subject, &group))
        .await
        .expect("subscribe");
    bus.publish(envelope(&subject, "in flight"))
        .await
        .expect("publish");
    let first = next(&mut doomed).await;
    // The process dies: no ack, no nak, nothing.
    std::mem::forget(first);
    drop(doomed);
    let mut survivor = bus
        .subscribe(SubscribeOptions::durable(&subject, &group))
        .await
        .expect("subscribe");
    let again = next(&mut survivor).await;
    assert_eq!(again.envelope.payload, b"in flight");
    assert_eq!(again.attempt, 2);
    again.ack().await.expect("ack");
}

#[tokio::test]
async fn ids_and_headers_survive_the_trip() {
    let bus = bus().await;
    let subject = format!("{}.meta", prefix());
    let mut sub = bus
        .subscribe(SubscribeOptions::ephemeral(&subject))
        .await
        .expect("subscribe");
    let mut sent = envelope(&subject, "{}");
    sent.headers
        .insert("traceparent".into(), "00-abc-def-01".into());
    bus.publish(sent.clone()).await.expect("publish");
    let got = next(&mut sub).await;
    assert_eq!(got.envelope, sent);
    got.ack().await.expect("ack");
}

#[tokio::test]
async fn every_stream_is_bounded_in_age_and_bytes_and_drops_its_oldest_past_them() {
    const MAX_BYTES: i64 = 2 << 20;
    let bus = NatsBus::connect(NatsBusConfig {
        max_bytes: MAX_BYTES,
        max_age: Duration::from_secs(300),
        ..config()
    })
    .await
    .expect("a NATS server with JetStream (set RICKSHAW_TEST_NATS_URL)");
    // A subject of its own first token: a stream no other test shares.
    let token = format!("bounded{}", uuid::Uuid::now_v7().simple());
    let subject = format!("{token}.flood");
    let body = "x".repeat(64 * 1024);
    for _ in 0..64 {
        bus.publish(envelope(&subject, &body))
            .await
            .expect("publish");
    }
    let name = format!("RICKSHAW_TEST_{}", token.to_ascii_uppercase());
    let mut stream = bus.jetstream().get_stream(&name).await.expect("stream");
    let info = stream.info().await.expect("info").clone();
    assert_eq!(info.config.max_bytes, MAX_BYTES);
    assert_eq!(info.config.max_age, Duration::from_secs(300));
    assert_eq!(
        info.config.discard,
        async_nats::jetstream::stream::DiscardPolicy::Old
    );
    assert!(
        info.state.bytes <= MAX_BYTES as u64,
        "{} bytes kept",
        info.state.bytes
    );
    assert!(info.state.first_sequence > 1, "the oldest were dropped");
    assert_eq!(info.state.last_sequence, 64, "every publish was accepted");
    bus.jetstream()
        .delete_stream(&name)
        .await
        .expect("cleaned up");
}
