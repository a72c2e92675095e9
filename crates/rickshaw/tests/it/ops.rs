//! Health, readiness and metrics.

use std::time::Duration;

use serde_json::json;
use testkit::{StatusCode, TestApp, spawn_app};

/// The value of one series in Prometheus text, 0 if absent. The recorder is process-wide and
/// other tests run beside this one, so tests compare values before and after.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

async fn metrics(app: &TestApp) -> String {
    let (status, text) = app.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    text
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let app = spawn_app().await;
    assert_eq!(
        app.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        app.get("/readyz").await,
        (StatusCode::OK, json!({"status": "ready"}))
    );

    let accepted = r#"http_requests_total{method="POST",route="/rider",status="202"}"#;
    let rejected = r#"http_requests_total{method="POST",route="/rider",status="422"}"#;
    let ticks = "matching_tick_duration_seconds_count";
    let before = metrics(&app).await;

    let _ws = app.ws("").await;
    app.post_json(
        "/rider",
        json!({"name": "m", "x": 0, "y": 0, "destination": [1, 1]}),
    )
    .await;
    app.post_json("/rider", json!({"name": "m"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // a few 100 ms ticks
    let after = metrics(&app).await;

    assert!(
        value(&after, accepted) >= value(&before, accepted) + 1.0,
        "{after}"
    );
    assert!(
        value(&after, rejected) >= value(&before, rejected) + 1.0,
        "{after}"
    );
    assert!(
        value(&after, ticks) > value(&before, ticks),
        "the matcher ticked:\n{after}"
    );
    assert!(
        after.contains("matching_tick_duration_seconds_bucket"),
        "a histogram, not a summary"
    );
    assert!(
        value(
            &after,
            r#"communication_connected_clients{transport="websocket"}"#
        ) >= 1.0,
        "{after}"
    );
}

/// What the alerts and the dashboard (deploy/) read: the bus's consumers (their lag, how long a
/// handler takes) and dispatch rounds, as histograms where they are durations.
#[tokio::test]
async fn the_bus_and_dispatch_report_what_the_alerts_read() {
    let app = spawn_app().await;
    app.post_json(
        "/rider",
        json!({"name": "lag", "x": 0, "y": 0, "destination": [1, 1]}),
    )
    .await;
    let mut text = String::new();
    for _ in 0..50 {
        text = metrics(&app).await;
        if text.contains("trip_dispatch_round_duration_seconds_bucket")
            && text.contains("bus_handle_duration_seconds_bucket")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for series in [
        "trip_dispatch_round_duration_seconds_bucket",
        "bus_handle_duration_seconds_bucket{consumer=",
        "bus_consumer_lag{consumer=",
        "trip_searching_unserved",
    ] {
        assert!(text.contains(series), "{series} in:\n{text}");
    }
}
