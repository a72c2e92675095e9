//! The provider's API as the payment service calls it: over HTTP, with its secret key, an
//! `Idempotency-Key` on every POST (a retried call never authorizes or captures twice), and its
//! errors read by their machine-readable `type` and `code`, never by their message.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

/// A refund as the provider answers it (its id is what `charge.refunded` reports too).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ProviderRefund {
    pub id: String,
    pub amount: u64,
}

/// A payment intent, as much of it as the payment service reads.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Intent {
    pub id: String,
    /// `requires_capture`, `requires_action`, `succeeded`, `canceled`, …
    pub status: String,
    pub amount: u64,
    pub amount_capturable: u64,
    pub amount_received: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// A card error: the message is for the rider.
    #[error("{0}")]
    Declined(String),
    /// The provider refused the request (its error `code`).
    #[error("the provider refused: {code}: {message}")]
    Refused { code: String, message: String },
    /// No answer, or a 5xx: try again (with the same idempotency key).
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
}

#[derive(Clone, Debug)]
pub struct ProviderClient {
    http: reqwest::Client,
    /// `…/provider/v1`, no trailing slash.
    base: String,
    key: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl ProviderClient {
    pub fn new(base: &str, key: &str, timeout: Duration) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        })
    }

    /// Authorizes `amount` on `payment_method` for later capture.
    pub async fn create_intent(
        &self,
        amount: u64,
        payment_method: &str,
        trip: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        self.post(
            "/payment_intents",
            &json!({
                "amount": amount,
                "currency": "bdt",
                "payment_method": payment_method,
                "capture_method": "manual",
                "metadata": {"trip_id": trip},
            }),
            idempotency_key,
        )
        .await
    }

    pub async fn confirm(
        &self,
        intent: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        self.post(
            &format!("/payment_intents/{intent}/confirm"),
            &json!({}),
            idempotency_key,
        )
        .await
    }

    pub async fn capture(
        &self,
        intent: &str,
        amount: u64,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        self.post(
            &format!("/payment_intents/{intent}/capture"),
            &json!({"amount_to_capture": amount}),
            idempotency_key,
        )
        .await
    }

    pub async fn cancel(
        &self,
        intent: &str,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        self.post(
            &format!("/payment_intents/{intent}/cancel"),
            &json!({"cancellation_reason": "requested_by_customer"}),
            idempotency_key,
        )
        .await
    }

    /// Refunds `amount` of a captured intent; the amount refunded.
    pub async fn refund(
        &self,
        intent: &str,
        amount: u64,
        idempotency_key: &str,
    ) -> Result<ProviderRefund, ProviderError> {
        let response = self
            .http
            .post(format!("{}/refunds", self.base))
            .bearer_auth(&self.key)
            .headers(trace_context())
            .header("Idempotency-Key", idempotency_key)
            .json(&json!({"payment_intent": intent, "amount": amount}))
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        read::<ProviderRefund>(response).await
    }

    pub async fn get(&self, intent: &str) -> Result<Intent, ProviderError> {
        let response = self
            .http
            .get(format!("{}/payment_intents/{intent}", self.base))
            .bearer_auth(&self.key)
            .headers(trace_context())
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        read(response).await
    }

    async fn post(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .headers(trace_context())
            .header("Idempotency-Key", idempotency_key)
            .json(body)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        read(response).await
    }
}

/// The current trace's `traceparent`, so the provider's spans join the booking's trace.
fn trace_context() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    platform::telemetry::inject_http(&mut headers);
    headers
}

async fn read<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, ProviderError> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes)
            .map_err(|e| ProviderError::Unavailable(format!("an undecodable answer: {e}")));
    }
    if status.is_server_error() || status == reqwest::StatusCode::CONFLICT {
        // 409: the same idempotency key is still being processed: a retry will get its answer.
        return Err(ProviderError::Unavailable(format!("HTTP {status}")));
    }
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(ErrorBody { error }) if error.kind == "card_error" => {
            Err(ProviderError::Declined(error.message))
        }
        Ok(ErrorBody { error }) => Err(ProviderError::Refused {
            code: if error.code.is_empty() {
                error.kind
            } else {
                error.code
            },
            message: error.message,
        }),
        Err(_) => Err(ProviderError::Refused {
            code: status.as_u16().to_string(),
            message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
        }),
    }
}
