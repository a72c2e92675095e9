//! Building the provider's router on a store, and calling it.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use provider::{Provider, ProviderStore};
use serde_json::Value;
use tower::ServiceExt;

pub const KEY: &str = "sk_test_it";

/// A store on an in-memory SQLite database.
pub async fn memory_store() -> Arc<dyn ProviderStore> {
    let pool = platform::store::open_sqlite_in_memory()
        .await
        .expect("sqlite");
    Arc::new(
        provider::SqliteProviderStore::new(pool)
            .await
            .expect("migrates"),
    )
}

/// The provider (authorizations live `ttl_s`) and its router, on `store`; no webhooks.
pub fn app(store: Arc<dyn ProviderStore>, ttl_s: u64) -> (Arc<Provider>, Router) {
    let provider = Arc::new(Provider::new(store, ttl_s, false));
    let router = provider::api::router(provider.clone(), KEY);
    (provider, router)
}

pub async fn memory_app() -> Router {
    app(memory_store().await, 3600).1
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The error's `code`, asserting the status and the error shape.
    pub fn error(&self, status: StatusCode) -> &str {
        assert_eq!(self.status, status, "{:?}", self.body);
        let error = &self.body["error"];
        assert!(error["type"].is_string(), "{:?}", self.body);
        assert!(error["message"].is_string(), "{:?}", self.body);
        error["code"].as_str().expect("a code")
    }

    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
        &self.body
    }

    pub fn replayed(&self) -> bool {
        self.headers
            .get("idempotent-replayed")
            .is_some_and(|v| v == "true")
    }
}

/// A request with the API key (and `extra` headers); `body` is sent as is.
pub async fn call(
    router: &Router,
    method: Method,
    path: &str,
    body: Option<&str>,
    extra: &[(&str, &str)],
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json");
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .expect("request");
    send(router, request).await
}

pub async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("a JSON body ({e}): {}", String::from_utf8_lossy(&bytes)));
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn post(router: &Router, path: &str, body: Value) -> Reply {
    call(router, Method::POST, path, Some(&body.to_string()), &[]).await
}

pub async fn post_keyed(router: &Router, path: &str, body: &str, key: &str) -> Reply {
    call(
        router,
        Method::POST,
        path,
        Some(body),
        &[("idempotency-key", key)],
    )
    .await
}

pub async fn get(router: &Router, path: &str) -> Reply {
    call(router, Method::GET, path, None, &[]).await
}

/// Creates an intent of `amount` with `payment_method`; the reply as is.
pub async fn create(router: &Router, amount: u64, payment_method: &str) -> Reply {
    post(
        router,
        "/provider/v1/payment_intents",
        serde_json::json!({
            "amount": amount,
            "currency": "bdt",
            "payment_method": payment_method,
            "metadata": {"trip": "t-42"},
        }),
    )
    .await
}

/// An authorized intent's id.
pub async fn authorized(router: &Router, amount: u64) -> String {
    let reply = create(router, amount, "pm_card_visa").await;
    reply.ok()["id"].as_str().expect("an id").to_owned()
}

pub fn intent_path(id: &str, action: &str) -> String {
    if action.is_empty() {
        format!("/provider/v1/payment_intents/{id}")
    } else {
        format!("/provider/v1/payment_intents/{id}/{action}")
    }
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
