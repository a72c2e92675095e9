//! The HTTP API through its router: Stripe's semantics for amounts, states, idempotency and
//! errors.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use provider::store::{Begun, KeyTimes, KeyedRequest};
use serde_json::{Value, json};

use crate::support::{
    self, KEY, authorized, call, create, get, intent_path, memory_app, post, post_keyed,
};

#[tokio::test]
async fn authorize_capture_part_and_refund_in_parts() {
    let app = memory_app().await;
    let created = create(&app, 1_000, "pm_card_visa").await;
    let intent = created.ok();
    let id = intent["id"].as_str().expect("id");
    assert!(id.starts_with("pi_") && id.len() == 35, "{id}");
    assert_eq!(intent["object"], "payment_intent");
    assert_eq!(intent["status"], "requires_capture");
    assert_eq!(intent["amount"], 1_000);
    assert_eq!(intent["amount_capturable"], 1_000);
    assert_eq!(intent["amount_received"], 0);
    assert_eq!(intent["amount_refunded"], 0);
    assert_eq!(intent["currency"], "bdt");
    assert_eq!(intent["capture_method"], "manual");
    assert_eq!(intent["payment_method"], "pm_card_visa");
    assert_eq!(intent["metadata"], json!({"trip": "t-42"}));
    assert_eq!(intent["cancellation_reason"], Value::Null);
    let created_at = intent["created"].as_i64().expect("created");
    assert!((created_at - support::now_s()).abs() < 5);
    assert_eq!(
        intent["authorization_expires_at"].as_i64(),
        Some(created_at + 3600)
    );
    assert_eq!(get(&app, &intent_path(id, "")).await.ok(), intent);

    let captured = post(
        &app,
        &intent_path(id, "capture"),
        json!({"amount_to_capture": 700}),
    )
    .await;
    let captured = captured.ok();
    assert_eq!(captured["status"], "succeeded");
    assert_eq!(captured["amount_received"], 700);
    assert_eq!(captured["amount_capturable"], 0, "the rest is released");

    let refund = post(
        &app,
        "/provider/v1/refunds",
        json!({"payment_intent": id, "amount": 200}),
    )
    .await;
    let refund = refund.ok().clone();
    let refund_id = refund["id"].as_str().expect("id");
    assert!(refund_id.starts_with("re_") && refund_id.len() == 35);
    assert_eq!(refund["object"], "refund");
    assert_eq!(refund["amount"], 200);
    assert_eq!(refund["payment_intent"], id);
    assert_eq!(refund["currency"], "bdt");
    assert_eq!(refund["status"], "succeeded");
    assert_eq!(
        get(&app, &format!("/provider/v1/refunds/{refund_id}"))
            .await
            .ok(),
        &refund
    );
    assert_eq!(
        get(&app, &intent_path(id, "")).await.ok()["amount_refunded"],
        200
    );

    let above = post(
        &app,
        "/provider/v1/refunds",
        json!({"payment_intent": id, "amount": 501}),
    )
    .await;
    assert_eq!(above.error(StatusCode::BAD_REQUEST), "amount_too_large");
    assert_eq!(above.body["error"]["param"], "amount");

    let rest = post(&app, "/provider/v1/refunds", json!({"payment_intent": id})).await;
    assert_eq!(rest.ok()["amount"], 500, "the default is what is left");
    let intent = get(&app, &intent_path(id, "")).await;
    assert_eq!(intent.ok()["amount_refunded"], 700);
    let again = post(&app, "/provider/v1/refunds", json!({"payment_intent": id})).await;
    assert_eq!(
        again.error(StatusCode::BAD_REQUEST),
        "charge_already_refunded"
    );
}

#[tokio::test]
async fn a_refund_never_exceeds_what_was_captured() {
    let app = memory_app().await;
    let id = authorized(&app, 1_000).await;
    let uncaptured = post(&app, "/provider/v1/refunds", json!({"payment_intent": id})).await;
    assert_eq!(
        uncaptured.error(StatusCode::BAD_REQUEST),
        "payment_intent_unexpected_state"
    );
    post(
        &app,
        &intent_path(&id, "capture"),
        json!({"amount_to_capture": 300}),
    )
    .await
    .ok();
    let above = post(
        &app,
        "/provider/v1/refunds",
        json!({"payment_intent": id, "amount": 301}),
    )
    .await;
    assert_eq!(above.error(StatusCode::BAD_REQUEST), "amount_too_large");
    assert_eq!(
        get(&app, &intent_path(&id, "")).await.ok()["amount_refunded"],
        0,
        "nothing was refunded"
    );
    let missing = post(
        &app,
        "/provider/v1/refunds",
        json!({"payment_intent": "pi_nope"}),
    )
    .await;
    assert_eq!(missing.error(StatusCode::BAD_REQUEST), "resource_missing");
    assert_eq!(missing.body["error"]["param"], "payment_intent");
}

