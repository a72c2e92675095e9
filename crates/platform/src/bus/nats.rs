//! The bus on NATS JetStream, for the distributed mode.
//!
//! - One stream per first subject token (`rider.>` → `RICKSHAW_RIDER`), created on first use with
//!   file storage, the configured replicas and a 2-minute duplicate window, so a publish carrying an
//!   event id already stored (`Nats-Msg-Id`) is dropped by the server.
//! - A durable subscription is a durable pull consumer named after the group: every instance of a
//!   service binds the same consumer and JetStream hands each message to one of them. An ephemeral
//!   subscription is an ephemeral pull consumer delivering only new messages, removed by the server
//!   after it has been idle for a while.
//! - Acks are explicit. `nak(delay)` asks the server to redeliver after `delay`; a delivery dropped
//!   unsettled is nak'ed at once; a delivery not settled within `ack_wait` (its process died) is
//!   redelivered by the server. At the last allowed attempt a nak publishes the message to
//!   `deadletter.<subject>` and terminates it instead.
//! - A publish returns once the stream has stored the message (the JetStream publish ack).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer, stream};
use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{
    Acker, Bus, BusError, DEAD_LETTER_PREFIX, Delivery, Envelope, SubscribeOptions, Subscription,
    validate_subject,
};
use crate::clock;

const OCCURRED_AT: &str = "Rickshaw-Occurred-At";
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
const CHANNEL_CAPACITY: usize = 256;

/// TLS to the NATS servers: the CA their certificates chain to, and a client certificate and key
/// for servers that verify clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsTls {
    pub ca_file: std::path::PathBuf,
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

#[derive(Clone, Debug)]
pub struct NatsBusConfig {
    /// One or more server URLs, comma-separated.
    pub url: String,
    /// The user and password this process connects as, if the servers require them.
    pub credentials: Option<(String, String)>,
    /// TLS to the servers, if configured.
    pub tls: Option<NatsTls>,
    /// Prefix of every stream name.
    pub stream_prefix: String,
    /// Replicas of each stream (1 for a single server, 3 for a 3-node cluster).
    pub replicas: usize,
    /// How long a delivery may stay unsettled before the server redelivers it.
    pub ack_wait: Duration,
    /// How long streams keep messages, and how many bytes each keeps at most (the oldest go
    /// first): a publisher flooding the bus costs disk up to this bound, not without one.
    pub max_age: Duration,
    pub max_bytes: i64,
    /// Durable consumers idle this long are removed by the server (`None`: kept forever). Tests
    /// set it so the consumers they create do not pile up on a shared server.
    pub durable_inactive_threshold: Option<Duration>,
}

impl Default for NatsBusConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            credentials: None,
            tls: None,
            stream_prefix: "RICKSHAW".to_owned(),
            replicas: 1,
            ack_wait: Duration::from_secs(30),
            max_age: Duration::from_secs(24 * 3600),
            max_bytes: 1 << 30,
            durable_inactive_threshold: None,
        }
    }
}

#[derive(Clone)]
pub struct NatsBus {
    js: jetstream::Context,
    config: Arc<NatsBusConfig>,
    streams: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

fn backend(context: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Backend(format!("{context}: {e}"))
}

/// How long a failed publish is tried again before the error is returned.
const PUBLISH_RETRY_FOR: Duration = Duration::from_secs(3);

/// Runs `operation` until it succeeds, retrying for about 30 s: a cluster that has just formed,
/// with every service creating its streams and consumers at once, can time out a creation or not
/// know a stream another node just created.
async fn while_forming<T, E, F, Fut>(what: &str, mut operation: F) -> Result<T, BusError>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match operation().await {
            Ok(done) => return Ok(done),
            Err(e) if attempt < 10 => {
                attempt += 1;
                tracing::warn!(attempt, error = %e, "{what} failed; retrying");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
            }
            Err(e) => return Err(backend(what, e)),
        }
    }
}

