//! The limits of issue "Hold up under abuse", on the running system: per-address login backoff
//! and in-flight sign-ups, the per-account socket cap, the socket frame limit, and the idle
//! timeout of a silent socket. (The HTTP server's own caps are tested in platform; the hashing
//! pool in identity; the position throttle in supply.)

use std::time::Duration;

use serde_json::json;
use testkit::{StatusCode, spawn_app, spawn_app_with};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn random_email() -> String {
    format!("nobody-{}@example.com", uuid::Uuid::now_v7().simple())
}

#[tokio::test]
async fn failed_logins_from_one_address_make_it_wait_and_say_how_long() {
    let app = spawn_app_with(|c| {
        c.edit_section(|g: &mut gateway::GatewayConfig| {
            g.login_free_failures_per_address = 3;
            g.login_backoff_ms = 30_000;
        });
    })
    .await;
    let login = |email: String| {
        app.http
            .post(app.url("/v1/auth/login"))
            .json(&json!({"email": email, "password": "wrong password"}))
            .send()
    };
    // Fresh emails each time: the per-email limit never sees them, the per-address one does.
    for _ in 0..3 {
        let response = login(random_email()).await.expect("answered");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = login(random_email()).await.expect("answered");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header");
    assert!((25..=30).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert_eq!(body["error"]["retry_after_s"], retry_after, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("address")),
        "{body}"
    );
    // A sign-up from the same address is no failed login.
    let (status, body) = app
        .post_json(
            "/v1/auth/signup",
            json!({"email": random_email(), "password": "correct horse battery", "name": "Asha", "role": "rider"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

/// Sign-up does not tell who has an account: a taken email gets the very answer a free one gets,
/// and the account keeps its own password.
#[tokio::test]
async fn sign_up_does_not_tell_who_has_an_account() {
    let app = spawn_app().await;
    let email = random_email();
    let sign_up = |password: &'static str| {
        app.post_json(
            "/v1/auth/signup",
            json!({"email": email, "password": password, "name": "Asha", "role": "rider"}),
        )
    };
    let first = sign_up("correct horse battery").await;
    let second = sign_up("another horse battery").await;
    assert_eq!(first.0, StatusCode::ACCEPTED, "{}", first.1);
    assert_eq!(first, second, "the same answer for a taken email");
    let log_in = |password: &'static str| {
        app.post_json(
            "/v1/auth/login",
            json!({"email": email, "password": password}),
        )
    };
    assert_eq!(log_in("correct horse battery").await.0, StatusCode::OK);
    assert_eq!(
        log_in("another horse battery").await.0,
        StatusCode::UNAUTHORIZED,
        "the second sign-up changed nothing"
    );
}

#[tokio::test]
async fn an_account_holds_a_bounded_number_of_sockets_and_sends_bounded_frames() {
    let app = spawn_app_with(|c| {
        c.edit_section(|s: &mut communication::SocketsConfig| s.per_account = 2);
    })
    .await;
    let (token, _) = app.account("rider").await;
    let mut first = app.product_ws(&token, "").await;
    first.next_of_type("hello", Duration::from_secs(5)).await;
    let mut second = app.product_ws(&token, "").await;
    second.next_of_type("hello", Duration::from_secs(5)).await;

    let response = app
        .http
        .get(app.url("/v1/ws"))
        .bearer_auth(&token)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");

    // A frame over sockets.max_frame_bytes (16 KiB) closes the session with 1009.
    first.send_text(&"x".repeat(32 * 1024)).await;
    let mut closed = None;
    while let Some(message) = first.next_message(Duration::from_secs(5)).await {
        if let Message::Close(frame) = message {
            closed = frame.map(|f| f.code);
            break;
        }
    }
    assert_eq!(closed, Some(CloseCode::Size));
    // Its place is free again.
    drop(first);
    let mut third = None;
    for _ in 0..50 {
        let (token, app) = (&token, &app);
        let probe = app
            .http
            .get(app.url("/v1/ws"))
            .bearer_auth(token)
            .send()
            .await
            .expect("answered");
        // Not an upgrade: 422 while a place is free, 429 while both are taken.
        if probe.status() != StatusCode::TOO_MANY_REQUESTS {
            third = Some(app.product_ws(token, "").await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    third
        .expect("a place came free")
        .next_of_type("hello", Duration::from_secs(5))
        .await;
    drop(second);
}

#[tokio::test]
async fn a_silent_socket_is_pinged_then_closed_a_live_one_is_kept() {
    let app = spawn_app_with(|c| {
        c.edit_section(|s: &mut communication::SocketsConfig| {
            s.ping_interval_ms = 100;
            s.idle_timeout_ms = 400;
        });
    })
    .await;
    // A client that reads answers the pings (tungstenite replies to each) and stays.
    let mut live = app.ws("?name=Asha").await;
    let until = tokio::time::Instant::now() + Duration::from_millis(1_200);
    let mut pings = 0;
    while tokio::time::Instant::now() < until {
        match live.next_message(Duration::from_millis(150)).await {
            Some(Message::Ping(_)) => pings += 1,
            Some(Message::Close(frame)) => panic!("a live client was closed: {frame:?}"),
            _ => {}
        }
    }
    assert!(pings >= 3, "{pings} pings");
    live.send_text(r#"{"type":"ping"}"#).await;
    let pong = live.next_of_type("pong", Duration::from_secs(2)).await;
    assert_eq!(pong["type"], "pong");

    // A client that never reads (so never answers) is closed after the idle timeout: read its
    // bytes raw (a WebSocket client would answer the pings it reads) up to the server's close.
    let silent = app.ws("").await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let MaybeTlsStream::Plain(mut tcp) = silent.stream.into_inner() else {
        panic!("plain TCP")
    };
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut bytes)).await;
    assert!(read.is_ok(), "the server closed the connection");
    // An unmasked close frame (0x88), its length, then code 1008 (policy violation).
    let close = bytes
        .windows(4)
        .any(|w| w[0] == 0x88 && w[2] == 0x03 && w[3] == 0xF0);
    assert!(close, "no close frame with 1008 in {} bytes", bytes.len());
}
