//! Health, readiness and metrics.

use serde_json::json;
use testkit::{StatusCode, spawn_app};

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

    let _ws = app.ws("").await;
    app.post_json(
        "/rider",
        json!({"name": "m", "x": 0, "y": 0, "destination": [1, 1]}),
    )
    .await;
    app.post_json("/rider", json!({"name": "m"})).await;
    // Let one tick run.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, text) = app.get_text("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        r#"http_requests_total{method="POST",route="/rider",status="202"}"#,
        r#"http_requests_total{method="POST",route="/rider",status="422"}"#,
        "matching_tick_duration_seconds_bucket",
        "matching_matches_total",
        r#"communication_connected_clients{transport="websocket"}"#,
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}
