//! Idempotent requests, Stripe's semantics: a POST with an `Idempotency-Key` header runs once;
//! its response (status and body) is saved and answered again — with `Idempotent-Replayed: true`
//! — to every repeat with the same key and the same request (method, path and body). The same
//! key with another request is refused (400 `idempotency_error`), and so is a repeat while the
//! first still runs (409 `idempotency_key_in_use`). Keys are per API key and live 24 hours.
//!
//! What is not saved, so that a retry runs afresh: a request refused by validation before the
//! endpoint ran (Stripe saves no result for those either), and a 5xx (the store failed; nothing
//! was written). The first run is detached from the connection: a client that hangs up, or the
//! request deadline, does not cut it short, so its response is saved for the retry. A process
//! that dies mid-request leaves its key held until the lease ends; a repeat then runs afresh.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::api::PREFIX;
use crate::error::{NotExecuted, ProviderError};
use crate::service::now_ms;
use crate::store::{Begun, KeyTimes, KeyedRequest, ProviderStore};

pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Stripe's limit on a key's length.
pub const MAX_KEY_CHARS: usize = 255;
/// How long a key (and its saved response) lives.
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long a running first request holds its key before a repeat may take it over (it must
/// have died with its process: requests are bounded far below this).
const LEASE: Duration = Duration::from_secs(60);
/// The largest request body read (the provider's requests are a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Whose keys these are: a digest of the API key the request authenticated with (set by the
/// authentication layer).
#[derive(Clone, Debug)]
pub(crate) struct Scope(pub Arc<str>);

#[derive(Clone)]
pub(crate) struct Idempotency {
    pub store: Arc<dyn ProviderStore>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The middleware: passes requests without a key (and every GET) through untouched.
pub(crate) async fn layer(
    State(idempotency): State<Idempotency>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(value) = request.headers().get(&IDEMPOTENCY_KEY) else {
        return next.run(request).await;
    };
    let key = match value.to_str() {
        Ok(key) if !key.is_empty() && key.chars().count() <= MAX_KEY_CHARS => key.to_owned(),
        _ => {
            return ProviderError::invalid_request(
                "idempotency_key_invalid",
                format!(
                    "The Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters."
                ),
            )
            .into_response();
        }
    };
    let Some(Scope(scope)) = request.extensions().get::<Scope>().cloned() else {
        return ProviderError::unauthorized("No API key was checked.").into_response();
    };
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => return body_too_large().into_response(),
    };
    // The whole path: the API is nested under its prefix, which the request's URI has lost.
    let path = format!("{PREFIX}{}", parts.uri.path());
    let keyed = KeyedRequest {
        scope: scope.to_string(),
        fingerprint: fingerprint(parts.method.as_str(), &path, &bytes),
        key,
    };
    let now = now_ms();
    let times = KeyTimes {
        now_ms: now,
        expired_before_ms: now.saturating_sub(millis(RETENTION)),
        lease_until_ms: now.saturating_add(millis(LEASE)),
    };
    match idempotency.store.begin_request(&keyed, times).await {
        Err(e) => ProviderError::from(e).into_response(),
        Ok(Begun::Replay { status, body }) => replay(status, body, &keyed.key),
        Ok(Begun::Mismatch) => ProviderError::idempotency_mismatch(&keyed.key).into_response(),
        Ok(Begun::InFlight) => ProviderError::idempotency_in_use(&keyed.key).into_response(),
        Ok(Begun::Started { owner }) => {
            let request = Request::from_parts(parts, Body::from(bytes));
            let store = idempotency.store.clone();
            let first = tokio::spawn(run_first(store, keyed, owner, request, next));
            match first.await {
                Ok(response) => response,
                Err(e) => ProviderError::unavailable(&e).into_response(),
            }
        }
    }
}

/// A 413 in Stripe's shape.
pub(crate) fn body_too_large() -> ProviderError {
    ProviderError::invalid_request(
        "body_too_large",
        format!("The request body is larger than {MAX_BODY_BYTES} bytes."),
    )
    .not_executed()
    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

/// Runs the first request with a key and saves its response (or frees the key).
async fn run_first(
    store: Arc<dyn ProviderStore>,
    keyed: KeyedRequest,
    owner: String,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => {
            if let Err(e) = store.release_request(&keyed, &owner).await {
                tracing::warn!(error = %e, "cannot free an idempotency key");
            }
            return ProviderError::unavailable(&e).into_response();
        }
    };
    let saved = if parts.status.is_server_error() || parts.extensions.get::<NotExecuted>().is_some()
    {
        store.release_request(&keyed, &owner).await
    } else {
        let text = String::from_utf8_lossy(&bytes);
        store
            .finish_request(&keyed, &owner, parts.status.as_u16(), &text)
            .await
    };
    if let Err(e) = saved {
        // The key stays held until its lease ends; a repeat before then is told to wait.
        tracing::error!(error = %e, key = %keyed.key, "cannot save an idempotent response");
    }
    if let Ok(value) = HeaderValue::from_str(&keyed.key) {
        parts.headers.insert(IDEMPOTENCY_KEY, value);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// The saved response of the first request, again.
fn replay(status: u16, body: String, key: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        Bytes::from(body),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    if let Ok(value) = HeaderValue::from_str(key) {
        headers.insert(IDEMPOTENCY_KEY, value);
    }
    response
}

/// What a repeat must match: the method, the path (`/provider/v1/…`) and the body, byte for
/// byte.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    hash.update(b"\n");
    hash.update(path.as_bytes());
    hash.update(b"\n");
    hash.update(body);
    hex::encode(hash.finalize())
}

/// The scope of an API key's Idempotency-Keys: its digest, so that the API key itself is not
/// stored with every request.
pub fn scope_of(api_key: &str) -> String {
    hex::encode(Sha256::digest(api_key.as_bytes()))
}
