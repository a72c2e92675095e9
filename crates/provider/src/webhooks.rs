//! Webhook delivery: the relay of the deliveries outbox. Due deliveries are claimed (so that no
//! other round or instance sends them meanwhile), POSTed concurrently to the endpoint — the
//! event's JSON as the body, signed in `Stripe-Signature` — and marked delivered on a 2xx.
//! Anything else is retried with exponential backoff (1 s, 2 s, 4 s … at most 60 s) until
//! `webhook_max_attempts`, then given up and logged.
//!
//! Delivery is at least once (an attempt whose answer is lost is sent again, with the same event
//! id) and in no particular order, as with Stripe: receivers deduplicate by `id` and read the
//! object's state rather than the order of events.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use platform::Shutdown;
use tokio_util::sync::CancellationToken;

use crate::service::{now_ms, now_s};
use crate::signature;
use crate::store::{Delivery, ProviderStore};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// How often and how fast deliveries go (tests shorten it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryPace {
    /// How often due deliveries are looked for.
    pub poll: Duration,
    /// The wait after the first failed attempt; doubled after each further one.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Deliveries sent at once.
    pub batch: u32,
    /// How long the endpoint may take to answer.
    pub timeout: Duration,
}

impl Default for DeliveryPace {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            batch: 32,
            timeout: Duration::from_secs(10),
        }
    }
}

impl DeliveryPace {
    /// The wait after the `attempts`-th failed attempt: `initial_backoff` × 2^(attempts − 1),
    /// at most `max_backoff`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        self.initial_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }
}

/// Where events go and how they are signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    pub signing_secret: String,
    pub max_attempts: u32,
}

/// Sends the deliveries outbox to the endpoint.
#[derive(Clone)]
pub struct WebhookSender {
    store: Arc<dyn ProviderStore>,
    endpoint: Arc<Endpoint>,
    pace: DeliveryPace,
    client: reqwest::Client,
}

impl WebhookSender {
    pub fn new(
        store: Arc<dyn ProviderStore>,
        endpoint: Endpoint,
        pace: DeliveryPace,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(pace.timeout)
            .user_agent(concat!("rickshaw-provider/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            store,
            endpoint: Arc::new(endpoint),
            pace,
            client,
        })
    }

    /// The task for `Started::task`.
    pub fn task(self) -> impl FnOnce(&Shutdown) + Send + 'static {
        move |shutdown: &Shutdown| {
            let token = shutdown.token();
            shutdown.spawn(self.run(token));
        }
    }

    /// Delivers until `stop`: a round at once after a full one, else after `poll`. A round cut
    /// short by shutdown leaves its claims to expire; those deliveries are sent again later.
    pub async fn run(self, stop: CancellationToken) {
        tracing::info!(url = %self.endpoint.url, "provider webhooks: delivering");
        loop {
            let sent = tokio::select! {
                () = stop.cancelled() => return,
                sent = self.deliver_due() => sent,
            };
            if sent < self.pace.batch as usize {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(self.pace.poll) => {}
                }
            }
        }
    }

    /// One round: claims the due deliveries and attempts them concurrently; returns how many
    /// were attempted.
    pub async fn deliver_due(&self) -> usize {
        let now = now_ms();
        let claim =
            i64::try_from(self.pace.timeout.saturating_mul(2).as_millis()).unwrap_or(i64::MAX);
        let claimed = match self
            .store
            .claim_deliveries(now, self.pace.batch, now.saturating_add(claim))
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "provider webhooks: cannot read the deliveries");
                return 0;
            }
        };
        let attempted = claimed.len();
        futures_util::future::join_all(claimed.iter().map(|d| self.attempt(d))).await;
        attempted
    }

    async fn attempt(&self, delivery: &Delivery) {
        let outcome = self.post(delivery).await;
        let now = now_ms();
        let recorded = match outcome {
            Ok(()) => {
                tracing::debug!(event = %delivery.event_id, attempts = delivery.attempts, "webhook delivered");
                self.store.delivery_succeeded(delivery.id, now).await
            }
            Err(error) if delivery.attempts >= self.endpoint.max_attempts => {
                tracing::error!(
                    event = %delivery.event_id,
                    attempts = delivery.attempts,
                    url = %self.endpoint.url,
                    %error,
                    "webhook given up"
                );
                self.store
                    .delivery_failed(delivery.id, &error, None, now)
                    .await
            }
            Err(error) => {
                let wait = self.pace.backoff(delivery.attempts);
                tracing::warn!(
                    event = %delivery.event_id,
                    attempts = delivery.attempts,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    %error,
                    "webhook not acknowledged; retrying"
                );
                let retry_at =
                    now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
                self.store
                    .delivery_failed(delivery.id, &error, Some(retry_at), now)
                    .await
            }
        };
        if let Err(e) = recorded {
            // The claim expires and the delivery is attempted again.
            tracing::warn!(event = %delivery.event_id, error = %e, "cannot record a webhook attempt");
        }
    }

    /// One signed POST; `Err` says why it does not count as delivered.
    async fn post(&self, delivery: &Delivery) -> Result<(), String> {
        let signature = signature::sign(
            &self.endpoint.signing_secret,
            now_s(),
            delivery.body.as_bytes(),
        );
        let response = self
            .client
            .post(&self.endpoint.url)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(SIGNATURE_HEADER, signature)
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the endpoint answered {status}"))
        }
    }
}

/// An error and its causes, `a: b: c` (reqwest's own message is only the outermost).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let pace = DeliveryPace::default();
        let waits: Vec<u64> = (1..=9).map(|n| pace.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(pace.backoff(u32::MAX), Duration::from_secs(60));
    }
}