#[tokio::test]
async fn a_declined_card_is_a_402_card_error_with_the_stored_intent() {
    let app = memory_app().await;
    let declined = create(&app, 1_000, "pm_card_chargeDeclined").await;
    assert_eq!(
        declined.error(StatusCode::PAYMENT_REQUIRED),
        "card_declined"
    );
    let error = &declined.body["error"];
    assert_eq!(error["type"], "card_error");
    assert_eq!(error["decline_code"], "generic_decline");
    assert_eq!(error["message"], "Your card was declined.");
    let intent = &error["payment_intent"];
    assert_eq!(intent["status"], "requires_payment_method");
    assert_eq!(intent["amount_capturable"], 0);
    let id = intent["id"].as_str().expect("id");
    assert_eq!(get(&app, &intent_path(id, "")).await.ok(), intent);
    let capture = post(&app, &intent_path(id, "capture"), json!({})).await;
    assert_eq!(
        capture.error(StatusCode::BAD_REQUEST),
        "payment_intent_unexpected_state"
    );
}

#[tokio::test]
async fn an_authentication_is_required_before_the_card_is_authorized() {
    let app = memory_app().await;
    let created = create(&app, 800, "pm_card_authenticationRequired").await;
    let intent = created.ok();
    assert_eq!(intent["status"], "requires_action");
    assert_eq!(intent["amount_capturable"], 0);
    let id = intent["id"].as_str().expect("id");
    let early = post(&app, &intent_path(id, "capture"), json!({})).await;
    assert_eq!(
        early.error(StatusCode::BAD_REQUEST),
        "payment_intent_unexpected_state"
    );
    // An empty body is as good as `{}`.
    let confirmed = call(&app, Method::POST, &intent_path(id, "confirm"), None, &[]).await;
    let confirmed = confirmed.ok();
    assert_eq!(confirmed["status"], "requires_capture");
    assert_eq!(confirmed["amount_capturable"], 800);
    let twice = post(&app, &intent_path(id, "confirm"), json!({})).await;
    assert_eq!(
        twice.error(StatusCode::BAD_REQUEST),
        "payment_intent_unexpected_state"
    );
    assert_eq!(
        twice.body["error"]["payment_intent"]["status"],
        "requires_capture"
    );
    let visa = authorized(&app, 100).await;
    let not_waiting = post(&app, &intent_path(&visa, "confirm"), json!({})).await;
    assert_eq!(
        not_waiting.error(StatusCode::BAD_REQUEST),
        "payment_intent_unexpected_state"
    );
}

#[tokio::test]
async fn a_capture_takes_at_most_what_is_capturable_and_happens_once() {
    let app = memory_app().await;
    let id = authorized(&app, 1_000).await;
    let above = post(
        &app,
        &intent_path(&id, "capture"),
        json!({"amount_to_capture": 1_001}),
    )
    .await;
    assert_eq!(above.error(StatusCode::BAD_REQUEST), "amount_too_large");
    assert_eq!(above.body["error"]["param"], "amount_to_capture");
    let zero = post(
        &app,
        &intent_path(&id, "capture"),
        json!({"amount_to_capture": 0}),
    )
    .await;
    assert_eq!(zero.error(StatusCode::BAD_REQUEST), "amount_too_small");
    let all = post(&app, &intent_path(&id, "capture"), json!({})).await;
    assert_eq!(all.ok()["amount_received"], 1_000, "the default is all");
    let twice = post(&app, &intent_path(&id, "capture"), json!({})).await;
    assert_eq!(
        twice.error(StatusCode::BAD_REQUEST),
        "payment_intent_unexpected_state"
    );
    assert_eq!(twice.body["error"]["payment_intent"]["status"], "succeeded");
    let missing = post(&app, &intent_path("pi_missing", "capture"), json!({})).await;
    assert_eq!(missing.error(StatusCode::NOT_FOUND), "resource_missing");
}

