//! The provider's HTTP API under `/provider/v1`, Stripe's endpoints with JSON bodies instead of
//! form encoding:
//!
//! - `POST /payment_intents` `{amount, currency, payment_method, capture_method?, metadata?}`
//! - `GET /payment_intents/{id}`
//! - `POST /payment_intents/{id}/confirm`
//! - `POST /payment_intents/{id}/capture` `{amount_to_capture?}`
//! - `POST /payment_intents/{id}/cancel` `{cancellation_reason?}`
//! - `POST /refunds` `{payment_intent, amount?}`, `GET /refunds/{id}`
//!
//! Every request presents the API key (`Authorization: Bearer <key>`); every POST may carry an
//! `Idempotency-Key` (`idempotency`). Every answer is JSON: the object, or an error in Stripe's
//! shape — bad input is a 4xx naming the parameter, never a 5xx.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::error::ProviderError;
use crate::idempotency::{self, Idempotency, Scope};
use crate::model::{
    CAPTURE_METHOD, CURRENCY, CancellationReason, MAX_AMOUNT, MIN_AMOUNT, NewIntent,
};
use crate::service::Provider;

/// Where the API is mounted.
pub const PREFIX: &str = "/provider/v1";

/// Stripe's metadata limits: keys, key length, value length.
const METADATA_KEYS: usize = 50;
const METADATA_KEY_CHARS: usize = 40;
const METADATA_VALUE_CHARS: usize = 500;

type Answer = Result<Response, ProviderError>;

/// The API's routes, for the public router: authentication, then idempotency, then the
/// endpoints. Unknown paths under the prefix are answered in Stripe's shape too.
pub fn router(provider: Arc<Provider>, secret_key: &str) -> Router {
    let idempotency = Idempotency {
        store: provider.store().clone(),
    };
    let api = Router::new()
        .route("/payment_intents", post(create_intent))
        .route("/payment_intents/{id}", get(retrieve_intent))
        .route("/payment_intents/{id}/confirm", post(confirm_intent))
        .route("/payment_intents/{id}/capture", post(capture_intent))
        .route("/payment_intents/{id}/cancel", post(cancel_intent))
        .route("/refunds", post(create_refund))
        .route("/refunds/{id}", get(retrieve_refund))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(provider)
        .layer(middleware::from_fn_with_state(
            idempotency,
            idempotency::layer,
        ))
        .layer(middleware::from_fn_with_state(
            ApiKey::new(secret_key),
            authenticate,
        ));
    Router::new().nest(PREFIX, api)
}

/// The API key requests must present.
#[derive(Clone)]
struct ApiKey {
    secret: Arc<str>,
    scope: Scope,
}

impl ApiKey {
    fn new(secret: &str) -> Self {
        Self {
            secret: Arc::from(secret),
            scope: Scope(Arc::from(idempotency::scope_of(secret))),
        }
    }
}

async fn authenticate(State(key): State<ApiKey>, mut request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        None => ProviderError::unauthorized(
            "You did not provide an API key. Send it in the Authorization header: 'Authorization: Bearer <key>'.",
        )
        .into_response(),
        Some(given) if !bool::from(given.as_bytes().ct_eq(key.secret.as_bytes())) => {
            ProviderError::unauthorized("Invalid API Key provided.").into_response()
        }
        Some(_) => {
            request.extensions_mut().insert(key.scope.clone());
            next.run(request).await
        }
    }
}

async fn unknown_route(request: Request) -> ProviderError {
    ProviderError::invalid_request(
        "resource_missing",
        format!(
            "Unrecognized request URL ({} {PREFIX}{}).",
            request.method(),
            request.uri().path()
        ),
    )
    .with_status(StatusCode::NOT_FOUND)
}

