//! The bus seam: services publish events and consume them through this trait only, so the
//! in-process adapter (embedded mode) and the NATS JetStream adapter (distributed mode) are
//! interchangeable. Both must pass `bus_contract_suite!`.
//!
//! Semantics every adapter provides:
//! - subjects are dot-separated tokens; filters use `*` (one token) and `>` (the rest);
//! - a *durable* subscription names a consumer group: each message goes to one live member of the
//!   group; an *ephemeral* one gets every message (fan-out);
//! - delivery is at least once: a message is redelivered until acked, after `nak` or when the
//!   delivery is dropped unacknowledged; after `max_deliver` attempts it goes to
//!   `deadletter.<subject>` instead;
//! - publishing the same event id twice within the dedup window delivers it once.

#[doc(hidden)]
pub mod contract;
mod memory;
mod nats;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::events::Event;
use domain::{EventId, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use memory::InProcessBus;
pub use nats::{NatsBus, NatsBusConfig, NatsTls};

use crate::clock;

/// Prefix of the subject a message goes to after `max_deliver` failed attempts.
pub const DEAD_LETTER_PREFIX: &str = "deadletter";

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the bus is closed")]
    Closed,
    #[error("invalid subject or filter {0:?}")]
    InvalidSubject(String),
    #[error("cannot encode event: {0}")]
    Encode(String),
    #[error("cannot decode {subject} event {id}: {reason}")]
    Decode {
        subject: String,
        id: EventId,
        reason: String,
    },
    #[error("bus backend error: {0}")]
    Backend(String),
    /// A consumer is too far behind to take more now; retrying later can succeed.
    #[error("the bus is overloaded: {0}")]
    Overloaded(String),
}

/// One message on the bus. `payload` is the event's JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: EventId,
    pub subject: String,
    pub occurred_at: Timestamp,
    /// Transport metadata (trace context, …), never business data.
    pub headers: BTreeMap<String, String>,
    pub payload: Vec<u8>,
    /// What the payload decoded to, shared by the envelope's clones: on the in-process bus every
    /// consumer of an event gets a clone of one envelope, and only the first decodes it.
    #[serde(skip)]
    decoded: Decoded,
}

/// The events an envelope's payload has been decoded to (one a type: two services may read the
/// same subject as types of their own).
#[derive(Clone, Default)]
struct Decoded(Arc<std::sync::Mutex<Vec<Arc<dyn std::any::Any + Send + Sync>>>>);

impl Decoded {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<dyn std::any::Any + Send + Sync>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get<E: Event>(&self) -> Option<E> {
        self.lock()
            .iter()
            .find_map(|event| event.downcast_ref::<E>().cloned())
    }

    /// Keeps `event` for the envelope's other clones, if it has any.
    fn keep<E: Event>(&self, event: &E) {
        if Arc::strong_count(&self.0) > 1 {
            self.lock().push(Arc::new(event.clone()));
        }
    }
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoded")
    }
}

/// A cache: envelopes are equal whatever their clones have decoded.
impl PartialEq for Decoded {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Envelope {
    pub fn new(
        id: EventId,
        subject: String,
        occurred_at: Timestamp,
        headers: BTreeMap<String, String>,
        payload: Vec<u8>,
    ) -> Self {
        Self {
            id,
            subject,
            occurred_at,
            headers,
            payload,
            decoded: Decoded::default(),
        }
    }

    pub fn from_event<E: Event>(
        event: &E,
        id: EventId,
        occurred_at: Timestamp,
    ) -> Result<Self, BusError> {
        // The trace it happens in goes with it (through the outbox and JetStream too).
        let mut headers = BTreeMap::new();
        crate::telemetry::inject_map(&mut headers);
        Ok(Self::new(
            id,
            E::SUBJECT.to_owned(),
            occurred_at,
            headers,
            serde_json::to_vec(event).map_err(|e| BusError::Encode(e.to_string()))?,
        ))
    }

