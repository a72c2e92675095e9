//! The provider's operations on its objects: each reads the intent, applies the state machine
//! (`model`) and writes the result with a compare-and-set on its version, with the events the
//! change produces. A write that lost a race reads again and decides anew — so of concurrent
//! captures exactly one succeeds, and the others see a succeeded intent.

use std::sync::Arc;

use crate::error::ProviderError;
use crate::model::{
    CancellationReason, CardOutcome, Event, EventObject, EventType, NewIntent, PaymentIntent,
    Refund, card_outcome,
};
use crate::store::{ProviderStore, StoreError, StoredIntent};

/// Rounds of read-decide-write before a change gives up (each lost round means another change of
/// the same intent committed in between).
const MAX_ROUNDS: usize = 8;
/// Expired authorizations canceled per batch (the expiry loops while batches are full).
const EXPIRY_BATCH: u32 = 100;

/// Now, in unix seconds (the objects' times).
pub(crate) fn now_s() -> i64 {
    platform::clock::now().as_millis().div_euclid(1000)
}

pub(crate) fn now_ms() -> i64 {
    platform::clock::now().as_millis()
}

/// The simulated provider: PaymentIntents, refunds and the events they emit.
pub struct Provider {
    store: Arc<dyn ProviderStore>,
    authorization_ttl_s: i64,
    /// Whether events are recorded for delivery (no webhook endpoint: nothing would send them).
    webhooks: bool,
}

impl Provider {
    pub fn new(store: Arc<dyn ProviderStore>, authorization_ttl_s: u64, webhooks: bool) -> Self {
        Self {
            store,
            authorization_ttl_s: i64::try_from(authorization_ttl_s).unwrap_or(i64::MAX),
            webhooks,
        }
    }

    pub fn store(&self) -> &Arc<dyn ProviderStore> {
        &self.store
    }

    /// The events to write with a change: none when no endpoint would receive them.
    fn events(&self, events: impl IntoIterator<Item = Event>) -> Vec<Event> {
        if self.webhooks {
            events.into_iter().collect()
        } else {
            Vec::new()
        }
    }

    /// Creates and confirms an intent. A declined card is an error (402) that carries the stored
    /// intent.
    pub async fn create_intent(&self, new: NewIntent) -> Result<PaymentIntent, ProviderError> {
        let outcome = card_outcome(&new.payment_method).ok_or_else(|| {
            ProviderError::missing_reference("PaymentMethod", "payment_method", &new.payment_method)
                .not_executed()
        })?;
        let now = now_s();
        let intent = PaymentIntent::confirmed(new, &outcome, now, self.authorization_ttl_s);
        let events = self.events([Event::of_intent(&intent, now)]);
        self.store.insert_intent(&intent, &events).await?;
        tracing::debug!(intent = %intent.id, status = %intent.status, amount = intent.amount, "payment intent created");
        match outcome {
            CardOutcome::Declined => Err(ProviderError::declined(&intent)),
            CardOutcome::Authorized | CardOutcome::NeedsAuthentication => Ok(intent),
        }
    }

    pub async fn intent(&self, id: &str) -> Result<PaymentIntent, ProviderError> {
        Ok(self.stored(id).await?.intent)
    }

    async fn stored(&self, id: &str) -> Result<StoredIntent, ProviderError> {
        self.store
            .intent(id)
            .await?
            .ok_or_else(|| ProviderError::not_found("payment_intent", id))
    }

    /// Applies `change` to the intent's latest version until the write wins.
    async fn change(
        &self,
        id: &str,
        change: impl Fn(&PaymentIntent) -> Result<PaymentIntent, ProviderError>,
    ) -> Result<PaymentIntent, ProviderError> {
        for _ in 0..MAX_ROUNDS {
            let stored = self.stored(id).await?;
            let next = change(&stored.intent)?;
            let events = self.events([Event::of_intent(&next, now_s())]);
            match self
                .store
                .update_intent(&next, stored.version, &events)
                .await
            {
                Ok(_) => {
                    tracing::debug!(intent = %id, status = %next.status, "payment intent changed");
                    return Ok(next);
                }
                Err(StoreError::Stale) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ProviderError::unavailable(&format_args!(
            "payment intent {id} changed {MAX_ROUNDS} times while being changed"
        )))
    }

    /// The customer authenticated: `requires_action` → `requires_capture`.
    pub async fn confirm(&self, id: &str) -> Result<PaymentIntent, ProviderError> {
        self.change(id, PaymentIntent::confirm).await
    }

    /// Captures `amount` (default all) of an authorized intent, releasing the rest; at most once.
    pub async fn capture(
        &self,
        id: &str,
        amount: Option<u64>,
    ) -> Result<PaymentIntent, ProviderError> {
        self.change(id, |intent| intent.capture(amount)).await
    }

    pub async fn cancel(
        &self,
        id: &str,
        reason: Option<CancellationReason>,
    ) -> Result<PaymentIntent, ProviderError> {
        self.change(id, |intent| intent.cancel(reason)).await
    }

    /// Refunds `amount` (default: all not yet refunded) of a captured intent.
    pub async fn refund(
        &self,
        intent_id: &str,
        amount: Option<u64>,
    ) -> Result<Refund, ProviderError> {
        for _ in 0..MAX_ROUNDS {
            let stored = self.store.intent(intent_id).await?.ok_or_else(|| {
                ProviderError::missing_reference("payment_intent", "payment_intent", intent_id)
            })?;
            let (next, amount) = stored.intent.refund(amount)?;
            let now = now_s();
            let refund = Refund::new(&next, amount, now);
            let events = self.events([Event::new(
                EventType::ChargeRefunded,
                EventObject::Refund(refund.clone()),
                now,
            )]);
            match self
                .store
                .insert_refund(&refund, &next, stored.version, &events)
                .await
            {
                Ok(()) => {
                    tracing::debug!(intent = %intent_id, refund = %refund.id, amount, "refunded");
                    return Ok(refund);
                }
                Err(StoreError::Stale) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ProviderError::unavailable(&format_args!(
            "payment intent {intent_id} changed {MAX_ROUNDS} times while being refunded"
        )))
    }

    pub async fn refund_by_id(&self, id: &str) -> Result<Refund, ProviderError> {
        self.store
            .refund(id)
            .await?
            .ok_or_else(|| ProviderError::not_found("refund", id))
    }

    /// Cancels every open intent whose authorization expired at `now_s`
    /// (`cancellation_reason: "automatic"`); returns how many.
    pub async fn expire_authorizations(&self, now_s: i64) -> Result<usize, StoreError> {
        let mut canceled = 0;
        // Bounded: each full batch is canceled (or was changed by someone else) before the next.
        for _ in 0..100 {
            let batch = self.store.expired_intents(now_s, EXPIRY_BATCH).await?;
            let full = batch.len() == EXPIRY_BATCH as usize;
            for stored in batch {
                let Ok(next) = stored.intent.cancel(Some(CancellationReason::Automatic)) else {
                    continue;
                };
                let events = self.events([Event::of_intent(&next, now_s)]);
                match self
                    .store
                    .update_intent(&next, stored.version, &events)
                    .await
                {
                    Ok(_) => {
                        canceled += 1;
                        tracing::info!(
                            intent = %next.id,
                            amount = next.amount,
                            "uncaptured authorization expired: canceled"
                        );
                    }
                    // Captured or canceled meanwhile: not expired any more, or listed again.
                    Err(StoreError::Stale) => {}
                    Err(e) => return Err(e),
                }
            }
            if !full {
                break;
            }
        }
        Ok(canceled)
    }
}
