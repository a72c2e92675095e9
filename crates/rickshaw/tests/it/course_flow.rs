//! The course protocol end to end: riders and drivers in, matches and fares out.

use std::time::Duration;

use serde_json::json;
use testkit::{StatusCode, spawn_app};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_match_reaches_the_rider_the_driver_and_anonymous_listeners_only() {
    let app = spawn_app().await;
    let mut rider = app.ws("?name=Asha").await;
    let mut driver = app.ws("").await;
    driver
        .send_text(r#"{"type":"identify","name":"Karim"}"#)
        .await;
    let mut anyone = app.ws("").await;
    let mut stranger = app.ws("?name=Nobody").await;
    assert_eq!(rider.next_of_type("identified", WAIT).await["name"], "Asha");
    assert_eq!(
        driver.next_of_type("identified", WAIT).await["name"],
        "Karim"
    );
    assert_eq!(
        stranger.next_of_type("identified", WAIT).await["name"],
        "Nobody"
    );

    let (status, body) = app
        .post_json(
            "/driver",
            json!({"name": "Karim", "carNumber": "DHA-11", "currentX": 3, "currentY": 4}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "available");
    let (status, body) = app
        .post_json(
            "/rider",
            json!({"name": "Asha", "position": [0, 0], "destination": {"x": 6, "y": 8}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let ride_id = body["ride_id"].as_str().expect("ride id").to_owned();

    for socket in [&mut rider, &mut driver, &mut anyone] {
        let m = socket.next_of_type("match", WAIT).await;
        assert_eq!(m["ride_id"], ride_id.as_str());
        assert_eq!(m["rider"], "Asha");
        assert_eq!(m["driver"], "Karim");
        assert_eq!(m["car_number"], "DHA-11");
        assert_eq!(m["pickup_distance"], 5.0);
        assert_eq!(m["trip_distance"], 10.0);
        assert_eq!(m["fare"], 20.0, "2 taka per unit of trip distance");
        assert_eq!(m["currency"], "BDT");
        assert!(m["event_id"].is_string());
    }
    assert!(
        stranger
            .next_message(Duration::from_millis(500))
            .await
            .is_none(),
        "an identified client gets only its own messages"
    );
}

#[tokio::test]
async fn a_rider_nobody_picks_up_is_told_after_the_hold_time() {
    let app = spawn_app().await;
    let mut rider = app.ws("?name=Lonely").await;
    let (status, _) = app
        .post_json(
            "/rider",
            json!({"name": "Lonely", "x": 1, "y": 1, "destX": 2, "destY": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let notice = rider.next_of_type("unmatched", WAIT).await;
    assert_eq!(notice["rider"], "Lonely");
}

#[tokio::test]
async fn each_driver_is_used_once_and_the_batch_minimises_total_pickup() {
    let app = spawn_app_slow_tick().await;
    let mut anyone = app.ws("").await;
    // Two riders and two drivers on a line: greedy in arrival order would pair R1 (at 6) with
    // D1 (at 5) and leave R2 (at 0) with D2 (at 12): 1 + 12 = 13. The optimum is 6 + 5 = 11.
    for (name, car, x) in [("D1", "C1", 5.0), ("D2", "C2", 12.0)] {
        let (status, _) = app
            .post_json("/driver", json!({"name": name, "car": car, "x": x, "y": 0}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    for (name, x) in [("R1", 6.0), ("R2", 0.0)] {
        let (status, _) = app
            .post_json(
                "/rider",
                json!({"name": name, "x": x, "y": 0, "destination": [50, 50]}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let a = anyone.next_of_type("match", WAIT).await;
    let b = anyone.next_of_type("match", WAIT).await;
    assert_eq!(a["tick"], b["tick"], "both pairs come from one tick");
    assert_ne!(
        a["driver"], b["driver"],
        "a driver is used at most once per tick"
    );
    let total = a["pickup_distance"].as_f64().expect("number")
        + b["pickup_distance"].as_f64().expect("number");
    assert_eq!(total, 11.0);
}

/// The matcher ticks once at start (empty pool), then after 3 s: the four posts, made right
/// after start, all land in that second batch even on a slow machine.
async fn spawn_app_slow_tick() -> testkit::TestApp {
    testkit::spawn_app_with(|c| {
        c.edit_section(|m: &mut matching::MatchingConfig| {
            m.tick_ms = 3_000;
            m.hold_ms = 10_000;
        });
    })
    .await
}
