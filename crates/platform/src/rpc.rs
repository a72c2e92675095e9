//! Calls between processes in the distributed mode — the one way they call each other:
//! request/reply over NATS (docs/ARCHITECTURE.md, "Calls between processes", says why). An
//! instance of a service answers on `rpc.<service>.<method>` in the queue group `<service>`, so
//! each request is answered by exactly one live instance, and adding instances needs no address
//! anywhere. A call that no instance answers in time is a 503 for the caller.
//!
//! - **Who is calling**: only the caller's access token travels, as the `authorization: Bearer`
//!   header of the request ([`Call::bearer`]); the answering service verifies it itself.
//! - **Errors travel typed**: a failed call answers the `ApiError` its error converts into (code,
//!   message, field, details) and the error itself, serialised ([`Reply`]). The client rebuilds
//!   the very value the service returned ([`RpcClient::call`] with the service's error type),
//!   never reading a message; an error that is not the service's (no instance answered, an
//!   undecodable reply) is rebuilt from its `ApiError` (`From<ApiError>`).
//!
//! - **A request the cluster drops is sent again.** On a NATS cluster, a node learns that an
//!   instance left its queue group a moment after the instance's own node does, and a request it
//!   routes there in between is dropped (`rickshaw/tests/it/rpc.rs` loses one in every two drains
//!   without this). So a caller that hears nothing for [`RESEND_AFTER`] sends the request again,
//!   within its deadline; and an instance whose handler runs longer than [`PROGRESS_AFTER`] says
//!   it has the call (an empty message with the [`PROGRESS`] header), so a slow call is waited
//!   for, not sent twice. Replies arrive on one subscription a client (`<inbox>.*`), each call on
//!   its own token, as async-nats's `request` does it — but a call may hear two messages.
//!
//! Delivery is at least once in that narrow case (an instance too starved to say it has the call
//! within a second gets it twice) and at most once otherwise: a caller that times out does not
//! know whether the call took effect. So every method exposed must be safe to retry (ride
//! requests replace the waiting one, bookings are idempotent by quote, a repeated accept answers
//! the trip).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, mpsc};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::Shutdown;
use crate::error::{ApiError, ErrorCode};

/// The request header carrying the caller's access token.
pub const AUTHORIZATION: &str = "authorization";

/// A request carrying this header wants to hear that an instance has it, if the handler is slow;
/// a message carrying it is that word (empty), not the reply.
pub const PROGRESS: &str = "rickshaw-rpc-progress";

/// How long a caller waits without hearing from any instance before it sends the request again.
pub const RESEND_AFTER: Duration = Duration::from_millis(1_000);

/// How long a handler runs before its instance tells the caller it has the call: well below
/// [`RESEND_AFTER`], so only an instance stalled for most of a second is sent the call twice.
pub const PROGRESS_AFTER: Duration = Duration::from_millis(200);

/// What a service answers: the value, or its error as the `ApiError` it converts into plus the
/// error itself (`kind`, the service's error type serialised) for a client of the same service.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T> {
    Ok(T),
    Err {
        error: ApiError,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<serde_json::Value>,
    },
}

impl<T> Reply<T> {
    /// The reply for `result`, whose error converts into an `ApiError` and serialises as itself.
    pub fn of<E>(result: Result<T, E>) -> Self
    where
        E: Serialize + Clone + Into<ApiError>,
    {
        match result {
            Ok(value) => Self::Ok(value),
            Err(e) => Self::Err {
                kind: serde_json::to_value(&e).ok(),
                error: e.into(),
            },
        }
    }

    /// The result a client of the service rebuilds: its own error type when `kind` is one,
    /// else the error built from the `ApiError`.
    pub fn into_result<E>(self) -> Result<T, E>
    where
        E: DeserializeOwned + From<ApiError>,
    {
        match self {
            Self::Ok(value) => Ok(value),
            Self::Err { error, kind } => Err(kind
                .and_then(|kind| serde_json::from_value::<E>(kind).ok())
                .unwrap_or_else(|| E::from(error))),
        }
    }
}

/// One request as the answering service gets it.
#[derive(Debug)]
pub struct Call<Req> {
    pub request: Req,
    /// The caller's access token, if the call was made on someone's behalf.
    pub bearer: Option<String>,
}

#[derive(Clone)]
pub struct RpcClient {
    client: async_nats::Client,
    timeout: Duration,
    /// Subscribed on the first call.
    replies: Arc<OnceCell<Arc<Replies>>>,
}