/// Ten captures of one intent at once: exactly one succeeds, the others find it captured.
async fn concurrent_captures_capture_once(store: Arc<dyn provider::ProviderStore>) {
    let (_, app) = support::app(store, 3600);
    let id = authorized(&app, 1_000).await;
    let mut captures = tokio::task::JoinSet::new();
    for n in 1..=10u64 {
        let app = app.clone();
        let path = intent_path(&id, "capture");
        captures
            .spawn(async move { post(&app, &path, json!({"amount_to_capture": n * 10})).await });
    }
    let mut won = Vec::new();
    let mut lost = 0;
    while let Some(reply) = captures.join_next().await {
        let reply = reply.expect("joins");
        match reply.status {
            StatusCode::OK => won.push(reply.body["amount_received"].clone()),
            StatusCode::BAD_REQUEST => {
                assert_eq!(
                    reply.error(StatusCode::BAD_REQUEST),
                    "payment_intent_unexpected_state"
                );
                lost += 1;
            }
            other => panic!("unexpected {other}: {:?}", reply.body),
        }
    }
    assert_eq!((won.len(), lost), (1, 9), "exactly one capture: {won:?}");
    let intent = get(&app, &intent_path(&id, "")).await;
    assert_eq!(intent.ok()["amount_received"], won[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_captures_capture_once_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = platform::store::open_sqlite(&dir.path().join("provider.db"))
        .await
        .expect("sqlite");
    let store = provider::SqliteProviderStore::new(pool)
        .await
        .expect("migrates");
    concurrent_captures_capture_once(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_captures_capture_once_on_postgres() {
    concurrent_captures_capture_once(Arc::new(crate::postgres::store().await)).await;
}

#[tokio::test]
async fn a_cancel_releases_an_open_intent_once() {
    let app = memory_app().await;
    let id = authorized(&app, 1_000).await;
    let automatic = post(
        &app,
        &intent_path(&id, "cancel"),
        json!({"cancellation_reason": "automatic"}),
    )
    .await;
    assert_eq!(
        automatic.error(StatusCode::BAD_REQUEST),
        "parameter_invalid_string"
    );
    let unknown = post(
        &app,
        &intent_path(&id, "cancel"),
        json!({"cancellation_reason": "bored"}),
    )
    .await;
    assert_eq!(unknown.error(StatusCode::BAD_REQUEST), "parameter_invalid");
    let canceled = post(
        &app,
        &intent_path(&id, "cancel"),
        json!({"cancellation_reason": "requested_by_customer"}),
    )
    .await;
    let canceled = canceled.ok();
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["amount_capturable"], 0);
    assert_eq!(canceled["cancellation_reason"], "requested_by_customer");
    for action in ["cancel", "capture", "confirm"] {
        let after = post(&app, &intent_path(&id, action), json!({})).await;
        assert_eq!(
            after.error(StatusCode::BAD_REQUEST),
            "payment_intent_unexpected_state",
            "{action} after cancel"
        );
    }
    // A pending authentication can be given up too.
    let waiting = create(&app, 300, "pm_card_authenticationRequired").await;
    let waiting = waiting.ok()["id"].as_str().expect("id").to_owned();
    let canceled = post(&app, &intent_path(&waiting, "cancel"), json!({})).await;
    assert_eq!(canceled.ok()["cancellation_reason"], Value::Null);
}

#[tokio::test]
async fn an_expired_authorization_is_canceled_automatically() {
    let store = support::memory_store().await;
    let (provider, app) = support::app(store, 60);
    let visa = authorized(&app, 1_000).await;
    let waiting = create(&app, 300, "pm_card_authenticationRequired").await;
    let waiting = waiting.ok()["id"].as_str().expect("id").to_owned();
    let captured = authorized(&app, 500).await;
    post(&app, &intent_path(&captured, "capture"), json!({}))
        .await
        .ok();
    let now = support::now_s();
    assert_eq!(
        provider.expire_authorizations(now).await.expect("expires"),
        0,
        "not yet"
    );
    assert_eq!(
        provider
            .expire_authorizations(now + 61)
            .await
            .expect("expires"),
        2
    );
    for id in [&visa, &waiting] {
        let intent = get(&app, &intent_path(id, "")).await;
        let intent = intent.ok();
        assert_eq!(intent["status"], "canceled");
        assert_eq!(intent["cancellation_reason"], "automatic");
        assert_eq!(intent["amount_capturable"], 0);
    }
    let intent = get(&app, &intent_path(&captured, "")).await;
    assert_eq!(intent.ok()["status"], "succeeded");
    assert_eq!(
        provider
            .expire_authorizations(now + 61)
            .await
            .expect("expires"),
        0,
        "once"
    );
}

const CREATE: &str = "/provider/v1/payment_intents";
const VISA_1000: &str = r#"{"amount":1000,"currency":"bdt","payment_method":"pm_card_visa"}"#;

#[tokio::test]
async fn a_repeat_with_the_same_key_replays_the_first_response() {
    let app = memory_app().await;
    let first = post_keyed(&app, CREATE, VISA_1000, "order-1").await;
    assert!(!first.replayed());
    let id = first.ok()["id"].clone();
    let repeat = post_keyed(&app, CREATE, VISA_1000, "order-1").await;
    assert!(repeat.replayed(), "{:?}", repeat.headers);
    assert_eq!(repeat.ok(), first.ok(), "the same intent, not a second one");
    assert_eq!(repeat.ok()["id"], id);
    assert_eq!(
        repeat
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );

    // Another key: another intent.
    let other = post_keyed(&app, CREATE, VISA_1000, "order-2").await;
    assert_ne!(other.ok()["id"], id);

    // A capture replayed: the first answer again, not "already captured".
    let capture = intent_path(id.as_str().expect("id"), "capture");
    let captured = post_keyed(&app, &capture, "{}", "capture-1").await;
    captured.ok();
    let again = post_keyed(&app, &capture, "{}", "capture-1").await;
    assert!(again.replayed());
    assert_eq!(again.ok(), captured.ok());

    // A decline is saved too.
    let declined = r#"{"amount":5,"currency":"bdt","payment_method":"pm_card_chargeDeclined"}"#;
    let first = post_keyed(&app, CREATE, declined, "order-3").await;
    assert_eq!(first.error(StatusCode::PAYMENT_REQUIRED), "card_declined");
    let repeat = post_keyed(&app, CREATE, declined, "order-3").await;
    assert!(repeat.replayed());
    assert_eq!(repeat.status, StatusCode::PAYMENT_REQUIRED);
    assert_eq!(repeat.body, first.body);
}

#[tokio::test]
async fn a_key_reused_with_another_request_is_an_idempotency_error() {
    let app = memory_app().await;
    post_keyed(&app, CREATE, VISA_1000, "order-1").await.ok();
    let other_body = r#"{"amount":999,"currency":"bdt","payment_method":"pm_card_visa"}"#;
    let mismatch = post_keyed(&app, CREATE, other_body, "order-1").await;
    assert_eq!(
        mismatch.error(StatusCode::BAD_REQUEST),
        "idempotency_key_reused"
    );
    assert_eq!(mismatch.body["error"]["type"], "idempotency_error");
    let other_path = post_keyed(&app, "/provider/v1/refunds", VISA_1000, "order-1").await;
    assert_eq!(
        other_path.body["error"]["type"], "idempotency_error",
        "{:?}",
        other_path.body
    );
    let too_long = "k".repeat(256);
    let refused = post_keyed(&app, CREATE, VISA_1000, &too_long).await;
    assert_eq!(
        refused.error(StatusCode::BAD_REQUEST),
        "idempotency_key_invalid"
    );
    let longest = "k".repeat(255);
    post_keyed(&app, CREATE, VISA_1000, &longest).await.ok();
}

#[tokio::test]
async fn a_request_refused_by_validation_does_not_spend_its_key() {
    let app = memory_app().await;
    let bad = r#"{"amount":1000,"currency":"usd","payment_method":"pm_card_visa"}"#;
    let refused = post_keyed(&app, CREATE, bad, "order-1").await;
    assert_eq!(
        refused.error(StatusCode::BAD_REQUEST),
        "currency_unsupported"
    );
    let fixed = post_keyed(&app, CREATE, VISA_1000, "order-1").await;
    assert!(!fixed.replayed());
    assert_eq!(fixed.ok()["status"], "requires_capture");
}

#[tokio::test]
async fn a_repeat_while_the_first_still_runs_is_told_to_wait() {
    let store = support::memory_store().await;
    let (_, app) = support::app(store.clone(), 3600);
    // The first request with the key is running (on another instance, say): it holds the key.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .expect("clock");
    let running = KeyedRequest {
        scope: provider::idempotency::scope_of(KEY),
        key: "order-1".into(),
        fingerprint: provider::idempotency::fingerprint("POST", CREATE, VISA_1000.as_bytes()),
    };
    let times = KeyTimes {
        now_ms: now,
        expired_before_ms: now - 86_400_000,
        lease_until_ms: now + 60_000,
    };
    let Ok(Begun::Started { owner }) = store.begin_request(&running, times).await else {
        panic!("the key is new");
    };
    let repeat = post_keyed(&app, CREATE, VISA_1000, "order-1").await;
    assert_eq!(repeat.error(StatusCode::CONFLICT), "idempotency_key_in_use");
    assert_eq!(repeat.body["error"]["type"], "idempotency_error");
    // It finishes; the repeat now gets its answer.
    store
        .finish_request(&running, &owner, 200, r#"{"id":"pi_first"}"#)
        .await
        .expect("finishes");
    let replay = post_keyed(&app, CREATE, VISA_1000, "order-1").await;
    assert!(replay.replayed());
    assert_eq!(replay.ok()["id"], "pi_first");
    // The key is per API key: the same key under another scope is another request.
    let other_scope = KeyedRequest {
        scope: provider::idempotency::scope_of("sk_other"),
        ..running
    };
    assert!(matches!(
        store.begin_request(&other_scope, times).await,
        Ok(Begun::Started { .. })
    ));
}

#[tokio::test]
async fn every_request_needs_the_api_key() {
    let app = memory_app().await;
    for authorization in [
        None,
        Some("Bearer sk_wrong"),
        Some(format!("Basic {KEY}").as_str()),
    ] {
        let mut request = Request::builder().method(Method::POST).uri(CREATE);
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        let request = request.body(Body::from(VISA_1000)).expect("request");
        let reply = support::send(&app, request).await;
        assert_eq!(
            reply.error(StatusCode::UNAUTHORIZED),
            "api_key_invalid",
            "{authorization:?}"
        );
        assert_eq!(reply.body["error"]["type"], "invalid_request_error");
    }
    let request = Request::builder()
        .uri(intent_path("pi_x", ""))
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        support::send(&app, request)
            .await
            .error(StatusCode::UNAUTHORIZED),
        "api_key_invalid"
    );
}

#[tokio::test]
async fn bad_input_is_a_4xx_naming_what_is_wrong() {
    let app = memory_app().await;
    let cases: [(&str, &str, &str, Option<&str>); 14] = [
        (CREATE, "{not json", "invalid_json", None),
        (CREATE, "[1, 2]", "invalid_json", None),
        (
            CREATE,
            r#"{"amount":1000,"currency":"bdt","payment_method":"pm_card_visa","confirm":true}"#,
            "parameter_unknown",
            Some("confirm"),
        ),
        (
            CREATE,
            r#"{"currency":"bdt","payment_method":"pm_card_visa"}"#,
            "parameter_missing",
            Some("amount"),
        ),
        (
            CREATE,
            r#"{"amount":1000,"payment_method":"pm_card_visa"}"#,
            "parameter_missing",
            Some("currency"),
        ),
        (
            CREATE,
            r#"{"amount":"ten","currency":"bdt","payment_method":"pm_card_visa"}"#,
            "parameter_invalid_integer",
            Some("amount"),
        ),
        (
            CREATE,
            r#"{"amount":10.5,"currency":"bdt","payment_method":"pm_card_visa"}"#,
            "parameter_invalid_integer",
            Some("amount"),
        ),
        (
            CREATE,
            r#"{"amount":0,"currency":"bdt","payment_method":"pm_card_visa"}"#,
            "amount_too_small",
            Some("amount"),
        ),
        (
            CREATE,
            r#"{"amount":-5,"currency":"bdt","payment_method":"pm_card_visa"}"#,
            "amount_too_small",
            Some("amount"),
        ),
        (
            CREATE,
            r#"{"amount":1000000001,"currency":"bdt","payment_method":"pm_card_visa"}"#,
            "amount_too_large",
            Some("amount"),
        ),
        (
            CREATE,
            r#"{"amount":100000000000000000000000,"currency":"bdt","payment_method":"pm_card_visa"}"#,
            "parameter_invalid_integer",
            Some("amount"),
        ),
        (
            CREATE,
            r#"{"amount":1000,"currency":"usd","payment_method":"pm_card_visa"}"#,
            "currency_unsupported",
            Some("currency"),
        ),
        (
            CREATE,
            r#"{"amount":1000,"currency":"bdt","payment_method":"pm_card_amex"}"#,
            "resource_missing",
            Some("payment_method"),
        ),
        (
            CREATE,
            r#"{"amount":1000,"currency":"bdt","payment_method":"pm_card_visa","capture_method":"automatic"}"#,
            "parameter_invalid_string",
            Some("capture_method"),
        ),
    ];
    for (path, body, code, param) in cases {
        let reply = call(&app, Method::POST, path, Some(body), &[]).await;
        assert_eq!(reply.error(StatusCode::BAD_REQUEST), code, "{body}");
        assert_eq!(reply.body["error"]["type"], "invalid_request_error");
        assert_eq!(reply.body["error"]["param"].as_str(), param, "{body}");
    }
    let metadata = json!({
        "amount": 100, "currency": "bdt", "payment_method": "pm_card_visa",
        "metadata": {"k": 5},
    });
    let reply = post(&app, CREATE, metadata).await;
    assert_eq!(reply.error(StatusCode::BAD_REQUEST), "parameter_invalid");
    let long_key = json!({
        "amount": 100, "currency": "bdt", "payment_method": "pm_card_visa",
        "metadata": {"k".repeat(41): "v"},
    });
    let reply = post(&app, CREATE, long_key).await;
    assert_eq!(reply.error(StatusCode::BAD_REQUEST), "parameter_invalid");

    let largest = post(
        &app,
        CREATE,
        json!({"amount": 1_000_000_000u64, "currency": "bdt", "payment_method": "pm_card_visa"}),
    )
    .await;
    assert_eq!(largest.ok()["amount"], 1_000_000_000u64);

    let missing = get(&app, &intent_path("pi_missing", "")).await;
    assert_eq!(missing.error(StatusCode::NOT_FOUND), "resource_missing");
    let missing = get(&app, "/provider/v1/refunds/re_missing").await;
    assert_eq!(missing.error(StatusCode::NOT_FOUND), "resource_missing");
    let no_route = get(&app, "/provider/v1/charges").await;
    assert_eq!(no_route.error(StatusCode::NOT_FOUND), "resource_missing");
    let id = authorized(&app, 100).await;
    let bad_capture = call(
        &app,
        Method::POST,
        &intent_path(&id, "capture"),
        Some("{\"amount_to_capture\":"),
        &[],
    )
    .await;
    assert_eq!(bad_capture.error(StatusCode::BAD_REQUEST), "invalid_json");
    let unknown = post(&app, &intent_path(&id, "confirm"), json!({"x": 1})).await;
    assert_eq!(unknown.error(StatusCode::BAD_REQUEST), "parameter_unknown");
}

#[tokio::test]
async fn the_routes_merge_into_the_public_router() {
    // As the composition does: merged with other routes, then wrapped by the platform.
    let app = memory_app().await;
    let public = axum::Router::new()
        .route(
            "/v1/other",
            axum::routing::get(|| async { "other service" }),
        )
        .merge(app);
    let public = platform::http::finish(public, &platform::config::HttpConfig::default());
    let id = authorized(&public, 100).await;
    assert_eq!(
        get(&public, &intent_path(&id, "")).await.ok()["status"],
        "requires_capture"
    );
    let no_route = get(&public, "/provider/v1/nope").await;
    assert_eq!(no_route.error(StatusCode::NOT_FOUND), "resource_missing");
    let wrong_method = get(&public, CREATE).await;
    assert_eq!(
        wrong_method.error(StatusCode::METHOD_NOT_ALLOWED),
        "method_not_allowed"
    );
    let wrong_method = call(&public, Method::DELETE, &intent_path(&id, ""), None, &[]).await;
    assert_eq!(
        wrong_method.error(StatusCode::METHOD_NOT_ALLOWED),
        "method_not_allowed"
    );
    let elsewhere = Request::builder()
        .uri("/v1/other")
        .body(Body::empty())
        .expect("request");
    let response = tower::ServiceExt::oneshot(public, elsewhere)
        .await
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK);
}
