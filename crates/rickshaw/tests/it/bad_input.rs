//! Bad input gets a 4xx with a JSON body naming the problem; nothing is half-written and the
//! server keeps serving.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::{StatusCode, spawn_app};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn assert_error(
    status: StatusCode,
    body: &Value,
    expected_status: u16,
    code: &str,
    field: Option<&str>,
) {
    assert_eq!(status.as_u16(), expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(!message.is_empty());
    if let Some(field) = field {
        assert_eq!(body["error"]["field"], field, "{body}");
    }
}

/// Path, body, expected status, error code and field.
type Case = (
    &'static str,
    Vec<u8>,
    u16,
    &'static str,
    Option<&'static str>,
);

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_named() {
    let app = spawn_app().await;
    let cases: Vec<Case> = vec![
        ("/rider", b"{\"name\": ".to_vec(), 400, "invalid_json", None),
        ("/rider", b"not json".to_vec(), 400, "invalid_json", None),
        ("/rider", b"".to_vec(), 400, "invalid_json", None),
        (
            "/rider",
            br#"{"name": "a", "x": NaN, "y": 2, "destination": [1, 2]}"#.to_vec(),
            400,
            "invalid_json",
            None,
        ),
        (
            "/rider",
            br#"{"name": "a", "x": 1e999, "y": 2, "destination": [1, 2]}"#.to_vec(),
            400,
            "invalid_json",
            None,
        ),
        ("/driver", b"[1, 2]".to_vec(), 422, "invalid_input", None),
        (
            "/rider",
            br#"{"x": 1, "y": 2, "destination": [1, 2]}"#.to_vec(),
            422,
            "invalid_input",
            Some("name"),
        ),
        (
            "/rider",
            br#"{"name": "a", "x": "one", "y": 2, "destination": [1, 2]}"#.to_vec(),
            422,
            "invalid_input",
            Some("x"),
        ),
        (
            "/rider",
            br#"{"name": "a", "x": 1, "y": 1e300, "destination": [1, 2]}"#.to_vec(),
            422,
            "invalid_input",
            Some("y"),
        ),
        (
            "/rider",
            br#"{"name": "a", "x": 1, "y": 2, "destination": [1, -5e6]}"#.to_vec(),
            422,
            "invalid_input",
            Some("destination"),
        ),
        (
            "/rider",
            br#"{"name": "a", "x": 1, "y": 2, "destination": [1, 2], "tip": 5}"#.to_vec(),
            422,
            "invalid_input",
            Some("tip"),
        ),
        (
            "/driver",
            br#"{"name": "d", "x": 1, "y": 2}"#.to_vec(),
            422,
            "invalid_input",
            Some("car"),
        ),
        (
            "/driver",
            br#"{"name": "d", "car": "", "x": 1, "y": 2}"#.to_vec(),
            422,
            "invalid_input",
            Some("car"),
        ),
        (
            "/rating",
            br#"{"driver": "d", "rating": 0}"#.to_vec(),
            422,
            "invalid_input",
            Some("rating"),
        ),
        (
            "/rating",
            br#"{"driver": "d", "rating": 6}"#.to_vec(),
            422,
            "invalid_input",
            Some("rating"),
        ),
        (
            "/rating",
            br#"{"driver": "d", "rating": "five"}"#.to_vec(),
            422,
            "invalid_input",
            Some("rating"),
        ),
    ];
    for (path, body, status, code, field) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let (got, reply) = app.post_raw(path, body, Some("application/json")).await;
        assert_eq!(got.as_u16(), status, "POST {path} {shown}: {reply}");
        assert_error(got, &reply, status, code, field);
    }
}