/// The replies to one client's calls: one subscription on `<inbox>.*`, and each call waiting on
/// its own token.
struct Replies {
    /// `<inbox>.`
    prefix: String,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, mpsc::Sender<async_nats::Message>>>,
    /// Ends the task reading the subscription when the last clone of the client is gone.
    _stop: DropGuard,
}

/// One call's place among the replies; leaving it forgets the token (a late reply is dropped).
struct Waiting {
    replies: Arc<Replies>,
    token: u64,
    messages: mpsc::Receiver<async_nats::Message>,
}

impl Replies {
    async fn subscribe(client: &async_nats::Client) -> Result<Arc<Self>, ApiError> {
        let inbox = client.new_inbox();
        let mut subscriber = client
            .subscribe(format!("{inbox}.*"))
            .await
            .map_err(|e| ApiError::unavailable(format!("cannot subscribe to replies: {e}")))?;
        let stop = CancellationToken::new();
        let replies = Arc::new(Self {
            prefix: format!("{inbox}."),
            next: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            _stop: stop.clone().drop_guard(),
        });
        let weak: Weak<Self> = Arc::downgrade(&replies);
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    () = stop.cancelled() => break,
                    next = subscriber.next() => match next {
                        Some(message) => message,
                        None => break,
                    },
                };
                let Some(replies) = weak.upgrade() else {
                    break;
                };
                replies.deliver(message);
            }
            // The connection is gone: the calls waiting hear so at once.
            if let Some(replies) = weak.upgrade() {
                replies.lock().clear();
            }
        });
        Ok(replies)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<async_nats::Message>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deliver(&self, message: async_nats::Message) {
        let token = message
            .subject
            .strip_prefix(self.prefix.as_str())
            .and_then(|token| token.parse::<u64>().ok());
        let sender = token.and_then(|token| self.lock().get(&token).cloned());
        if let Some(sender) = sender {
            // Full only with duplicates (a reply to a call sent twice): the first one counts.
            let _ = sender.try_send(message);
        }
    }

    fn wait(self: &Arc<Self>) -> Waiting {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, messages) = mpsc::channel(4);
        self.lock().insert(token, sender);
        Waiting {
            replies: self.clone(),
            token,
            messages,
        }
    }
}

impl Waiting {
    fn inbox(&self) -> String {
        format!("{}{}", self.replies.prefix, self.token)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.replies.lock().remove(&self.token);
    }
}

