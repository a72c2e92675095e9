//! The payment service's rules: authorize at booking, settle at the trip's end, follow the
//! provider's own changes; every change of a payment a compare-and-set, with its ledger entries.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use domain::ledger::{self, LedgerAccount, Transaction, TransactionKind};
use domain::{AccountId, Timestamp, TripId};
use platform::bus::{Envelope, SharedBus};
use platform::clock;
use platform::idempotency::{self, Once};
use platform::outbox::Outbox;

use crate::events::{PaymentCaptured, PaymentHoldChanged, PaymentRefunded};

use crate::provider_client::{Intent, ProviderClient, ProviderError, ProviderRefund};
use crate::store::{PaymentRecord, PaymentStatus, PaymentStore, RefundWrite, StoreError};
use crate::{
    Authorization, Authorize, DayEarnings, Earnings, Money, PaymentApi, PaymentConfig,
    PaymentError, PaymentView, TripEarnings,
};

/// How a trip ended, as far as its payment is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Completed { fare: u64, driver: AccountId },
    Cancelled { fee: u64, driver: Option<AccountId> },
    NoDriver,
}

#[derive(Clone)]
pub struct PaymentService {
    store: Arc<dyn PaymentStore>,
    provider: ProviderClient,
    config: Arc<PaymentConfig>,
    /// Where `payment.captured.v1` goes: written with the capture, published after the commit.
    outbox: Outbox,
}

fn store_error(e: StoreError) -> PaymentError {
    PaymentError::Unavailable(e.to_string())
}

/// Most rounds of read–change–write a change retries when another writer got there first.
const CAS_ROUNDS: usize = 5;

impl PaymentService {
    pub fn new(
        store: Arc<dyn PaymentStore>,
        bus: SharedBus,
        provider: ProviderClient,
        config: PaymentConfig,
    ) -> Self {
        Self {
            outbox: Outbox::new("payment", bus, store.outbox()),
            store,
            provider,
            config: Arc::new(config),
        }
    }