    /// The payload as `E`: decoded here, or cloned from what a clone of this envelope decoded.
    pub fn decode<E: Event>(&self) -> Result<E, BusError> {
        if let Some(event) = self.decoded.get::<E>() {
            return Ok(event);
        }
        let event: E = serde_json::from_slice(&self.payload).map_err(|e| BusError::Decode {
            subject: self.subject.clone(),
            id: self.id,
            reason: e.to_string(),
        })?;
        self.decoded.keep(&event);
        Ok(event)
    }
}

#[derive(Clone, Debug)]
pub struct SubscribeOptions {
    /// Subject filter, e.g. `matching.>` or `rider.ride_requested.v1`.
    pub filter: String,
    /// Consumer group name; `None` for an ephemeral fan-out subscription.
    pub durable: Option<String>,
    /// Attempts before a message is dead-lettered.
    pub max_deliver: u32,
}

impl SubscribeOptions {
    pub fn durable(filter: impl Into<String>, group: impl Into<String>) -> Self {
        Self {
            filter: filter.into(),
            durable: Some(group.into()),
            max_deliver: 5,
        }
    }

    pub fn ephemeral(filter: impl Into<String>) -> Self {
        Self {
            filter: filter.into(),
            durable: None,
            max_deliver: 5,
        }
    }
}

/// How a delivery is settled; each adapter supplies its own.
#[async_trait]
pub trait Acker: Send {
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
    async fn nak(self: Box<Self>, delay: Duration) -> Result<(), BusError>;
}

/// A message handed to a subscriber. Settle it with `ack` once its effect is durable, or `nak` to
/// have it redelivered; dropping it unsettled counts as a `nak`.
pub struct Delivery {
    pub envelope: Envelope,
    /// 1 on first delivery.
    pub attempt: u32,
    /// Messages the broker still holds for this consumer after this one (JetStream's
    /// `num_pending`); `None` where the broker does not say (the in-process bus, whose backlog is
    /// all in the subscription's queue).
    pub pending: Option<u64>,
    acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("envelope", &self.envelope)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    pub fn new(envelope: Envelope, attempt: u32, acker: Box<dyn Acker>) -> Self {
        Self {
            envelope,
            attempt,
            pending: None,
            acker,
        }
    }

    pub fn with_pending(mut self, pending: u64) -> Self {
        self.pending = Some(pending);
        self
    }

    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack().await
    }

    pub async fn nak(self, delay: Duration) -> Result<(), BusError> {
        self.acker.nak(delay).await
    }
}

/// A stream of deliveries; ends when the bus closes.
#[derive(Debug)]
pub struct Subscription {
    receiver: mpsc::Receiver<Delivery>,
}

impl Subscription {
    pub fn new(receiver: mpsc::Receiver<Delivery>) -> Self {
        Self { receiver }
    }

    pub async fn next(&mut self) -> Option<Delivery> {
        self.receiver.recv().await
    }

    /// A delivery already waiting, if any (for a consumer that takes what has come in batches).
    pub fn try_next(&mut self) -> Option<Delivery> {
        self.receiver.try_recv().ok()
    }

    /// Deliveries received and waiting in this process for the handler.
    pub fn queued(&self) -> usize {
        self.receiver.len()
    }
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Returns once the bus has accepted the message (for JetStream: once the stream stored it).
    async fn publish(&self, envelope: Envelope) -> Result<(), BusError>;
    async fn subscribe(&self, options: SubscribeOptions) -> Result<Subscription, BusError>;
}

pub type SharedBus = Arc<dyn Bus>;

/// Wraps `event` in a fresh envelope and publishes it; returns the event id.
pub async fn publish_event<E: Event>(bus: &dyn Bus, event: &E) -> Result<EventId, BusError> {
    let id = clock::new_id();
    bus.publish(Envelope::from_event(event, id, clock::now())?)
        .await?;
    Ok(id)
}

/// Checks a subject (no wildcards) or, with `allow_wildcards`, a filter.
pub fn validate_subject(subject: &str, allow_wildcards: bool) -> Result<(), BusError> {
    let invalid = || BusError::InvalidSubject(subject.to_owned());
    if subject.is_empty() {
        return Err(invalid());
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        let wildcard = *token == "*" || *token == ">";
        if token.is_empty()
            || token.contains(char::is_whitespace)
            || (wildcard && !allow_wildcards)
            || (*token == ">" && i + 1 != tokens.len())
            || (!wildcard && (token.contains('*') || token.contains('>')))
        {
            return Err(invalid());
        }
    }
    Ok(())
}