async fn wrong_method(request: Request) -> ProviderError {
    ProviderError::invalid_request(
        "method_not_allowed",
        format!(
            "{} is not allowed on {}{}.",
            request.method(),
            PREFIX,
            request.uri().path()
        ),
    )
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

fn ok<T: serde::Serialize>(object: T) -> Answer {
    Ok((StatusCode::OK, axum::Json(object)).into_response())
}

async fn create_intent(
    State(provider): State<Arc<Provider>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let mut params = Params::parse(
        body,
        &[
            "amount",
            "currency",
            "payment_method",
            "capture_method",
            "metadata",
        ],
    )?;
    let amount = params.amount("amount")?;
    let currency: String = params.require("currency")?;
    let payment_method: String = params.require("payment_method")?;
    let capture_method: Option<String> = params.take("capture_method")?;
    let metadata: BTreeMap<String, String> = params.take("metadata")?.unwrap_or_default();
    if currency != CURRENCY {
        return Err(ProviderError::invalid_param(
            "currency_unsupported",
            "currency",
            format!(
                "Currency '{currency}' is not supported: the provider settles in '{CURRENCY}' only."
            ),
        )
        .not_executed());
    }
    if let Some(method) = capture_method.filter(|m| m != CAPTURE_METHOD) {
        return Err(ProviderError::invalid_param(
            "parameter_invalid_string",
            "capture_method",
            format!("Invalid capture_method '{method}': only '{CAPTURE_METHOD}' is supported."),
        )
        .not_executed());
    }
    check_metadata(&metadata)?;
    let intent = provider
        .create_intent(NewIntent {
            amount,
            payment_method,
            metadata,
        })
        .await?;
    ok(intent)
}

async fn retrieve_intent(State(provider): State<Arc<Provider>>, Path(id): Path<String>) -> Answer {
    ok(provider.intent(&id).await?)
}

async fn confirm_intent(
    State(provider): State<Arc<Provider>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    Params::parse(body, &[])?;
    ok(provider.confirm(&id).await?)
}

async fn capture_intent(
    State(provider): State<Arc<Provider>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let mut params = Params::parse(body, &["amount_to_capture"])?;
    let amount = params.optional_amount("amount_to_capture")?;
    ok(provider.capture(&id, amount).await?)
}

async fn cancel_intent(
    State(provider): State<Arc<Provider>>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let mut params = Params::parse(body, &["cancellation_reason"])?;
    let reason: Option<CancellationReason> = params.take("cancellation_reason")?;
    if reason == Some(CancellationReason::Automatic) {
        return Err(ProviderError::invalid_param(
            "parameter_invalid_string",
            "cancellation_reason",
            "The cancellation_reason 'automatic' is set by the provider only.",
        )
        .not_executed());
    }
    ok(provider.cancel(&id, reason).await?)
}

async fn create_refund(
    State(provider): State<Arc<Provider>>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let mut params = Params::parse(body, &["payment_intent", "amount"])?;
    let intent: String = params.require("payment_intent")?;
    let amount = params.optional_amount("amount")?;
    ok(provider.refund(&intent, amount).await?)
}

async fn retrieve_refund(State(provider): State<Arc<Provider>>, Path(id): Path<String>) -> Answer {
    ok(provider.refund_by_id(&id).await?)
}

fn check_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ProviderError> {
    let bad = |message: String| {
        ProviderError::invalid_param("parameter_invalid", "metadata", message).not_executed()
    };
    if metadata.len() > METADATA_KEYS {
        return Err(bad(format!(
            "metadata may hold at most {METADATA_KEYS} keys"
        )));
    }
    for (key, value) in metadata {
        if key.is_empty() || key.chars().count() > METADATA_KEY_CHARS {
            return Err(bad(format!(
                "metadata keys must be 1 to {METADATA_KEY_CHARS} characters; {key:?} is not"
            )));
        }
        if value.chars().count() > METADATA_VALUE_CHARS {
            return Err(bad(format!(
                "metadata values must be at most {METADATA_VALUE_CHARS} characters; the value of {key:?} is not"
            )));
        }
    }
    Ok(())
}

/// A request body's parameters: a JSON object (an empty body is `{}`), read one parameter at a
/// time so that every error names its parameter. `null` is as good as absent. Every error is a
/// validation failure: the endpoint did not run.
struct Params(Map<String, Value>);

impl Params {
    fn parse(body: Result<Bytes, BytesRejection>, allowed: &[&str]) -> Result<Self, ProviderError> {
        let body = body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                idempotency::body_too_large()
            } else {
                ProviderError::invalid_request("invalid_json", rejection.body_text()).not_executed()
            }
        })?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Map::new()));
        }
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            ProviderError::invalid_request("invalid_json", format!("Invalid JSON body: {e}."))
                .not_executed()
        })?;
        let Value::Object(map) = value else {
            return Err(ProviderError::invalid_request(
                "invalid_json",
                "The request body must be a JSON object.",
            )
            .not_executed());
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ProviderError::invalid_param(
                "parameter_unknown",
                unknown,
                format!("Received unknown parameter: {unknown}"),
            )
            .not_executed());
        }
        Ok(Self(map))
    }

    fn take<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>, ProviderError> {
        match self.0.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value).map(Some).map_err(|e| {
                ProviderError::invalid_param(
                    "parameter_invalid",
                    name,
                    format!("Invalid {name}: {e}."),
                )
                .not_executed()
            }),
        }
    }

    fn require<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, ProviderError> {
        self.take(name)?.ok_or_else(|| {
            ProviderError::invalid_param(
                "parameter_missing",
                name,
                format!("Missing required param: {name}."),
            )
            .not_executed()
        })
    }

    /// An amount in minor units, within the provider's bounds.
    fn amount(&mut self, name: &str) -> Result<u64, ProviderError> {
        let amount = self.integer(name)?.ok_or_else(|| {
            ProviderError::invalid_param(
                "parameter_missing",
                name,
                format!("Missing required param: {name}."),
            )
            .not_executed()
        })?;
        bounded(amount, name)
    }

    fn optional_amount(&mut self, name: &str) -> Result<Option<u64>, ProviderError> {
        self.integer(name)?.map(|a| bounded(a, name)).transpose()
    }

    /// An integer of any sign and size JSON gives (so that -5 is "too small", not "invalid").
    fn integer(&mut self, name: &str) -> Result<Option<i128>, ProviderError> {
        self.take::<i128>(name).map_err(|e| ProviderError {
            object: crate::error::ErrorObject {
                code: "parameter_invalid_integer".to_owned(),
                message: format!("Invalid integer: {name} must be a whole number of minor units."),
                ..e.object
            },
            ..e
        })
    }
}

fn bounded(amount: i128, name: &str) -> Result<u64, ProviderError> {
    if amount < i128::from(MIN_AMOUNT) {
        return Err(ProviderError::amount_too_small(name).not_executed());
    }
    if amount > i128::from(MAX_AMOUNT) {
        return Err(ProviderError::invalid_param(
            "amount_too_large",
            name,
            format!("Amount must be no more than {MAX_AMOUNT} (minor units)."),
        )
        .not_executed());
    }
    u64::try_from(amount).map_err(|_| ProviderError::amount_too_small(name).not_executed())
}
