//! The outbox end to end: a trip notice whose publish fails after its commit still reaches the
//! sockets, relayed from the outbox. The completion is the one that matters most on `/v1/ws`:
//! until it arrives the rider's session keeps forwarding the driver's positions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use platform::bus::{
    Bus, BusError, Envelope, InProcessBus, SharedBus, SubscribeOptions, Subscription,
};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::product_flow::{
    WAIT, act, go_online, next_notice, offered, preview_and_book, rider_and_driver,
};

/// The in-process bus, except that publishes of trip notices fail while `down` is set (a NATS
/// outage, or a process killed between its commit and its publish, looks like this to them).
struct LosesTripNotices {
    inner: InProcessBus,
    down: AtomicBool,
}

#[async_trait]
impl Bus for LosesTripNotices {
    async fn publish(&self, envelope: Envelope) -> Result<(), BusError> {
        if envelope.subject.starts_with("trip.") && self.down.load(Ordering::SeqCst) {
            return Err(BusError::Backend("the bus is down (test)".into()));
        }
        self.inner.publish(envelope).await
    }

    async fn subscribe(&self, options: SubscribeOptions) -> Result<Subscription, BusError> {
        self.inner.subscribe(options).await
    }
}

/// The driver reports a position; whether the rider's socket shows a `driver.position` within
/// `within`.
async fn rider_sees_a_position(
    driver_ws: &mut testkit::WsClient,
    rider_ws: &mut testkit::WsClient,
    lat: f64,
    within: Duration,
) -> bool {
    driver_ws
        .send_text(&json!({"type": "location", "lat": lat, "lng": 90.3897}).to_string())
        .await;
    let until = tokio::time::Instant::now() + within;
    while let Some(left) = until.checked_duration_since(tokio::time::Instant::now()) {
        let Some(Message::Text(text)) = rider_ws.next_message(left).await else {
            continue;
        };
        let frame: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
        if frame["type"] == "driver.position" && frame["position"]["lat"] == lat {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn a_lost_completion_still_ends_the_riders_position_stream() {
    let bus = Arc::new(LosesTripNotices {
        inner: InProcessBus::new(),
        down: AtomicBool::new(false),
    });
    let app = testkit::spawn_app_on(bus.clone() as SharedBus).await;
    let ((rider, _), (driver, _)) = rider_and_driver(&app).await;
    let mut driver_ws = app.product_ws(&driver, "").await;
    driver_ws.next_of_type("hello", WAIT).await;
    let mut rider_ws = app.product_ws(&rider, "").await;
    rider_ws.next_of_type("hello", WAIT).await;
    go_online(&app, &driver).await;

    // The offer's publish fails: the driver still gets it, from the outbox.
    bus.down.store(true, Ordering::SeqCst);
    let trip = preview_and_book(&app, &rider).await;
    let id = trip["id"].as_str().expect("id").to_owned();
    offered(&app, &driver, &id).await;
    bus.down.store(false, Ordering::SeqCst);
    let offer = next_notice(&mut driver_ws).await;
    assert_eq!(offer["type"], "trip.offered", "{offer}");
    assert_eq!(offer["trip"]["id"], id.as_str());

    for action in ["accept", "arrive", "start"] {
        act(&app, &driver, &id, action).await;
    }
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("trip.started") {
        seen.push(
            next_notice(&mut rider_ws).await["type"]
                .as_str()
                .expect("type")
                .to_owned(),
        );
    }
    assert!(
        rider_sees_a_position(&mut driver_ws, &mut rider_ws, 23.7585, WAIT).await,
        "during the trip the rider follows the driver"
    );

    // The completion commits, but its publish is lost.
    bus.down.store(true, Ordering::SeqCst);
    act(&app, &driver, &id, "complete").await;
    assert!(
        rider_sees_a_position(&mut driver_ws, &mut rider_ws, 23.7586, WAIT).await,
        "without the completion the session still follows the driver"
    );
    bus.down.store(false, Ordering::SeqCst);
    // The relay publishes it within its grace (3 s) and a round (0.5 s).
    let completed = next_notice(&mut rider_ws).await;
    assert_eq!(completed["type"], "trip.completed", "{completed}");
    assert_eq!(completed["trip"]["id"], id.as_str());
    assert!(
        !rider_sees_a_position(
            &mut driver_ws,
            &mut rider_ws,
            23.7587,
            Duration::from_secs(1)
        )
        .await,
        "once the completion arrived the driver's positions stop"
    );
    app.stop().await;
}
