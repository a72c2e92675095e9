//! `POST /v1/payments/webhook`: the provider's events, signed as Stripe signs them. A bad, stale
//! or missing signature is a 400; an event already handled is answered 200 at once (deliveries
//! come at least once, possibly duplicated and out of order); an unknown kind is acknowledged.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use platform::{ApiError, ErrorCode, clock};
use serde::Deserialize;

use crate::provider_client::ProviderRefund;
use crate::service::PaymentService;

#[derive(Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: EventObject,
}

#[derive(Deserialize)]
struct EventObject {
    id: String,
    #[serde(default)]
    object: String,
    /// A refund's amount.
    #[serde(default)]
    amount: Option<u64>,
    #[serde(default)]
    payment_intent: Option<String>,
    #[serde(default)]
    cancellation_reason: Option<String>,
}

pub(crate) fn routes(service: PaymentService) -> Router {
    Router::new()
        .route("/v1/payments/webhook", post(receive))
        .with_state(service)
}

async fn receive(
    State(service): State<PaymentService>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidJson,
                "the Stripe-Signature header is missing",
            )
        })?;
    let config = service.config();
    let now = clock::now().as_millis().div_euclid(1_000);
    provider::signature::verify(
        signature,
        &body,
        &config.webhook_secrets,
        now,
        config.webhook_tolerance_s,
    )
    .map_err(|e| {
        metrics::counter!("payment_webhooks_refused_total").increment(1);
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("the webhook signature: {e}"),
        )
    })?;
    let event: Event = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("not a provider event: {e}")))?;
    let store = service.store();
    if store.seen(&event.id).await.map_err(ApiError::unavailable)? {
        return Ok(StatusCode::OK);
    }
    let object = &event.data.object;
    let (intent, refund) = if object.object == "refund" {
        let refund = object.amount.map(|amount| ProviderRefund {
            id: object.id.clone(),
            amount,
        });
        (object.payment_intent.clone().unwrap_or_default(), refund)
    } else {
        (object.id.clone(), None)
    };
    service
        .on_provider_event(
            &event.kind,
            &intent,
            object.cancellation_reason.as_deref(),
            refund,
        )
        .await
        .map_err(ApiError::from)?;
    store
        .first_sight(&event.id, &event.kind, clock::now())
        .await
        .map_err(ApiError::unavailable)?;
    metrics::counter!("payment_webhooks_total", "type" => event.kind).increment(1);
    Ok(StatusCode::OK)
}