fn is_progress(message: &async_nats::Message) -> bool {
    message
        .headers
        .as_ref()
        .is_some_and(|headers| headers.get(PROGRESS).is_some())
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RpcClient {
    pub fn new(client: async_nats::Client, timeout: Duration) -> Self {
        Self {
            client,
            timeout,
            replies: Arc::new(OnceCell::new()),
        }
    }

    /// Sends `request` (with the caller's `bearer` token, if any) to one instance of the service
    /// behind `subject` and waits for its reply. The service's errors come back as themselves
    /// (`E`); a failure to reach it is an `ApiError` 503 turned into `E`.
    pub async fn call<Req, Resp, E>(
        &self,
        subject: &str,
        request: &Req,
        bearer: Option<&str>,
    ) -> Result<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: DeserializeOwned + From<ApiError>,
    {
        let started = std::time::Instant::now();
        let reply = self.reply(subject, request, bearer).await;
        // Per method (`rpc.trip.book`), as the caller saw it: answered (`ok` or the service's own
        // error) or not reached (`unavailable`: no instance, no reply in time).
        let outcome = match &reply {
            Ok(Reply::Ok(_)) => "ok",
            Ok(Reply::Err { .. }) => "error",
            Err(_) => "unavailable",
        };
        metrics::counter!("rpc_requests_total", "subject" => subject.to_owned(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("rpc_request_duration_seconds", "subject" => subject.to_owned())
            .record(started.elapsed().as_secs_f64());
        reply.map_err(E::from)?.into_result()
    }

    async fn reply<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        subject: &str,
        request: &Req,
        bearer: Option<&str>,
    ) -> Result<Reply<Resp>, ApiError> {
        let payload = serde_json::to_vec(request).map_err(ApiError::internal)?;
        let mut headers = async_nats::HeaderMap::new();
        if let Some(token) = bearer.filter(|t| !t.is_empty()) {
            headers.insert(AUTHORIZATION, format!("Bearer {token}").as_str());
        }
        let span = if crate::telemetry::traces_on() {
            tracing::info_span!("rpc.call", otel.name = subject, otel.kind = "client")
        } else {
            tracing::Span::none()
        };
        headers.insert(PROGRESS, "1");
        span.in_scope(|| crate::telemetry::inject_nats(&mut headers));
        let replies = self
            .replies
            .get_or_try_init(|| Replies::subscribe(&self.client))
            .await?;
        let mut waiting = replies.wait();
        let inbox = waiting.inbox();
        let payload = bytes::Bytes::from(payload);
        let deadline = Instant::now() + self.timeout;
        let mut heard = false;
        let mut sends = 0u32;
        let message = tracing::Instrument::instrument(
            async {
                loop {
                    if !heard {
                        if sends > 0 {
                            metrics::counter!("rpc_resends_total", "subject" => subject.to_owned())
                                .increment(1);
                            tracing::debug!(
                                subject,
                                sends,
                                "no word of the call: sending it again"
                            );
                        }
                        sends += 1;
                        self.client
                            .publish_with_reply_and_headers(
                                subject.to_owned(),
                                inbox.clone(),
                                headers.clone(),
                                payload.clone(),
                            )
                            .await
                            .map_err(|e| ApiError::unavailable(format!("{subject}: {e}")))?;
                    }
                    // Heard of: the reply is awaited until the deadline; not yet: until the next
                    // resend.
                    let until = if heard {
                        deadline
                    } else {
                        deadline.min(Instant::now() + RESEND_AFTER)
                    };
                    match tokio::time::timeout_at(until, waiting.messages.recv()).await {
                        Ok(Some(message)) if is_progress(&message) => heard = true,
                        Ok(Some(message)) => return Ok(message),
                        Ok(None) => {
                            return Err(ApiError::unavailable(format!(
                                "{subject}: the connection to NATS is closed"
                            )));
                        }
                        Err(_) if Instant::now() >= deadline => {
                            return Err(ApiError::unavailable(format!(
                                "{subject}: no reply within {} ms",
                                self.timeout.as_millis()
                            )));
                        }
                        Err(_) => {}
                    }
                }
            },
            span,
        )
        .await?;
        if message.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
            return Err(ApiError::unavailable(format!(
                "{subject}: no instance of the service is running"
            )));
        }
        serde_json::from_slice::<Reply<Resp>>(&message.payload)
            .map_err(|e| ApiError::internal(format!("{subject}: undecodable reply: {e}")))
    }
}

fn bearer_of(message: &async_nats::Message) -> Option<String> {
    let value = message.headers.as_ref()?.get(AUTHORIZATION)?.as_str();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Answers requests on `subject` (one instance of `group` per request) with `handler` until
/// shutdown; each request is handled on its own task, and shutdown waits for those in flight.
pub async fn serve<Req, Resp, E, F, Fut>(
    client: async_nats::Client,
    subject: &'static str,
    group: &'static str,
    shutdown: &Shutdown,
    handler: F,
) -> Result<(), ApiError>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    E: Serialize + Clone + Into<ApiError> + Send + 'static,
    F: Fn(Call<Req>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, E>> + Send + 'static,
{
    let mut subscriber = client
        .queue_subscribe(subject, group.to_owned())
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot subscribe to {subject}: {e}")))?;
    // The server must know of the subscription before this instance is reported ready.
    sync_with_server(&client)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot subscribe to {subject}: {e}")))?;
    let token: CancellationToken = shutdown.token();
    let tasks = shutdown.clone();
    shutdown.spawn(async move {
        let mut draining = false;
        loop {
            let message = tokio::select! {
                () = token.cancelled(), if !draining => {
                    // Leave the queue group but answer what was already routed here: drain ends
                    // the subscription once the server confirms and the buffered requests are out.
                    draining = true;
                    if subscriber.drain().await.is_err() {
                        break;
                    }
                    continue;
                }
                next = subscriber.next() => match next {
                    Some(message) => message,
                    None => break,
                },
            };
            let Some(reply_to) = message.reply.clone() else {
                continue;
            };
            let handler = handler.clone();
            let client = client.clone();
            tasks.spawn(async move {
                let span = if crate::telemetry::traces_on() {
                    tracing::info_span!(
                        "rpc.handle",
                        otel.name = subject,
                        otel.kind = "server",
                        trace_id = tracing::field::Empty,
                    )
                } else {
                    tracing::Span::none()
                };
                crate::telemetry::extract_nats(&span, message.headers.as_ref());
                crate::telemetry::record_trace_id(&span);
                let reply = match serde_json::from_slice::<Req>(&message.payload) {
                    Ok(request) => {
                        let work = tracing::Instrument::instrument(
                            handler(Call {
                                request,
                                bearer: bearer_of(&message),
                            }),
                            span,
                        );
                        let result = if is_progress(&message) {
                            answer_with_progress(&client, &reply_to, work).await
                        } else {
                            work.await
                        };
                        Reply::of(result)
                    }
                    Err(e) => Reply::Err {
                        error: ApiError::new(
                            ErrorCode::InvalidInput,
                            format!("{subject}: undecodable request: {e}"),
                        ),
                        kind: None,
                    },
                };
                match serde_json::to_vec(&reply) {
                    Ok(bytes) => {
                        if let Err(e) = client.publish(reply_to, bytes.into()).await {
                            tracing::warn!(subject, error = %e, "cannot send a reply");
                        }
                        let _ = client.flush().await;
                    }
                    Err(e) => tracing::error!(subject, error = %e, "cannot encode a reply"),
                }
            });
        }
        // The server has processed the unsubscribe before shutdown completes, so it routes
        // nothing more here.
        let _ = sync_with_server(&client).await;
    });
    Ok(())
}

/// Runs `work`, telling the caller (on `reply_to`) that this instance has the call if it takes
/// longer than [`PROGRESS_AFTER`], so the caller does not send it again.
async fn answer_with_progress<T>(
    client: &async_nats::Client,
    reply_to: &async_nats::Subject,
    work: impl Future<Output = T>,
) -> T {
    tokio::pin!(work);
    tokio::select! {
        result = &mut work => result,
        () = tokio::time::sleep(PROGRESS_AFTER) => {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(PROGRESS, "working");
            if let Err(e) = client
                .publish_with_headers(reply_to.clone(), headers, bytes::Bytes::new())
                .await
            {
                tracing::warn!(error = %e, "cannot tell a caller its call is being worked on");
            }
            work.await
        }
    }
}

/// Returns once the server has processed everything this client sent before the call. `flush`
/// only writes the buffer; a request to a subject nobody listens on is a full round trip (the
/// server answers "no responders"), and the server handles one connection's operations in order.
pub async fn sync_with_server(client: &async_nats::Client) -> Result<(), async_nats::RequestError> {
    // Under `_INBOX.`, which every NATS user of the cluster may publish to (replies go there).
    let subject = format!("_INBOX.rickshaw-sync.{}", uuid::Uuid::now_v7().simple());
    match client.request(subject, Default::default()).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(()),
        Err(e) => Err(e),
    }
}

/// Checks that every error value of a service survives the trip: the reply it answers,
/// encoded and decoded as on the wire, rebuilds the same value and the same `ApiError`. Each
/// service's tests run it over all its variants.
pub fn assert_round_trip<E>(errors: &[E])
where
    E: Serialize
        + DeserializeOwned
        + Clone
        + Into<ApiError>
        + From<ApiError>
        + PartialEq
        + std::fmt::Debug,
{
    for error in errors {
        let wire = serde_json::to_vec(&Reply::<()>::of(Err::<(), E>(error.clone())))
            .expect("a reply encodes");
        let reply: Reply<()> = serde_json::from_slice(&wire).expect("a reply decodes");
        let back = reply.into_result::<E>().expect_err("an error");
        assert_eq!(&back, error, "the same error value");
        assert_eq!(back.into(), error.clone().into(), "the same ApiError");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    enum Typed {
        Gone { id: u32 },
        Foreign(ApiError),
    }

    impl From<Typed> for ApiError {
        fn from(e: Typed) -> Self {
            match e {
                Typed::Gone { id } => ApiError::not_found(format!("no {id}")).with_detail("id", id),
                Typed::Foreign(e) => e,
            }
        }
    }

    impl From<ApiError> for Typed {
        fn from(e: ApiError) -> Self {
            Self::Foreign(e)
        }
    }

    #[test]
    fn a_typed_error_comes_back_as_itself_and_a_foreign_one_as_its_api_error() {
        assert_round_trip(&[
            Typed::Gone { id: 7 },
            Typed::Foreign(ApiError::invalid_field("x", "bad").with_retry_after(3)),
        ]);
        // A reply without a kind (an older or a foreign answerer) still says what happened.
        let reply: Reply<()> = Reply::Err {
            error: ApiError::unavailable("down"),
            kind: None,
        };
        assert_eq!(
            reply.into_result::<Typed>(),
            Err(Typed::Foreign(ApiError::unavailable("down")))
        );
    }
}
