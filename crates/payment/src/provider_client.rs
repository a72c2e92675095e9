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
    /// Calls in flight at most (each holds a connection): past it a call waits for one to end,
    /// within the timeout, instead of opening yet another connection.
    in_flight: std::sync::Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
    timeout: Duration,
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
    pub fn new(
        base: &str,
        key: &str,
        timeout: Duration,
        max_in_flight: usize,
    ) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        let max_in_flight = max_in_flight.max(1);
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            in_flight: std::sync::Arc::new(tokio::sync::Semaphore::new(max_in_flight)),
            max_in_flight,
            timeout,
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
        self.call(
            self.http
                .post(format!("{}/refunds", self.base))
                .header("Idempotency-Key", idempotency_key)
                .json(&json!({"payment_intent": intent, "amount": amount})),
        )
        .await
    }

    pub async fn get(&self, intent: &str) -> Result<Intent, ProviderError> {
        self.call(
            self.http
                .get(format!("{}/payment_intents/{intent}", self.base)),
        )
        .await
    }

    async fn post(
        &self,
        path: &str,
        body: &Value,
        idempotency_key: &str,
    ) -> Result<Intent, ProviderError> {
        self.call(
            self.http
                .post(format!("{}{path}", self.base))
                .header("Idempotency-Key", idempotency_key)
                .json(body),
        )
        .await
    }

    /// Sends `request` with the key and the trace, once a call in flight is free (within the
    /// timeout), and reads the answer.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ProviderError> {
        let _turn = tokio::time::timeout(self.timeout, self.in_flight.acquire())
            .await
            .map_err(|_| {
                ProviderError::Unavailable(format!(
                    "{} calls to the provider have been in flight for {} ms; try again",
                    self.max_in_flight,
                    self.timeout.as_millis()
                ))
            })?
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        let response = request
            .bearer_auth(&self.key)
            .headers(trace_context())
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// However many calls are made at once, at most `max_in_flight` reach the provider together;
    /// the others wait their turn and are answered.
    #[tokio::test]
    async fn calls_in_flight_are_bounded_and_the_rest_wait_their_turn() {
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (now_seen, most_seen) = (now.clone(), most.clone());
        let app = axum::Router::new().route(
            "/provider/v1/payment_intents/{id}",
            axum::routing::get(move || {
                let (now, most) = (now_seen.clone(), most_seen.clone());
                async move {
                    let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(at_once, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    axum::Json(
                        json!({"id": "pi_1", "status": "requires_capture", "amount": 100,
                        "amount_capturable": 100, "amount_received": 0}),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let base = format!(
            "http://{}/provider/v1",
            listener.local_addr().expect("addr")
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client =
            ProviderClient::new(&base, "sk_test", Duration::from_secs(10), 2).expect("a client");
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let client = client.clone();
            calls.spawn(async move { client.get("pi_1").await });
        }
        while let Some(answer) = calls.join_next().await {
            assert!(answer.expect("the call ran").is_ok());
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            2,
            "at most 2 at once, and 2 reached"
        );
    }
}
