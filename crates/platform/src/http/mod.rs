//! HTTP plumbing shared by every service's router: the JSON body extractor that answers bad bodies
//! with our JSON errors, the JSON fallbacks for unknown routes and methods, request metrics,
//! health/readiness/metrics endpoints, the common middleware stack and the bounded server.

mod server;

pub use server::{ServerLimits, bind, serve};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::de::DeserializeOwned;
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::HttpConfig;
use crate::error::{ApiError, ErrorCode};

/// A JSON request body, parsed into `T`. Every failure is one of our JSON errors: 413 over the
/// body limit, 415 for a declared non-JSON content type, 400 for malformed JSON, 422 for
/// well-formed JSON of the wrong shape.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
            let ok = content_type
                .to_str()
                .map(|v| {
                    let mime = v.split(';').next().unwrap_or_default().trim();
                    mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
                })
                .unwrap_or(false);
            if !ok {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "the body must be JSON (Content-Type: application/json)",
                ));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "the request body is larger than the server accepts",
                )
            } else {
                ApiError::new(ErrorCode::InvalidJson, rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses JSON text, classifying failures as 400 (syntax) or 422 (shape).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::new(
            ErrorCode::InvalidJson,
            "the request body is empty; send a JSON object",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::new(ErrorCode::InvalidInput, e.to_string()),
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::new(ErrorCode::InvalidJson, format!("malformed JSON: {e}"))
            }
        }
    })
}

/// Liveness and readiness. Readiness goes false first on shutdown so load balancers stop routing
/// new requests while in-flight ones drain; while a service warms up (a matching instance
/// watching the pool before it takes shards) it stays false, so a rolling restart waits for it.
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    warming: Arc<std::sync::Mutex<Vec<(u64, &'static str)>>>,
    next_warm_up: Arc<std::sync::atomic::AtomicU64>,
}

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && self.warming_up().is_empty()
    }

    /// Keeps the process not ready while the returned guard lives; `what` names it in `/readyz`.
    pub fn warming(&self, what: &'static str) -> WarmUp {
        let id = self.next_warm_up.fetch_add(1, Ordering::Relaxed);
        self.lock().push((id, what));
        WarmUp {
            health: self.clone(),
            id,
        }
    }

    /// What is still warming up.
    pub fn warming_up(&self) -> Vec<&'static str> {
        self.lock().iter().map(|(_, what)| *what).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, &'static str)>> {
        self.warming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// See [`Health::warming`]: dropping it ends that warm-up.
#[derive(Debug)]
pub struct WarmUp {
    health: Health,
    id: u64,
}

impl Drop for WarmUp {
    fn drop(&mut self) {
        self.health.lock().retain(|(id, _)| *id != self.id);
    }
}

/// `/healthz`, `/readyz` and `/metrics`.
pub fn ops_router(
    health: Health,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/readyz",
            get(|State(health): State<Health>| async move {
                if health.is_ready() {
                    (
                        StatusCode::OK,
                        axum::Json(serde_json::json!({"status": "ready"})),
                    )
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(serde_json::json!({
                            "status": "not_ready",
                            "warming_up": health.warming_up(),
                        })),
                    )
                }
            }),
        )
        .with_state(health)
        .route(
            "/metrics",
            get(move || {
                let handle = metrics.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        handle.render(),
                    )
                }
            }),
        )
}

/// Wraps a finished router: JSON fallbacks, body limit, timeout, panic catching and metrics.
pub fn finish(router: Router, config: &HttpConfig) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            config.body_limit_bytes,
        ))
        .layer(middleware::from_fn_with_state(
            Duration::from_millis(config.request_timeout_ms),
            time_limit,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a request handler panicked").into_response()
        }))
        .layer(middleware::from_fn(track_requests))
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Answers a request still running after the time limit with a JSON 503 (tower-http's timeout
/// layer would answer with an empty body).
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::Unavailable,
            format!("the request took longer than {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}

async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let span = if crate::telemetry::traces_on() {
        tracing::info_span!(
            "http.request",
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            http.method = %method,
            http.route = %route,
            trace_id = tracing::field::Empty,
        )
    } else {
        tracing::Span::none()
    };
    crate::telemetry::extract_http(&span, request.headers());
    crate::telemetry::record_trace_id(&span);
    let response = tracing::Instrument::instrument(next.run(request), span).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::Health;

    #[test]
    fn a_warm_up_holds_readiness_back_until_it_ends() {
        let health = Health::default();
        assert!(!health.is_ready(), "not ready before it is set");
        health.set_ready(true);
        assert!(health.is_ready());
        let joining = health.warming("matching: watching");
        let other = health.warming("dispatch: watching");
        assert!(!health.is_ready());
        assert_eq!(
            health.warming_up(),
            ["matching: watching", "dispatch: watching"]
        );
        drop(joining);
        assert!(!health.is_ready(), "one warm-up still runs");
        drop(other);
        assert!(health.is_ready());
        health.set_ready(false);
        assert!(!health.is_ready(), "draining");
    }
}
