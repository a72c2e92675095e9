//! Calls between processes in the distributed mode: request/reply over NATS. An instance of a
//! service answers on `rpc.<service>.<method>` in the queue group `<service>`, so each request is
//! answered by exactly one live instance, and adding instances needs no address anywhere. A call
//! that no instance answers in time is a 503 for the caller.
//!
//! Delivery is at most once: a caller that times out does not know whether the call took effect,
//! so the methods exposed here must be safe to retry (they are: a re-posted ride request replaces
//! the waiting one; ratings will carry an idempotency key with the product API).

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::Shutdown;
use crate::error::{ApiError, ErrorCode};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply<T> {
    Ok(T),
    Err { code: ErrorCode, message: String },
}

#[derive(Clone)]
pub struct RpcClient {
    client: async_nats::Client,
    timeout: Duration,
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
        Self { client, timeout }
    }

    /// Sends `request` to one instance of the service behind `subject` and waits for its reply.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        subject: &str,
        request: &Req,
    ) -> Result<Resp, ApiError> {
        let payload = serde_json::to_vec(request).map_err(ApiError::internal)?;
        let reply = tokio::time::timeout(
            self.timeout,
            self.client.request(subject.to_owned(), payload.into()),
        )
        .await
        .map_err(|_| {
            ApiError::unavailable(format!(
                "{subject}: no reply within {} ms",
                self.timeout.as_millis()
            ))
        })?
        .map_err(|e| {
            use async_nats::RequestErrorKind;
            match e.kind() {
                RequestErrorKind::NoResponders => ApiError::unavailable(format!(
                    "{subject}: no instance of the service is running"
                )),
                _ => ApiError::unavailable(format!("{subject}: {e}")),
            }
        })?;
        match serde_json::from_slice::<Reply<Resp>>(&reply.payload) {
            Ok(Reply::Ok(value)) => Ok(value),
            Ok(Reply::Err { code, message }) => Err(ApiError::new(code, message)),
            Err(e) => Err(ApiError::internal(format!(
                "{subject}: undecodable reply: {e}"
            ))),
        }
    }
}

/// Answers requests on `subject` (one instance of `group` per request) with `handler` until
/// shutdown; each request is handled on its own task, and shutdown waits for those in flight.
pub async fn serve<Req, Resp, F, Fut>(
    client: async_nats::Client,
    subject: &'static str,
    group: &'static str,
    shutdown: &Shutdown,
    handler: F,
) -> Result<(), ApiError>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, ApiError>> + Send + 'static,
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
                let reply = match serde_json::from_slice::<Req>(&message.payload) {
                    Ok(request) => match handler(request).await {
                        Ok(value) => Reply::Ok(value),
                        Err(e) => Reply::Err {
                            code: e.code,
                            message: e.message,
                        },
                    },
                    Err(e) => Reply::Err {
                        code: ErrorCode::InvalidInput,
                        message: format!("{subject}: undecodable request: {e}"),
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

/// Returns once the server has processed everything this client sent before the call. `flush`
/// only writes the buffer; a request to a subject nobody listens on is a full round trip (the
/// server answers "no responders"), and the server handles one connection's operations in order.
pub async fn sync_with_server(client: &async_nats::Client) -> Result<(), async_nats::RequestError> {
    let subject = format!("_rickshaw.sync.{}", uuid::Uuid::now_v7().simple());
    match client.request(subject, Default::default()).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(()),
        Err(e) => Err(e),
    }
}