impl NatsBus {
    pub async fn connect(config: NatsBusConfig) -> Result<Self, BusError> {
        let servers = config
            .url
            .split(',')
            .map(|url| url.trim().parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| backend(&format!("invalid NATS URL {:?}", config.url), e))?;
        let options = match &config.credentials {
            Some((user, password)) => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            None => async_nats::ConnectOptions::new(),
        };
        let options = match &config.tls {
            Some(tls) => {
                let options = options
                    .add_root_certificates(tls.ca_file.clone())
                    .require_tls(true);
                match &tls.client {
                    Some((cert, key)) => options.add_client_certificate(cert.clone(), key.clone()),
                    None => options,
                }
            }
            None => options,
        };
        let client = options
            .name("rickshaw")
            .retry_on_initial_connect()
            .connect(servers)
            .await
            .map_err(|e| backend(&format!("cannot connect to NATS at {}", config.url), e))?;
        Ok(Self {
            js: jetstream::new(client),
            config: Arc::new(config),
            streams: Arc::default(),
        })
    }

    /// The plain NATS client, for request/reply (`platform::rpc`).
    pub fn client(&self) -> async_nats::Client {
        self.js.client()
    }

    /// The JetStream context, for other NATS-backed mechanisms (key-value leases).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// The name of the stream holding subjects whose first token is that of `subject`, created
    /// (or brought to this configuration) the first time this process uses it. Later calls ask
    /// the server nothing: a publish is one request, not a stream lookup and a publish (the
    /// lookup hung for the client's whole timeout while a restarted node's streams elected
    /// leaders, and stalled every publisher behind it).
    async fn ensure_stream(&self, subject: &str) -> Result<String, BusError> {
        let token = subject.split('.').next().unwrap_or_default();
        if token == "*" || token == ">" {
            return Err(BusError::InvalidSubject(format!(
                "{subject}: on NATS a filter must start with a literal token"
            )));
        }
        let name = format!(
            "{}_{}",
            self.config.stream_prefix,
            token.to_ascii_uppercase().replace('-', "_")
        );
        let known = self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&name);
        if !known {
            let config = stream::Config {
                name: name.clone(),
                subjects: vec![format!("{token}.>")],
                storage: stream::StorageType::File,
                num_replicas: self.config.replicas,
                duplicate_window: DUPLICATE_WINDOW,
                max_age: self.config.max_age,
                max_bytes: self.config.max_bytes,
                discard: stream::DiscardPolicy::Old,
                ..Default::default()
            };
            // Created, or brought to this configuration (a changed retention applies to a
            // stream an earlier version made).
            let what = format!("creating stream {name}");
            while_forming(&what, || self.js.create_or_update_stream(config.clone())).await?;
            self.streams
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.clone());
        }
        Ok(name)
    }

    /// Creates (or binds) the consumer for `options` and starts pulling. A short heartbeat makes
    /// a consumer lost with a NATS node show up within seconds as an error, not a silence.
    /// Returns the message stream and the stream sequence the consumer starts after.
    async fn open_consumer(
        &self,
        options: &SubscribeOptions,
        resume_after: Option<u64>,
    ) -> Result<(consumer::pull::Stream, Option<u64>), BusError> {
        let name = self.ensure_stream(&options.filter).await?;
        // A handle without a request: the consumer's creation below is retried while forming.
        let stream = self
            .js
            .get_stream_no_info(&name)
            .await
            .map_err(|e| backend("stream handle", e))?;
        let max_deliver = options.max_deliver.max(1);
        let deliver_policy = match (&options.durable, resume_after) {
            (Some(_), _) => consumer::DeliverPolicy::All,
            (None, Some(sequence)) => consumer::DeliverPolicy::ByStartSequence {
                start_sequence: sequence + 1,
            },
            (None, None) => consumer::DeliverPolicy::New,
        };
        let config = consumer::pull::Config {
            durable_name: options.durable.clone(),
            filter_subject: options.filter.clone(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.config.ack_wait,
            // A backstop: the adapter dead-letters at `max_deliver` itself.
            max_deliver: i64::from(max_deliver) + 1,
            deliver_policy,
            inactive_threshold: match &options.durable {
                Some(_) => self.config.durable_inactive_threshold.unwrap_or_default(),
                None => Duration::from_secs(60),
            },
            ..Default::default()
        };
        // Right after the stream's creation, another node of a forming cluster may not know it
        // yet ("stream not found").
        let consumer = while_forming("creating consumer", || async {
            match &options.durable {
                Some(name) => stream.get_or_create_consumer(name, config.clone()).await,
                None => stream.create_consumer(config.clone()).await,
            }
        })
        .await?;
        if let Some(name) = &options.durable {
            let info = consumer.cached_info();
            if info.config.filter_subject != options.filter {
                return Err(BusError::Backend(format!(
                    "consumer group {name:?} already exists with filter {:?}",
                    info.config.filter_subject
                )));
            }
        }
        let starts_after =
            Some(consumer.cached_info().delivered.stream_sequence).filter(|s| *s > 0);
        let messages = consumer
            .stream()
            .heartbeat(Duration::from_secs(1))
            .expires(Duration::from_secs(5))
            .messages()
            .await
            .map_err(|e| backend("starting to pull", e))?;
        Ok((messages, starts_after.or(resume_after)))
    }

    /// Reopens a lost consumer, retrying with backoff until it works or the subscriber is gone.
    async fn reopen(
        &self,
        options: &SubscribeOptions,
        resume_after: Option<u64>,
        subscriber: &mpsc::Sender<Delivery>,
    ) -> Option<(consumer::pull::Stream, Option<u64>)> {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.open_consumer(options, resume_after).await {
                Ok(opened) => return Some(opened),
                Err(e) => {
                    tracing::warn!(filter = %options.filter, error = %e, "cannot reopen consumer yet")
                }
            }
            tokio::select! {
                () = subscriber.closed() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    async fn publish_raw(&self, envelope: &Envelope) -> Result<(), BusError> {
        self.ensure_stream(&envelope.subject).await?;
        let mut headers = HeaderMap::new();
        for (key, value) in &envelope.headers {
            headers.insert(key.as_str(), value.as_str());
        }
        headers.insert("Nats-Msg-Id", envelope.id.to_string().as_str());
        headers.insert(
            OCCURRED_AT,
            envelope.occurred_at.as_millis().to_string().as_str(),
        );
        // A stream whose leader is being elected (a NATS node restarted) refuses or times out a
        // publish for a moment: try again, briefly. The message id makes a retry of a publish that
        // did land a duplicate the stream drops.
        let started = std::time::Instant::now();
        let mut attempt = 0_u32;
        loop {
            let outcome = async {
                self.js
                    .publish_with_headers(
                        envelope.subject.clone(),
                        headers.clone(),
                        envelope.payload.clone().into(),
                    )
                    .await
                    .map_err(|e| backend("publish", e))?
                    .await
                    .map_err(|e| backend("publish not acknowledged by the stream", e))
            }
            .await;
            match outcome {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() < PUBLISH_RETRY_FOR => {
                    attempt += 1;
                    tracing::debug!(attempt, error = %e, subject = %envelope.subject, "publish failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100) * attempt.min(10)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Whether a pull error means the consumer (or our view of it) is gone and must be reopened.
fn consumer_lost(error: &consumer::pull::MessagesError) -> bool {
    use consumer::pull::MessagesErrorKind;
    matches!(
        error.kind(),
        MessagesErrorKind::MissingHeartbeat
            | MessagesErrorKind::ConsumerDeleted
            | MessagesErrorKind::NoResponders
    )
}

fn envelope_of(message: &async_nats::Message) -> Envelope {
    let headers = message.headers.clone().unwrap_or_default();
    let get = |key: &str| headers.get(key).map(|v| v.as_str().to_owned());
    let id = get("Nats-Msg-Id")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(clock::new_id);
    let occurred_at = get(OCCURRED_AT)
        .and_then(|v| v.parse().ok())
        .map(domain::Timestamp::from_millis)
        .unwrap_or_else(clock::now);
    let extra = headers
        .iter()
        .filter(|(k, _)| {
            let k: &str = k.as_ref();
            !k.starts_with("Nats-") && k != OCCURRED_AT
        })
        .filter_map(|(k, values)| Some((k.to_string(), values.first()?.as_str().to_owned())))
        .collect();
    Envelope::new(
        id,
        message.subject.to_string(),
        occurred_at,
        extra,
        message.payload.to_vec(),
    )
}

struct NatsAcker {
    message: Option<jetstream::Message>,
    bus: NatsBus,
    envelope: Envelope,
    attempt: u32,
    max_deliver: u32,
}

impl NatsAcker {
    async fn settle_failure(
        bus: NatsBus,
        message: jetstream::Message,
        envelope: Envelope,
        attempt: u32,
        max_deliver: u32,
        delay: Duration,
    ) -> Result<(), BusError> {
        if attempt >= max_deliver {
            tracing::warn!(subject = %envelope.subject, id = %envelope.id, attempt, "dead-lettering event");
            let mut dead = envelope.clone();
            dead.id = clock::new_id();
            dead.subject = format!("{DEAD_LETTER_PREFIX}.{}", envelope.subject);
            dead.headers
                .insert("original-id".into(), envelope.id.to_string());
            dead.headers.insert("attempts".into(), attempt.to_string());
            bus.publish_raw(&dead).await?;
            message
                .ack_with(AckKind::Term)
                .await
                .map_err(|e| backend("term", e))
        } else {
            message
                .ack_with(AckKind::Nak(Some(delay)))
                .await
                .map_err(|e| backend("nak", e))
        }
    }
}

#[async_trait]
impl Acker for NatsAcker {
    async fn ack(mut self: Box<Self>) -> Result<(), BusError> {
        match self.message.take() {
            Some(message) => message.ack().await.map_err(|e| backend("ack", e)),
            None => Ok(()),
        }
    }

    async fn nak(mut self: Box<Self>, delay: Duration) -> Result<(), BusError> {
        match self.message.take() {
            Some(message) => {
                Self::settle_failure(
                    self.bus.clone(),
                    message,
                    self.envelope.clone(),
                    self.attempt,
                    self.max_deliver,
                    delay,
                )
                .await
            }
            None => Ok(()),
        }
    }
}

impl Drop for NatsAcker {
    fn drop(&mut self) {
        let Some(message) = self.message.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // the server redelivers after ack_wait
        };
        let (bus, envelope, attempt, max_deliver) = (
            self.bus.clone(),
            self.envelope.clone(),
            self.attempt,
            self.max_deliver,
        );
        runtime.spawn(async move {
            if let Err(e) = Self::settle_failure(bus, message, envelope, attempt, max_deliver, Duration::ZERO).await {
                tracing::debug!(error = %e, "cannot nak a dropped delivery; the server will redeliver it");
            }
        });
    }
}

#[async_trait]
impl Bus for NatsBus {
    async fn publish(&self, envelope: Envelope) -> Result<(), BusError> {
        validate_subject(&envelope.subject, false)?;
        self.publish_raw(&envelope).await
    }

    async fn subscribe(&self, options: SubscribeOptions) -> Result<Subscription, BusError> {
        validate_subject(&options.filter, true)?;
        let max_deliver = options.max_deliver.max(1);
        let (mut messages, starts_after) = self.open_consumer(&options, None).await?;
        let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
        let bus = self.clone();
        tokio::spawn(async move {
            // The last stream sequence handed out (at first: where the consumer started): an
            // ephemeral consumer lost with a NATS node is recreated from the next one, so nothing
            // is skipped.
            let mut last_sequence = starts_after;
            loop {
                let next = tokio::select! {
                    () = sender.closed() => break,
                    next = messages.next() => next,
                };
                let message = match next {
                    Some(Ok(message)) => message,
                    Some(Err(e)) if !consumer_lost(&e) => {
                        tracing::debug!(error = %e, "pull hiccup; continuing");
                        continue;
                    }
                    failure => {
                        let reason = failure.map_or_else(
                            || "the pull stream ended".to_owned(),
                            |e| e.map(|_| String::new()).unwrap_or_else(|e| e.to_string()),
                        );
                        tracing::warn!(filter = %options.filter, reason, "consumer lost; reopening it");
                        match bus.reopen(&options, last_sequence, &sender).await {
                            Some((reopened, _)) => {
                                messages = reopened;
                                continue;
                            }
                            None => break,
                        }
                    }
                };
                let info = message
                    .info()
                    .ok()
                    .map(|i| (i.delivered, i.stream_sequence, i.pending));
                if let Some((_, sequence, _)) = info {
                    last_sequence = Some(sequence);
                }
                let attempt = info
                    .map(|(delivered, _, _)| u32::try_from(delivered).unwrap_or(u32::MAX))
                    .unwrap_or(1);
                let envelope = envelope_of(&message.message);
                let acker = NatsAcker {
                    message: Some(message),
                    bus: bus.clone(),
                    envelope: envelope.clone(),
                    attempt,
                    max_deliver,
                };
                if sender
                    .send(
                        Delivery::new(envelope, attempt, Box::new(acker))
                            .with_pending(info.map_or(0, |(_, _, pending)| pending)),
                    )
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Subscription::new(receiver))
    }
}