    /// The outbox of the payment events; run its relay wherever the service runs.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn store(&self) -> &Arc<dyn PaymentStore> {
        &self.store
    }

    pub fn config(&self) -> &PaymentConfig {
        &self.config
    }

    /// Writes `next` over `before` with `entries`; false when another writer changed it first.
    async fn write(
        &self,
        before: &PaymentRecord,
        next: PaymentRecord,
        entries: &[Transaction],
    ) -> Result<bool, PaymentError> {
        let (next, events) = Self::announced(before, next, None)?;
        match self
            .store
            .update(&next, before.version, entries, &events)
            .await
            .map_err(store_error)?
        {
            Some(pending) => {
                self.outbox.publish_committed(pending).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Records the provider's refund `refund` over `before` (`next` carries it), once whoever
    /// reports it first: the admin (`by`) who asked for it, or the provider's `charge.refunded`.
    async fn write_refund(
        &self,
        before: &PaymentRecord,
        next: PaymentRecord,
        entries: &[Transaction],
        by: Option<AccountId>,
        refund: &ProviderRefund,
    ) -> Result<RefundWrite, PaymentError> {
        let (next, events) = Self::announced(before, next, by)?;
        let written = self
            .store
            .record_refund(
                &next,
                before.version,
                entries,
                &events,
                &refund.id,
                refund.amount,
            )
            .await
            .map_err(store_error)?;
        if let RefundWrite::Recorded(pending) = &written {
            self.outbox.publish_committed(pending.clone()).await;
        }
        Ok(written)
    }

    /// `next`, stamped as the version after `before`, and the events announcing the change.
    fn announced(
        before: &PaymentRecord,
        next: PaymentRecord,
        by: Option<AccountId>,
    ) -> Result<(PaymentRecord, Vec<Envelope>), PaymentError> {
        let next = PaymentRecord {
            version: before.version + 1,
            updated_at: clock::now().max(before.updated_at),
            ..next
        };
        // A capture is announced (receipts, fee notices): with the change, through the outbox.
        let mut events = Vec::new();
        if next.status == PaymentStatus::Captured && before.status != PaymentStatus::Captured {
            let event = PaymentCaptured {
                trip_id: next.trip,
                rider_id: next.rider,
                driver_id: next.driver,
                kind: next.charge_kind.unwrap_or(TransactionKind::Fare),
                amount: next.captured,
                currency: domain::fare::CURRENCY.to_owned(),
                held: next.held,
                payment_method: next.payment_method.clone(),
                captured_at: next.updated_at,
            };
            events.push(
                Envelope::from_event(&event, clock::new_id(), next.updated_at)
                    .map_err(|e| PaymentError::Unavailable(e.to_string()))?,
            );
        }
        if next.refunded > before.refunded {
            let event = PaymentRefunded {
                trip_id: next.trip,
                rider_id: next.rider,
                amount: next.refunded - before.refunded,
                refunded: next.refunded,
                captured: next.captured,
                currency: domain::fare::CURRENCY.to_owned(),
                refunded_at: next.updated_at,
                refunded_by: by,
            };
            events.push(
                Envelope::from_event(&event, clock::new_id(), next.updated_at)
                    .map_err(|e| PaymentError::Unavailable(e.to_string()))?,
            );
        }
        // Every other change of the hold is announced too (the audit log reads them).
        if next.status != before.status && PaymentHoldChanged::announces(next.status) {
            let event = PaymentHoldChanged {
                trip_id: next.trip,
                rider_id: next.rider,
                status: next.status,
                held: next.held,
                currency: domain::fare::CURRENCY.to_owned(),
                payment_method: next.payment_method.clone(),
                at: next.updated_at,
            };
            events.push(
                Envelope::from_event(&event, clock::new_id(), next.updated_at)
                    .map_err(|e| PaymentError::Unavailable(e.to_string()))?,
            );
        }
        Ok((next, events))
    }

    fn authorization(record: &PaymentRecord) -> Authorization {
        Authorization {
            trip: record.trip,
            held: record.held,
            status: record.status,
        }
    }

    /// The provider's answer to an authorization, recorded.
    async fn authorized(
        &self,
        record: PaymentRecord,
        answer: Result<Intent, ProviderError>,
    ) -> Result<Authorization, PaymentError> {
        let (status, intent, entries, outcome) = match answer {
            Ok(intent) if intent.status == "requires_capture" => (
                PaymentStatus::Authorized,
                Some(intent.id),
                vec![ledger::hold(record.rider, record.held)],
                Ok(()),
            ),
            Ok(intent) if intent.status == "requires_action" => (
                PaymentStatus::RequiresConfirmation,
                Some(intent.id),
                Vec::new(),
                Err(PaymentError::ConfirmationRequired(record.trip)),
            ),
            Ok(intent) => (
                PaymentStatus::Failed,
                Some(intent.id),
                Vec::new(),
                Err(PaymentError::Unavailable(format!(
                    "the provider answered an intent in state {}",
                    intent.status
                ))),
            ),
            Err(ProviderError::Declined(message)) => (
                PaymentStatus::Declined,
                record.intent.clone(),
                Vec::new(),
                Err(PaymentError::Declined(message)),
            ),
            Err(ProviderError::Refused { code, message }) => (
                PaymentStatus::Declined,
                record.intent.clone(),
                Vec::new(),
                Err(if code == "resource_missing" {
                    PaymentError::Invalid(format!(
                        "payment_method {:?} is not a payment method of the provider",
                        record.payment_method
                    ))
                } else {
                    PaymentError::Invalid(format!("the provider refused the payment: {message}"))
                }),
            ),
            Err(ProviderError::Unavailable(e)) => (
                PaymentStatus::Failed,
                record.intent.clone(),
                Vec::new(),
                Err(PaymentError::Unavailable(e)),
            ),
        };
        let next = PaymentRecord {
            status,
            intent,
            ..record.clone()
        };
        if !self.write(&record, next.clone(), &entries).await? {
            return Err(PaymentError::Conflict(
                "this trip's payment changed meanwhile; try again".into(),
            ));
        }
        metrics::counter!("payment_authorizations_total", "status" => status.as_str()).increment(1);
        outcome.map(|()| Authorization {
            trip: record.trip,
            held: record.held,
            status,
        })
    }

    /// Settles the payment of a trip that ended (idempotent: a settled payment is left alone).
    pub(crate) async fn settle(&self, trip: TripId, outcome: Outcome) -> Result<(), PaymentError> {
        for _ in 0..CAS_ROUNDS {
            let Some(record) = self.store.get(trip).await.map_err(store_error)? else {
                // A trip booked before payments existed, or whose booking never held anything.
                return Ok(());
            };
            if !record.status.holds() {
                return Ok(());
            }
            let Some(intent) = record.intent.clone() else {
                return Ok(());
            };
            let (kind, amount, driver) = match outcome {
                Outcome::Completed { fare, driver } => (TransactionKind::Fare, fare, Some(driver)),
                Outcome::Cancelled { fee, driver } if fee > 0 => {
                    (TransactionKind::Fee, fee, driver)
                }
                Outcome::Cancelled { .. } | Outcome::NoDriver => {
                    let answer = self
                        .provider
                        .cancel(&intent, &format!("void-{intent}"))
                        .await;
                    match self.after_provider(&record, answer, false).await? {
                        Some(_) => {
                            let next = PaymentRecord {
                                status: PaymentStatus::Voided,
                                ..record.clone()
                            };
                            let release = [ledger::release(record.rider, record.held)];
                            if self.write(&record, next, &release).await? {
                                return Ok(());
                            }
                            continue;
                        }
                        None => continue,
                    }
                }
            };
            // Never more than held: a fare above the hold takes the hold (the rest would be a
            // second charge, not built).
            let amount = amount.min(record.held);
            let answer = self
                .provider
                .capture(&intent, amount, &format!("capture-{trip}"))
                .await;
            let Some(captured) = self.after_provider(&record, answer, true).await? else {
                continue;
            };
            let taken = captured.amount_received;
            let next = PaymentRecord {
                status: PaymentStatus::Captured,
                driver,
                captured: taken,
                charge_kind: Some(kind),
                ..record.clone()
            };
            let entries = [
                ledger::release(record.rider, record.held),
                ledger::charge(
                    kind,
                    record.rider,
                    driver,
                    taken,
                    self.config.commission_bps,
                ),
            ];
            if self.write(&record, next, &entries).await? {
                metrics::counter!("payment_captures_total", "kind" => kind.as_str()).increment(1);
                return Ok(());
            }
        }
        Err(PaymentError::Conflict(format!(
            "the payment of trip {trip} kept changing"
        )))
    }

    /// The provider's answer to a capture or a cancel: the intent, or `None` when the payment was
    /// reconciled with a change the provider made on its own (an expired hold) and should be read
    /// again.
    async fn after_provider(
        &self,
        record: &PaymentRecord,
        answer: Result<Intent, ProviderError>,
        capturing: bool,
    ) -> Result<Option<Intent>, PaymentError> {
        match answer {
            Ok(intent) => Ok(Some(intent)),
            Err(ProviderError::Unavailable(e)) => Err(PaymentError::Unavailable(e)),
            Err(refused) => {
                // The intent is not where we thought: ask the provider what it is.
                let Some(id) = record.intent.as_deref() else {
                    return Err(PaymentError::Invalid(refused.to_string()));
                };
                let intent = self
                    .provider
                    .get(id)
                    .await
                    .map_err(|e| PaymentError::Unavailable(e.to_string()))?;
                if intent.status == "canceled" {
                    self.expired(record).await?;
                    return Ok(None);
                }
                // Captured already (by an earlier try whose record was lost): record it now.
                if capturing && intent.status == "succeeded" {
                    return Ok(Some(intent));
                }
                Err(PaymentError::Invalid(format!(
                    "{refused} (the intent is {})",
                    intent.status
                )))
            }
        }
    }

    /// The provider let the hold lapse: the payment is expired and its hold released.
    async fn expired(&self, record: &PaymentRecord) -> Result<(), PaymentError> {
        if !record.status.holds() {
            return Ok(());
        }
        let next = PaymentRecord {
            status: PaymentStatus::Expired,
            ..record.clone()
        };
        let release = [ledger::release(record.rider, record.held)];
        self.write(record, next, &release).await?;
        metrics::counter!("payment_expired_holds_total").increment(1);
        tracing::warn!(trip = %record.trip, "a payment's hold expired before its trip ended");
        Ok(())
    }

    /// A provider event (already verified): its intent's payment follows what the provider did
    /// on its own. Idempotent; an event about an unknown intent is ignored.
    pub(crate) async fn on_provider_event(
        &self,
        kind: &str,
        intent: &str,
        cancellation_reason: Option<&str>,
        refund: Option<ProviderRefund>,
    ) -> Result<(), PaymentError> {
        let expiry = kind == "payment_intent.canceled" && cancellation_reason == Some("automatic");
        let refunded = kind == "charge.refunded";
        if !expiry && !refunded {
            // Everything else reports what this service asked for and already recorded.
            return Ok(());
        }
        let Some(record) = self.store.by_intent(intent).await.map_err(store_error)? else {
            return Ok(());
        };
        match refund {
            // A refund made at the provider (by its dashboard, say), or one of this service's
            // reported before its own record: recorded once, by the refund's id.
            Some(refund) if refunded => self.record_refund(record, &refund, None).await,
            _ if expiry => self.expired(&record).await,
            _ => Ok(()),
        }
    }

    /// One refund: asked of the provider once (its idempotency key is the client's), then
    /// recorded on the payment as it is now (a lost compare-and-set re-reads, never re-asks).
    async fn refund_once(
        &self,
        trip: TripId,
        amount: Option<u64>,
        key: &str,
        by: AccountId,
    ) -> Result<PaymentView, PaymentError> {
        let record = self
            .store
            .get(trip)
            .await
            .map_err(store_error)?
            .ok_or(PaymentError::NotFound(trip))?;
        if record.status != PaymentStatus::Captured {
            return Err(PaymentError::Conflict(format!(
                "this payment is {}; only a captured one can be refunded",
                record.status.as_str()
            )));
        }
        let left = record.captured.saturating_sub(record.refunded);
        let amount = amount.unwrap_or(left);
        if amount == 0 || amount > left {
            return Err(PaymentError::Invalid(format!(
                "amount must be 1 to {left}: {} captured, {} refunded already",
                record.captured, record.refunded
            )));
        }
        let intent = record
            .intent
            .clone()
            .ok_or_else(|| PaymentError::Conflict("this payment has no intent".into()))?;
        let refund = self
            .provider
            .refund(&intent, amount, &format!("refund-{trip}-{key}"))
            .await
            .map_err(|e| match e {
                ProviderError::Unavailable(e) => PaymentError::Unavailable(e),
                other => PaymentError::Invalid(other.to_string()),
            })?;
        self.record_refund(record, &refund, Some(by)).await?;
        let stored = self
            .store
            .get(trip)
            .await
            .map_err(store_error)?
            .ok_or(PaymentError::NotFound(trip))?;
        Ok(view(&stored))
    }

    /// Records the provider's `refund` on the payment (`record` as last read), once: by compare
    /// and set, re-reading when another change came first, never asking the provider again. A
    /// refund recorded already (the admin's call and the provider's `charge.refunded` race) is
    /// done; one beyond what is left of the capture is recorded for what is left.
    async fn record_refund(
        &self,
        record: PaymentRecord,
        refund: &ProviderRefund,
        by: Option<AccountId>,
    ) -> Result<(), PaymentError> {
        let trip = record.trip;
        let mut current = record;
        for _ in 0..CAS_ROUNDS {
            if current.status != PaymentStatus::Captured {
                tracing::warn!(%trip, refund = %refund.id, status = current.status.as_str(), "a refund of a payment that is not captured; not recorded");
                return Ok(());
            }
            let amount = refund
                .amount
                .min(current.captured.saturating_sub(current.refunded));
            let next = PaymentRecord {
                refunded: current.refunded + amount,
                ..current.clone()
            };
            let entries = [ledger::refund(
                current.rider,
                current.driver,
                current.captured,
                current.refunded,
                amount,
                self.config.commission_bps,
            )];
            match self
                .write_refund(&current, next, &entries, by, refund)
                .await?
            {
                RefundWrite::Recorded(_) => {
                    metrics::counter!("payment_refunds_total", "by" => if by.is_some() { "admin" } else { "provider" }).increment(1);
                    return Ok(());
                }
                RefundWrite::AlreadyRecorded => return Ok(()),
                RefundWrite::Changed => {}
            }
            current = self
                .store
                .get(trip)
                .await
                .map_err(store_error)?
                .ok_or(PaymentError::NotFound(trip))?;
        }
        Err(PaymentError::Unavailable(format!(
            "refund {} of trip {trip} was made but not yet recorded; retry with the same Idempotency-Key",
            refund.id
        )))
    }
}

fn view(record: &PaymentRecord) -> PaymentView {
    let amount = |v: u64| Money::bdt(i64::try_from(v).unwrap_or(i64::MAX));
    PaymentView {
        trip_id: record.trip,
        status: record.status,
        held: amount(record.held),
        captured: amount(record.captured),
        refunded: amount(record.refunded),
        charged_for: record.charge_kind.map(|k| k.as_str().to_owned()),
        created_at: record.created_at,
        updated_at: record.updated_at,
    }
}

/// `YYYY-MM-DD` (UTC) of `at` (Howard Hinnant's civil-from-days).
fn day_of(at: Timestamp) -> String {
    let days = at.as_millis().div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Most entries an earnings summary reads.
const EARNINGS_ENTRIES: u32 = 5_000;

#[async_trait]
impl PaymentApi for PaymentService {
    async fn authorize(&self, request: Authorize) -> Result<Authorization, PaymentError> {
        let now = clock::now();
        let held = self.config.hold_for(request.fare);
        let method = request
            .payment_method
            .clone()
            .unwrap_or_else(|| self.config.default_method.clone());
        // A provider's ids (`pm_card_visa`): anything else could not even be sent (it goes into
        // the idempotency key, a header).
        let valid = (1..=100).contains(&method.len())
            && method
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(PaymentError::Invalid(
                "payment_method must be a payment method id: 1 to 100 letters, digits, _ or -"
                    .into(),
            ));
        }
        let fresh = PaymentRecord {
            trip: request.trip,
            rider: request.rider,
            driver: None,
            intent: None,
            payment_method: method.clone(),
            status: PaymentStatus::Authorizing,
            held,
            captured: 0,
            refunded: 0,
            charge_kind: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let record = if self.store.insert(&fresh).await.map_err(store_error)? {
            fresh
        } else {
            let existing = self
                .store
                .get(request.trip)
                .await
                .map_err(store_error)?
                .ok_or(PaymentError::NotFound(request.trip))?;
            if existing.rider != request.rider {
                return Err(PaymentError::Conflict(
                    "this trip's payment belongs to another rider".into(),
                ));
            }
            // Authorizing for longer than a provider call can take: its process died midway.
            let abandoned = existing.status == PaymentStatus::Authorizing
                && now.millis_since(existing.updated_at) > self.config.provider_timeout_ms + 5_000;
            match existing.status {
                PaymentStatus::Authorized | PaymentStatus::Captured if existing.held != held => {
                    return Err(PaymentError::Conflict(
                        "this quote is being booked with another package; book it with one".into(),
                    ));
                }
                PaymentStatus::Authorized | PaymentStatus::Captured => {
                    return Ok(Self::authorization(&existing));
                }
                PaymentStatus::Authorizing if !abandoned => {
                    return Err(PaymentError::Conflict(
                        "this booking's payment is being authorized; try again in a moment".into(),
                    ));
                }
                PaymentStatus::RequiresConfirmation => {
                    return Err(PaymentError::ConfirmationRequired(request.trip));
                }
                // Declined, failed, voided or expired (or abandoned): another attempt.
                _ => {
                    let retry = PaymentRecord {
                        status: PaymentStatus::Authorizing,
                        payment_method: method.clone(),
                        held,
                        ..existing.clone()
                    };
                    if !self.write(&existing, retry, &[]).await? {
                        return Err(PaymentError::Conflict(
                            "this booking's payment is being authorized; try again in a moment"
                                .into(),
                        ));
                    }
                    self.store
                        .get(request.trip)
                        .await
                        .map_err(store_error)?
                        .ok_or(PaymentError::NotFound(request.trip))?
                }
            }
        };
        // The key names what is asked (card, amount) after which intent: an attempt whose answer
        // was lost (a timeout) asks again under the same key and gets that answer, never a second
        // hold; another card, or a new attempt after a hold was let go, is a new intent.
        let key = format!(
            "authorize-{}-{}-{}-{}",
            record.trip,
            method,
            held,
            record.intent.as_deref().unwrap_or("first")
        );
        let answer = self
            .provider
            .create_intent(held, &method, &record.trip.to_string(), &key)
            .await;
        self.authorized(record, answer).await
    }

    async fn void(&self, trip: TripId) -> Result<(), PaymentError> {
        let Some(record) = self.store.get(trip).await.map_err(store_error)? else {
            return Ok(());
        };
        match (record.status, record.intent.clone()) {
            (PaymentStatus::Authorized | PaymentStatus::RequiresConfirmation, Some(intent)) => {
                let answer = self
                    .provider
                    .cancel(&intent, &format!("void-{intent}"))
                    .await;
                if self.after_provider(&record, answer, false).await?.is_none() {
                    return Ok(());
                }
                let entries: Vec<Transaction> = if record.status.holds() {
                    vec![ledger::release(record.rider, record.held)]
                } else {
                    Vec::new()
                };
                let next = PaymentRecord {
                    status: PaymentStatus::Voided,
                    ..record.clone()
                };
                self.write(&record, next, &entries).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn confirm(&self, rider: AccountId, trip: TripId) -> Result<Authorization, PaymentError> {
        let record = self
            .store
            .get(trip)
            .await
            .map_err(store_error)?
            .filter(|r| r.rider == rider)
            .ok_or(PaymentError::NotFound(trip))?;
        match (record.status, record.intent.clone()) {
            (PaymentStatus::Authorized | PaymentStatus::Captured, _) => {
                Ok(Self::authorization(&record))
            }
            (PaymentStatus::RequiresConfirmation, Some(intent)) => {
                let answer = self
                    .provider
                    .confirm(&intent, &format!("confirm-{trip}-{}", record.version))
                    .await;
                self.authorized(record, answer).await
            }
            (status, _) => Err(PaymentError::Conflict(format!(
                "this payment is {}; there is nothing to confirm",
                status.as_str()
            ))),
        }
    }

    async fn payments_of(&self, rider: AccountId) -> Result<Vec<PaymentView>, PaymentError> {
        let records = self.store.of_rider(rider, 100).await.map_err(store_error)?;
        Ok(records.iter().map(view).collect())
    }

    async fn refund(
        &self,
        trip: TripId,
        amount: Option<u64>,
        idempotency_key: String,
        by: AccountId,
    ) -> Result<PaymentView, PaymentError> {
        idempotency::valid_key(&idempotency_key).map_err(PaymentError::Invalid)?;
        let scope = format!("refund:{trip}");
        let fingerprint = serde_json::json!([amount]).to_string();
        // An answer saying "try again" frees the key; any other is kept and replayed.
        let keep = |result: &Result<PaymentView, PaymentError>| {
            !matches!(result, Err(PaymentError::Unavailable(_)))
        };
        let once = self
            .store
            .idempotency()
            .once(
                &scope,
                &idempotency_key,
                &fingerprint,
                clock::now(),
                keep,
                || self.refund_once(trip, amount, &idempotency_key, by),
            )
            .await
            .map_err(PaymentError::Unavailable)?;
        match once {
            Once::Answered(result) => result,
            Once::Mismatch => Err(PaymentError::Invalid(
                "this Idempotency-Key was used with another amount; send a new key for a new refund"
                    .into(),
            )),
            Once::InFlight => Err(PaymentError::Conflict(
                "a refund with this Idempotency-Key is still running; retry it in a moment".into(),
            )),
        }
    }

    async fn earnings_of(&self, driver: AccountId) -> Result<Earnings, PaymentError> {
        let entries = self
            .store
            .entries_of(LedgerAccount::Driver(driver), EARNINGS_ENTRIES)
            .await
            .map_err(store_error)?;
        let mut per_trip: BTreeMap<TripId, (i64, Timestamp)> = BTreeMap::new();
        for entry in &entries {
            let slot = per_trip.entry(entry.trip).or_insert((0, entry.at));
            slot.0 += entry.amount;
            slot.1 = slot.1.min(entry.at);
        }
        let mut trips: Vec<TripEarnings> = per_trip
            .into_iter()
            .map(|(trip, (amount, at))| TripEarnings {
                trip_id: trip,
                amount: Money::bdt(amount),
                at,
            })
            .collect();
        trips.sort_by(|a, b| b.at.cmp(&a.at).then(b.trip_id.cmp(&a.trip_id)));
        let mut per_day: BTreeMap<String, (i64, u32)> = BTreeMap::new();
        for trip in &trips {
            let slot = per_day.entry(day_of(trip.at)).or_insert((0, 0));
            slot.0 += trip.amount.amount;
            slot.1 += 1;
        }
        let days = per_day
            .into_iter()
            .rev()
            .map(|(day, (amount, trips))| DayEarnings {
                day,
                amount: Money::bdt(amount),
                trips,
            })
            .collect();
        let total = trips.iter().map(|t| t.amount.amount).sum();
        Ok(Earnings {
            total: Money::bdt(total),
            days,
            trips,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_dates() {
        assert_eq!(day_of(Timestamp::from_millis(0)), "1970-01-01");
        assert_eq!(
            day_of(Timestamp::from_millis(951_782_400_000)),
            "2000-02-29"
        );
        assert_eq!(
            day_of(Timestamp::from_millis(1_795_910_399_999)),
            "2026-11-28"
        );
        assert_eq!(
            day_of(Timestamp::from_millis(1_795_910_400_000)),
            "2026-11-29"
        );
        assert_eq!(day_of(Timestamp::from_millis(-1)), "1969-12-31");
    }
}