#[tokio::test]
async fn huge_bodies_foreign_types_unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let huge = format!(r#"{{"name": "{}"}}"#, "a".repeat(70 * 1024)).into_bytes();
    let (status, body) = app.post_raw("/rider", huge, Some("application/json")).await;
    assert_error(status, &body, 413, "payload_too_large", None);

    let (status, body) = app
        .post_raw(
            "/rider",
            b"name=a".to_vec(),
            Some("application/x-www-form-urlencoded"),
        )
        .await;
    assert_error(status, &body, 415, "unsupported_media_type", None);

    let (status, body) = app.get("/nowhere").await;
    assert_error(status, &body, 404, "not_found", None);

    let (status, body) = app.get("/rider").await;
    assert_error(status, &body, 405, "method_not_allowed", None);

    let (status, body) = app.get("/communication").await;
    assert!(status.is_client_error(), "{status}");
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("WebSocket")
    );

    let (status, body) = app.get("/ratings/nobody-at-all").await;
    assert_error(status, &body, 404, "not_found", None);

    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "still serving");
}

#[tokio::test]
async fn a_rejected_rating_changes_nothing() {
    let app = spawn_app().await;
    app.known_driver("Rahim", "DHA-5", 1.0, 1.0).await;
    let (status, _) = app
        .post_json("/rating", json!({"driver": "Rahim", "rating": 4}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for bad in [
        json!({"driver": "Rahim", "rating": 9}),
        json!({"driver": "Rahim", "rating": 4, "extra": 1}),
    ] {
        let (status, _) = app.post_json("/rating", bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let (status, body) = app
        .post_json("/rating", json!({"driver": "Ghost", "rating": 4}))
        .await;
    assert_error(status, &body, 404, "not_found", None);
    let (_, summary) = app.get("/ratings/Rahim").await;
    assert_eq!(summary["count"], 1, "{summary}");
    assert_eq!(summary["average"], 4.0);
}

#[tokio::test]
async fn garbage_on_the_socket_closes_it_with_a_reason_and_others_keep_receiving() {
    let app = spawn_app().await;
    let mut bystander = app.ws("").await;
    for (frame, code) in [
        (Message::text("garbage"), CloseCode::Policy),
        (Message::text(r#"{"type":"identify"}"#), CloseCode::Policy),
        (
            Message::text(r#"{"type":"identify","name":""}"#),
            CloseCode::Policy,
        ),
        (Message::binary(vec![0_u8, 1, 2]), CloseCode::Unsupported),
    ] {
        let mut ws = app.ws("").await;
        futures_util::SinkExt::send(&mut ws.stream, frame)
            .await
            .expect("sent");
        match ws.next_message(Duration::from_secs(5)).await {
            Some(Message::Close(Some(close))) => {
                assert_eq!(close.code, code);
                assert!(!close.reason.is_empty(), "the close says why");
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    let (status, body) = app.get("/communication?name=").await;
    assert!(status.is_client_error(), "{body}");

    app.known_driver("Karim", "K-1", 0.0, 0.0).await;
    app.post_json(
        "/rider",
        json!({"name": "Asha", "x": 0, "y": 1, "destination": [0, 2]}),
    )
    .await;
    let m = bystander
        .next_of_type("match", Duration::from_secs(10))
        .await;
    assert_eq!(m["driver"], "Karim");

    // A client that reconnects with the last event_id it got is sent what followed it (and a
    // few before: it drops those it has), here the match itself again.
    let event_id = m["event_id"].as_str().expect("a match names its event");
    let mut back = app.ws(&format!("?last_event_id={event_id}")).await;
    let again = back.next_of_type("match", Duration::from_secs(5)).await;
    assert_eq!(again["event_id"], event_id);
    // An id that is not an event id is refused at the upgrade, naming the field.
    let url = format!(
        "{}/communication?last_event_id=not-an-id",
        app.base_url.replacen("http://", "ws://", 1)
    );
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
            let body: Value =
                serde_json::from_slice(response.body().as_deref().unwrap_or_default())
                    .expect("a JSON body");
            assert_eq!(body["error"]["field"], "last_event_id", "{body}");
        }
        other => panic!("expected a 422, got {other:?}"),
    }
}