/// NATS subject matching: `*` matches one token, a final `>` one or more.
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for token in filter.split('.') {
        match (token, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (t, Some(s)) if t == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

/// What a consumer's handler decided.
#[derive(Debug)]
pub enum Handled {
    /// Done (or deliberately ignored): ack.
    Done,
    /// A transient failure: redeliver later.
    Retry(String),
}

/// Runs a typed consumer until `shutdown`: decodes each delivery, calls `handler`, acks on `Done`,
/// naks with exponential backoff on `Retry`. A payload that cannot be decoded is logged and acked
/// (redelivering it cannot help); the bus's dead-letter subject catches handlers that keep failing.
pub async fn consume<E, F, Fut>(
    subscription: Subscription,
    shutdown: CancellationToken,
    consumer: &'static str,
    handler: F,
) where
    E: Event,
    F: FnMut(E, Envelope) -> Fut + Send,
    Fut: Future<Output = Handled> + Send,
{
    consume_concurrently(subscription, shutdown, consumer, 1, handler).await;
}

/// [`consume`] with up to `limit` events handled at once, for a handler that waits on something
/// slow (another service, a payment provider) for some events only: while one waits, the next
/// are taken, so the consumer's queue does not fill behind it (on the in-process bus a full
/// queue refuses every publish of the subject, to every consumer). An event whose handling
/// finishes without waiting takes no place, so even `limit` slow ones do not hold up those the
/// handler skips. Order is kept only within `limit = 1`; each event is acked or redelivered on
/// its own. Stopping, it waits for the events in hand.
pub async fn consume_concurrently<E, F, Fut>(
    mut subscription: Subscription,
    shutdown: CancellationToken,
    consumer: &'static str,
    limit: usize,
    mut handler: F,
) where
    E: Event,
    F: FnMut(E, Envelope) -> Fut + Send,
    Fut: Future<Output = Handled> + Send,
{
    use futures_util::{FutureExt, StreamExt};
    let limit = limit.max(1);
    let mut running = futures_util::stream::FuturesUnordered::new();
    // An event taken while every place was busy, whose handling did not finish at once: it waits
    // for a place, and nothing more is taken meanwhile.
    let mut parked = None;
    // Registered once: a lookup by name and label for every event costs more than the handling
    // of some.
    let lag_gauge = metrics::gauge!("bus_consumer_lag", "consumer" => consumer);
    let duration = metrics::histogram!("bus_handle_duration_seconds", "consumer" => consumer);
    loop {
        if running.len() < limit
            && let Some(handling) = parked.take()
        {
            running.push(handling);
        }
        // One at a time keeps the order: nothing is taken while an event is in hand. Several
        // at a time, an event is taken even when every place is busy, in case it is handled
        // at once (most of a subject's events, for a handler that skips them).
        let busy = running.len() >= limit && (limit == 1 || parked.is_some());
        if busy {
            running.next().await;
            continue;
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(()) = running.next(), if !running.is_empty() => {}
            next = subscription.next() => match next {
                Some(delivery) => {
                    // The consumer's lag: what waits here for the handler, and what the broker
                    // still holds.
                    let lag = delivery.pending.unwrap_or(0) + subscription.queued() as u64;
                    lag_gauge.set(lag as f64);
                    let mut handling =
                        Box::pin(handle_one(delivery, consumer, duration.clone(), &mut handler));
                    // Handled at once (or started): a place is taken only by what must wait.
                    if (&mut handling).now_or_never().is_none() {
                        if running.len() < limit {
                            running.push(handling);
                        } else {
                            parked = Some(handling);
                        }
                    }
                }
                None => break,
            },
        }
    }
    running.extend(parked);
    while running.next().await.is_some() {}
}

/// One delivery of [`consume_concurrently`]: decoded and given to `handler` now, then (the
/// returned future) handled and acked, or redelivered with backoff.
fn handle_one<E, F, Fut>(
    delivery: Delivery,
    consumer: &'static str,
    duration: metrics::Histogram,
    handler: &mut F,
) -> impl Future<Output = ()> + Send + use<E, F, Fut>
where
    E: Event,
    F: FnMut(E, Envelope) -> Fut + Send,
    Fut: Future<Output = Handled> + Send,
{
    let started = std::time::Instant::now();
    let work = match delivery.envelope.decode::<E>() {
        Ok(event) => {
            let span = if crate::telemetry::traces_on() {
                tracing::info_span!(
                    "bus.handle",
                    otel.name = %format!("{consumer} {}", delivery.envelope.subject),
                    otel.kind = "consumer",
                    consumer,
                    subject = %delivery.envelope.subject,
                    trace_id = tracing::field::Empty,
                )
            } else {
                tracing::Span::none()
            };
            crate::telemetry::extract_map(&span, &delivery.envelope.headers);
            crate::telemetry::record_trace_id(&span);
            Ok(tracing::Instrument::instrument(
                handler(event, delivery.envelope.clone()),
                span,
            ))
        }
        Err(e) => Err(e),
    };
    async move {
        let outcome = match work {
            Ok(handled) => handled.await,
            Err(e) => {
                tracing::error!(consumer, error = %e, "dropping undecodable event");
                metrics::counter!("bus_poison_messages_total", "consumer" => consumer).increment(1);
                let _ = delivery.ack().await;
                return;
            }
        };
        duration.record(started.elapsed().as_secs_f64());
        let attempt = delivery.attempt;
        let settled = match outcome {
            Handled::Done => delivery.ack().await,
            Handled::Retry(reason) => {
                let delay = backoff(attempt);
                tracing::warn!(
                    consumer,
                    attempt,
                    ?delay,
                    reason,
                    "handler failed; will retry"
                );
                delivery.nak(delay).await
            }
        };
        if let Err(e) = settled {
            tracing::warn!(consumer, error = %e, "cannot settle delivery");
        }
    }
}

/// The events of a batch ([`consume_batches`]) that decode as `E`; one that does not is logged,
/// counted in `bus_poison_messages_total` and left out (acked with the batch: redelivering it
/// cannot help).
pub fn decode_all<E: Event>(envelopes: &[Envelope], consumer: &'static str) -> Vec<E> {
    envelopes
        .iter()
        .filter_map(|envelope| match envelope.decode::<E>() {
            Ok(event) => Some(event),
            Err(e) => {
                tracing::error!(consumer, error = %e, "dropping undecodable event");
                metrics::counter!("bus_poison_messages_total", "consumer" => consumer).increment(1);
                None
            }
        })
        .collect()
}

/// Runs a consumer that takes what has come in batches until `shutdown`: whatever is waiting, up
/// to `max` deliveries, goes to `handler` at once (one transaction for many, say); all are acked
/// on `Done`, all redelivered with backoff on `Retry`.
pub async fn consume_batches<F, Fut>(
    mut subscription: Subscription,
    shutdown: CancellationToken,
    consumer: &'static str,
    max: usize,
    mut handler: F,
) where
    F: FnMut(Vec<Envelope>) -> Fut + Send,
    Fut: Future<Output = Handled> + Send,
{
    let lag_gauge = metrics::gauge!("bus_consumer_lag", "consumer" => consumer);
    let duration = metrics::histogram!("bus_handle_duration_seconds", "consumer" => consumer);
    while let Some(first) = next_or_stop(&mut subscription, &shutdown).await {
        let mut deliveries = vec![first];
        while deliveries.len() < max.max(1)
            && let Some(delivery) = subscription.try_next()
        {
            deliveries.push(delivery);
        }
        let lag =
            deliveries.last().and_then(|d| d.pending).unwrap_or(0) + subscription.queued() as u64;
        lag_gauge.set(lag as f64);
        let started = std::time::Instant::now();
        let outcome = handler(deliveries.iter().map(|d| d.envelope.clone()).collect()).await;
        duration.record(started.elapsed().as_secs_f64());
        for delivery in deliveries {
            let settled = match &outcome {
                Handled::Done => delivery.ack().await,
                Handled::Retry(_) => {
                    let delay = backoff(delivery.attempt);
                    delivery.nak(delay).await
                }
            };
            if let Err(e) = settled {
                tracing::warn!(consumer, error = %e, "cannot settle delivery");
            }
        }
        if let Handled::Retry(reason) = outcome {
            tracing::warn!(consumer, reason, "batch handler failed; will retry");
        }
    }
}

/// The next delivery, or `None` once `shutdown` is triggered or the subscription has ended.
async fn next_or_stop(
    subscription: &mut Subscription,
    shutdown: &CancellationToken,
) -> Option<Delivery> {
    tokio::select! {
        () = shutdown.cancelled() => None,
        next = subscription.next() => next,
    }
}

/// 100 ms, 200 ms, 400 ms … capped at 10 s.
pub fn backoff(attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(7);
    Duration::from_millis(100 * (1 << exp)).min(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_matching_follows_nats() {
        assert!(subject_matches("a.b.c", "a.b.c"));
        assert!(subject_matches("a.*.c", "a.b.c"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(!subject_matches("a.*", "a.b.c"));
        assert!(!subject_matches("a.b", "a.b.c"));
        assert!(!subject_matches("a.b.c", "a.b"));
    }

    #[test]
    fn subjects_are_validated() {
        assert!(validate_subject("rider.ride_requested.v1", false).is_ok());
        assert!(validate_subject("rider.>", false).is_err());
        assert!(validate_subject("rider.>", true).is_ok());
        assert!(validate_subject("a.>.b", true).is_err());
        assert!(validate_subject("a..b", true).is_err());
        assert!(validate_subject("a b", true).is_err());
        assert!(validate_subject("", true).is_err());
    }

    /// What has come in goes to the handler together; a batch that fails comes back whole.
    #[tokio::test]
    async fn batches_take_what_has_come_and_a_failed_one_is_redelivered() {
        let bus = InProcessBus::new();
        let subscription = bus
            .subscribe(SubscribeOptions::durable("batch.>", "batchers"))
            .await
            .expect("subscribes");
        for n in 0..5 {
            bus.publish(contract::envelope("batch.test", &n.to_string()))
                .await
                .expect("published");
        }
        let (seen, mut batches) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let first = std::sync::atomic::AtomicBool::new(true);
        let consumer = tokio::spawn(consume_batches(
            subscription,
            shutdown.clone(),
            "test",
            3,
            move |envelopes: Vec<Envelope>| {
                let _ = seen.send(envelopes.len());
                let fail = first.swap(false, std::sync::atomic::Ordering::Relaxed);
                async move {
                    if fail {
                        Handled::Retry("the first batch fails".into())
                    } else {
                        Handled::Done
                    }
                }
            },
        ));
        let mut sizes = Vec::new();
        while sizes.iter().sum::<usize>() < 5 + 3 {
            let size = tokio::time::timeout(Duration::from_secs(5), batches.recv())
                .await
                .expect("a batch within 5 s")
                .expect("the consumer runs");
            sizes.push(size);
        }
        // At most 3 a batch; the failed first batch (3) comes again after the other 2.
        assert_eq!(sizes[0], 3, "{sizes:?}");
        assert!(sizes.iter().all(|s| (1..=3).contains(s)), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 8, "{sizes:?}");
        shutdown.cancel();
        consumer.await.expect("stops");
    }

    #[derive(Clone, Serialize, Deserialize)]
    struct Numbered {
        n: u32,
    }

    impl Event for Numbered {
        const SUBJECT: &'static str = "numbered.test";
    }

    /// Publishes `count` numbered events to a durable group, and runs `limit` handlers at once
    /// over them, the first `stuck` waiting until released; returns what the handlers report
    /// (the numbers handled, in order), the release, and the shutdown.
    async fn with_the_first_stuck(
        count: u32,
        stuck: u32,
        limit: usize,
    ) -> (
        tokio::sync::mpsc::UnboundedReceiver<u32>,
        tokio::sync::watch::Sender<bool>,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let bus = InProcessBus::new();
        let subscription = bus
            .subscribe(SubscribeOptions::durable(Numbered::SUBJECT, "numbered"))
            .await
            .expect("subscribes");
        for n in 0..count {
            let envelope = Envelope::from_event(&Numbered { n }, clock::new_id(), clock::now())
                .expect("encodes");
            bus.publish(envelope).await.expect("published");
        }
        let (release, released) = tokio::sync::watch::channel(false);
        let (handled, report) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let consumer = tokio::spawn(consume_concurrently(
            subscription,
            shutdown.clone(),
            "test",
            limit,
            move |event: Numbered, _| {
                let (mut released, handled) = (released.clone(), handled.clone());
                async move {
                    if event.n < stuck {
                        let _ = released.wait_for(|go| *go).await;
                    }
                    let _ = handled.send(event.n);
                    Handled::Done
                }
            },
        ));
        (report, release, shutdown, consumer)
    }

    async fn next_handled(report: &mut tokio::sync::mpsc::UnboundedReceiver<u32>) -> u32 {
        tokio::time::timeout(Duration::from_secs(5), report.recv())
            .await
            .expect("handled within 5 s")
            .expect("the consumer runs")
    }

    /// A slow event holds one of the `limit` places: the next events are handled meanwhile.
    #[tokio::test]
    async fn a_slow_event_does_not_hold_up_the_next_ones_within_the_limit() {
        let (mut report, release, shutdown, consumer) = with_the_first_stuck(8, 1, 4).await;
        let mut handled = Vec::new();
        for _ in 1..8 {
            handled.push(next_handled(&mut report).await);
        }
        handled.sort_unstable();
        assert_eq!(handled, (1..8).collect::<Vec<_>>(), "all but the stuck one");
        release.send(true).expect("released");
        assert_eq!(next_handled(&mut report).await, 0);
        shutdown.cancel();
        consumer.await.expect("stops");
    }

    /// Every place taken by a slow event: the next events that are handled at once (those a
    /// handler skips) are still taken and handled, so the queue does not fill behind the slow.
    #[tokio::test]
    async fn events_handled_at_once_pass_a_full_set_of_slow_ones() {
        let (mut report, release, shutdown, consumer) = with_the_first_stuck(10, 2, 2).await;
        for n in 2..10 {
            assert_eq!(next_handled(&mut report).await, n);
        }
        release.send(true).expect("released");
        let mut slow = [
            next_handled(&mut report).await,
            next_handled(&mut report).await,
        ];
        slow.sort_unstable();
        assert_eq!(slow, [0, 1]);
        shutdown.cancel();
        consumer.await.expect("stops");
    }

    /// One at a time (`consume`): in order, and nothing passes the event being handled.
    #[tokio::test]
    async fn one_at_a_time_keeps_the_order() {
        let (mut report, release, shutdown, consumer) = with_the_first_stuck(3, 1, 1).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(300), report.recv())
                .await
                .is_err(),
            "nothing is handled while the first waits"
        );
        release.send(true).expect("released");
        for n in 0..3 {
            assert_eq!(next_handled(&mut report).await, n);
        }
        shutdown.cancel();
        consumer.await.expect("stops");
    }

    static COUNTED_DECODES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// An event that counts how often it is decoded.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    struct Counted {
        n: u32,
    }

    impl<'de> Deserialize<'de> for Counted {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            COUNTED_DECODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Numbered { n } = Numbered::deserialize(deserializer)?;
            Ok(Self { n })
        }
    }

    impl Event for Counted {
        const SUBJECT: &'static str = "counted.test";
    }

    /// Three consumers of one event in a process decode it once; a consumer reading it as a type
    /// of its own decodes it for itself.
    #[tokio::test]
    async fn the_consumers_of_an_event_in_a_process_decode_it_once() {
        let bus = InProcessBus::new();
        let mut subscriptions = Vec::new();
        for _ in 0..3 {
            subscriptions.push(
                bus.subscribe(SubscribeOptions::ephemeral(Counted::SUBJECT))
                    .await
                    .expect("subscribes"),
            );
        }
        let envelope = Envelope::from_event(&Counted { n: 7 }, clock::new_id(), clock::now())
            .expect("encodes");
        bus.publish(envelope).await.expect("published");
        let mut deliveries = Vec::new();
        for subscription in &mut subscriptions {
            deliveries.push(subscription.next().await.expect("delivered"));
        }
        for delivery in &deliveries {
            assert_eq!(delivery.envelope.decode::<Counted>().expect("decodes").n, 7);
        }
        assert_eq!(
            COUNTED_DECODES.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        let other: Numbered = deliveries[0].envelope.decode().expect("decodes");
        assert_eq!(other.n, 7, "another type decodes the same payload");
        // An envelope with no other clone (a NATS delivery) keeps nothing.
        let alone = Envelope::new(
            clock::new_id(),
            Counted::SUBJECT.into(),
            clock::now(),
            BTreeMap::new(),
            br#"{"n":8}"#.to_vec(),
        );
        assert_eq!(alone.decode::<Counted>().expect("decodes").n, 8);
        assert!(alone.decoded.lock().is_empty());
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert_eq!(backoff(50), Duration::from_secs(10));
    }
}
