//! The distributed mode: services in separate processes (here: separate `System`s) on a private
//! NATS JetStream server and a fresh PostgreSQL database.

use std::time::Duration;

use serde_json::json;
use testkit::{NatsServer, StatusCode, TestDatabase, spawn_distributed};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn the_course_flow_crosses_processes_and_ratings_outlive_them() {
    let nats = NatsServer::start().await;
    let db = TestDatabase::create().await;
    let backend = spawn_distributed("rider,supply,matching,rating,communication", &nats, &db).await;
    let edge = spawn_distributed("gateway", &nats, &db).await;
    let other_comm = spawn_distributed("communication", &nats, &db).await;

    // Sessions on two different communication instances both get the match.
    let mut rider = backend.ws("?name=Asha").await;
    let mut anyone = other_comm.ws("").await;
    assert_eq!(rider.next_of_type("identified", WAIT).await["name"], "Asha");

    edge.known_driver("Karim", "DHA-1", 3.0, 4.0).await;
    let (status, body) = edge
        .post_json(
            "/rider",
            json!({"name": "Asha", "x": 0, "y": 0, "destination": [6, 8]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for socket in [&mut rider, &mut anyone] {
        let m = socket.next_of_type("match", WAIT).await;
        assert_eq!(m["driver"], "Karim");
        assert_eq!(m["fare"], 20.0);
    }
    let (status, rated) = edge
        .post_json("/rating", json!({"car": "DHA-1", "rating": 5}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rated}");

    // With no rider service running, the gateway says so instead of hanging.
    backend.stop().await;
    let (status, body) = edge
        .post_json(
            "/rider",
            json!({"name": "Bo", "x": 0, "y": 0, "destination": [1, 1]}),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");

    // A new rating instance serves what the old one stored.
    let replacement = spawn_distributed("rating", &nats, &db).await;
    let (status, summary) = edge.get("/ratings/Karim").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["count"], 1);
    assert_eq!(summary["average"], 5.0);

    replacement.stop().await;
    edge.stop().await;
    other_comm.stop().await;
    db.drop().await;
}

/// Four shards; the course's 5 s hold, so a rider in a shard short of drivers can wait for one.
fn sharded(c: &mut platform::Config) {
    c.edit_section(|m: &mut matching::MatchingConfig| {
        m.hold_ms = 5_000;
        m.shards = 4;
        m.shard_cell = 25.0;
        m.lease_ttl_ms = 1_000;
    });
}

/// 1.5× supply: every shard has drivers to spare, so every rider can be matched.
async fn bot(target: &str, seconds: u64) -> bot::Summary {
    let config = bot::BotConfig {
        target: target.to_owned(),
        riders_per_sec: 20,
        drivers_per_sec: 30,
        duration: Some(Duration::from_secs(seconds)),
        progress_every: None,
        ..bot::BotConfig::default()
    };
    bot::run(config, tokio_util::sync::CancellationToken::new())
        .await
        .expect("the bot runs")
}

#[tokio::test]
async fn matching_instances_share_the_shards_and_hand_them_over() {
    let nats = NatsServer::start().await;
    let db = TestDatabase::create().await;
    let first = testkit::spawn_distributed_with("matching", &nats, &db, sharded).await;
    let second = testkit::spawn_distributed_with("matching", &nats, &db, sharded).await;
    let edge = spawn_distributed("gateway,rider,supply,rating,communication", &nats, &db).await;
    // The second joins after watching one hold time; then each holds half.
    testkit::until_shard_owners(&nats.url, testkit::MATCHING_LEASES, 2).await;

    let both = bot(&edge.base_url, 5).await;
    assert!(both.invariants_hold(), "{both}");
    assert!(both.matched_pct >= 95.0, "{both}");
    assert_eq!(
        testkit::shard_owners(&nats.url, testkit::MATCHING_LEASES)
            .await
            .len(),
        2,
        "both still share the shards"
    );

    // One instance leaves; the other takes every shard over.
    first.stop().await;
    testkit::until_shard_owners(&nats.url, testkit::MATCHING_LEASES, 1).await;
    let one = bot(&edge.base_url, 5).await;
    assert!(one.invariants_hold(), "{one}");
    assert!(one.matched_pct >= 95.0, "{one}");

    second.stop().await;
    edge.stop().await;
    db.drop().await;
}
