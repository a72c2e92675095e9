//! The product bot's HTTP and WebSocket client: an account that logs in again when its token
//! expires, requests whose every failure is counted, and a `/v1/ws` that reopens itself.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::{Ctx, LatLng, PASSWORD, Shared, TripStep, lock};

/// A failed request (already counted).
#[derive(Debug)]
pub(super) struct Failed {
    pub status: Option<StatusCode>,
    pub message: String,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "{status}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

/// `/v1/trips/0190…/accept` → `/v1/trips/{id}/accept`.
fn route_of(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    path.split('/')
        .map(|segment| {
            let uuid_like = segment.len() == 36 && segment.matches('-').count() == 4;
            if uuid_like { "{id}" } else { segment }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A signed-up, logged-in account.
pub(super) struct Agent {
    pub ctx: Arc<Ctx>,
    pub email: String,
    pub id: String,
    token: Mutex<String>,
}

impl Agent {
    fn token(&self) -> String {
        self.token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Signs up and logs in.
    pub async fn create(ctx: &Arc<Ctx>, role: &str, n: u32) -> Result<Self, Failed> {
        let email = format!("bot-{}-{role}-{n}@example.com", ctx.run_id);
        let name = format!("Bot {} {n}", capitalised(role));
        let body = json!({"email": email, "password": PASSWORD, "name": name, "role": role});
        send_auth(ctx, "/v1/auth/signup", &body).await?;
        let mut agent = Self {
            ctx: ctx.clone(),
            email,
            id: String::new(),
            token: Mutex::new(String::new()),
        };
        let tokens = agent.log_in().await?;
        agent.id = tokens["account"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Failed {
                status: None,
                message: format!("login answered no account id: {tokens}"),
            })?;
        Ok(agent)
    }

    pub async fn log_in(&self) -> Result<Value, Failed> {
        let body = json!({"email": self.email, "password": PASSWORD});
        let tokens = send_auth(&self.ctx, "/v1/auth/login", &body).await?;
        let Some(token) = tokens["access_token"].as_str() else {
            return Err(Failed {
                status: None,
                message: format!("login answered no access token: {tokens}"),
            });
        };
        *self.token.lock().unwrap_or_else(PoisonError::into_inner) = token.to_owned();
        Ok(tokens)
    }

    /// An authenticated request; a 401 (an expired token) logs in again and retries once.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, Failed> {
        let token = self.token();
        match send(&self.ctx, method.clone(), path, Some(&token), body).await {
            Err(Failed {
                status: Some(StatusCode::UNAUTHORIZED),
                ..
            }) => {
                self.log_in().await?;
                send(&self.ctx, method, path, Some(&self.token()), body).await
            }
            other => other,
        }
    }
}

/// A sign-up or login, retried as the server asks: a 429 (too many from this address at once)
/// or a 503 (the password checks are busy) is tried again after a pause (growing to 1 s), for
/// up to a minute. The bot sets up many accounts from one address; a server's per-address limits
/// pace it, they do not fail it.
async fn send_auth(ctx: &Ctx, path: &str, body: &Value) -> Result<Value, Failed> {
    let mut attempt: u64 = 0;
    loop {
        match send(ctx, Method::POST, path, None, Some(body)).await {
            Err(Failed {
                status: Some(StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE),
                ..
            }) if attempt < 60 => {
                attempt += 1;
                let pause = (100 * attempt).min(1_000);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            other => return other,
        }
    }
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// One request; every failure is counted (by status, and as an example of its kind).
async fn send(
    ctx: &Ctx,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<Value, Failed> {
    let mut request = ctx
        .http
        .request(method.clone(), format!("{}{path}", ctx.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let kind = |status: &str| format!("{status} {method} {}", route_of(path));
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => {
            let message = format!("no answer: {e}");
            let mut t = lock(&ctx.tally);
            t.progress.transport_errors += 1;
            t.example(kind("---"), || message.clone());
            return Err(Failed {
                status: None,
                message,
            });
        }
    };
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        if text.is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_str(&text).map_err(|e| {
            let message = format!("{status} with a body that is not JSON ({e}): {text:.200}");
            let mut t = lock(&ctx.tally);
            t.progress.transport_errors += 1;
            t.example(kind(status.as_str()), || message.clone());
            Failed {
                status: None,
                message,
            }
        });
    }
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            let error = v.get("error")?;
            Some(format!(
                "{}: {}",
                error["code"].as_str().unwrap_or("?"),
                error["message"].as_str().unwrap_or("?")
            ))
        })
        .unwrap_or_else(|| text.chars().take(200).collect());
    let mut t = lock(&ctx.tally);
    *t.progress.http_errors.entry(status.as_u16()).or_default() += 1;
    t.example(kind(status.as_str()), || message.clone());
    Err(Failed {
        status: Some(status),
        message,
    })
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An agent's `/v1/ws`, reopened (with `last_event_id`) whenever it drops. Trip notices arrive
/// in `inbox`; `outbox` takes frames to send.
pub(super) struct Socket {
    pub inbox: mpsc::UnboundedReceiver<Value>,
    outbox: mpsc::UnboundedSender<String>,
    close: CancellationToken,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.close.cancel();
    }
}

impl Socket {
    /// Opens the socket and waits for its `hello`.
    pub async fn open(agent: Arc<Agent>) -> Result<Self, String> {
        let ws = connect(&agent, None).await?;
        let (to_inbox, inbox) = mpsc::unbounded_channel();
        let (outbox, from_outbox) = mpsc::unbounded_channel();
        let close = agent.ctx.sockets_stop.child_token();
        let tasks = agent.ctx.tasks.clone();
        tasks.spawn(pump(ws, agent, to_inbox, from_outbox, close.clone()));
        Ok(Self {
            inbox,
            outbox,
            close,
        })
    }

    pub fn send_location(&self, at: LatLng) {
        let frame = json!({"type": "location", "lat": at.lat, "lng": at.lng});
        let _ = self.outbox.send(frame.to_string());
    }
}

/// Connects (logging in again after a 401) and reads the `hello` frame.
async fn connect(agent: &Agent, last_event_id: Option<i64>) -> Result<Ws, String> {
    let mut url = format!("{}/v1/ws", agent.ctx.ws_base);
    if let Some(id) = last_event_id {
        url.push_str(&format!("?last_event_id={id}"));
    }
    for attempt in 0..2 {
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("bad WebSocket URL {url}: {e}"))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", agent.token()))
            .map_err(|e| format!("token is not a header value: {e}"))?;
        request.headers_mut().insert("authorization", bearer);
        // tungstenite zeroes its whole read buffer before every read: 128 KiB by default, which
        // for hundreds of agents' sessions is CPU taken from the system under test.
        let config = WebSocketConfig::default().read_buffer_size(4 * 1024);
        let mut ws = match tokio_tungstenite::connect_async_with_config(
            request,
            Some(config),
            false,
        )
        .await
        {
            Ok((ws, _)) => ws,
            Err(tungstenite::Error::Http(response))
                if response.status() == StatusCode::UNAUTHORIZED.as_u16() && attempt == 0 =>
            {
                agent.log_in().await.map_err(|e| e.to_string())?;
                continue;
            }
            Err(e) => return Err(format!("cannot open {url}: {e}")),
        };
        let first = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
        return match first {
            Ok(Some(Ok(Message::Text(text)))) => {
                let hello: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                if hello["type"] == "hello" {
                    Ok(ws)
                } else {
                    Err(format!("{url} sent {text} before hello"))
                }
            }
            Ok(other) => Err(format!("{url} sent no hello: {other:?}")),
            Err(_) => Err(format!("{url} sent no hello within 10 s")),
        };
    }
    Err(format!("{url} refused the token even after a fresh login"))
}

/// Reads frames into the inbox (and the run's trip log), writes the outbox, reconnects.
async fn pump(
    ws: Ws,
    agent: Arc<Agent>,
    inbox: mpsc::UnboundedSender<Value>,
    mut outbox: mpsc::UnboundedReceiver<String>,
    close: CancellationToken,
) {
    let tally = agent.ctx.tally.clone();
    let mut seen = SeenNotices::default();
    // The driver's last position, sent again on a reopened socket: one sent just before the old
    // one closed may never have been read (its instance was stopping), and the trip service
    // checks it when the driver arrives.
    let mut last_location: Option<String> = None;
    let mut ws = Some(ws);
    let mut backoff = Duration::from_millis(100);
    'sessions: loop {
        let current = match ws.take() {
            Some(current) => current,
            None => {
                tokio::select! {
                    () = close.cancelled() => break 'sessions,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                match connect(&agent, Some(seen.highest)).await {
                    Ok(mut reopened) => {
                        lock(&tally).progress.ws_reconnects += 1;
                        backoff = Duration::from_millis(100);
                        if let Some(location) = &last_location
                            && reopened
                                .send(Message::text(location.clone()))
                                .await
                                .is_err()
                        {
                            continue 'sessions;
                        }
                        reopened
                    }
                    Err(_) => continue 'sessions,
                }
            }
        };
        let (mut sink, mut stream) = current.split();
        loop {
            tokio::select! {
                () = close.cancelled() => {
                    let _ = sink.send(Message::Close(None)).await;
                    break 'sessions;
                }
                out = outbox.recv(), if !outbox.is_closed() => {
                    if let Some(text) = out {
                        last_location = Some(text.clone());
                        if sink.send(Message::text(text)).await.is_err() {
                            continue 'sessions;
                        }
                    }
                }
                message = stream.next() => {
                    let text = match message {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_)) | Err(_)) | None => continue 'sessions,
                        Some(Ok(_)) => continue,
                    };
                    let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                        let mut t = lock(&tally);
                        t.progress.ws_error_frames += 1;
                        t.example("ws: not JSON".to_owned(), || text.as_str().chars().take(200).collect());
                        continue;
                    };
                    on_frame(&tally, &agent, frame, &mut seen, &inbox);
                }
            }
        }
    }
}

/// The notice ids an agent has received (the latest few thousand) and the highest, which it
/// reconnects with. After a reconnect the server sends the notices near that id again (flagged
/// `resent`: it cannot know which ones arrived); those seen are dropped, and only a notice sent
/// twice without the flag is a duplicate.
#[derive(Default)]
struct SeenNotices {
    ids: std::collections::BTreeSet<i64>,
    highest: i64,
}

impl SeenNotices {
    const MEMORY: usize = 4096;

    /// Whether `id` is new (and now seen).
    fn first_time(&mut self, id: i64) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        if self.ids.len() > Self::MEMORY {
            self.ids.pop_first();
        }
        self.highest = self.highest.max(id);
        true
    }
}

fn on_frame(
    tally: &Shared,
    agent: &Agent,
    frame: Value,
    seen: &mut SeenNotices,
    inbox: &mpsc::UnboundedSender<Value>,
) {
    let kind = frame["type"].as_str().unwrap_or_default();
    if kind == "driver.position" {
        lock(tally).progress.driver_positions_seen += 1;
        return;
    }
    if kind == "error" {
        let mut t = lock(tally);
        t.progress.ws_error_frames += 1;
        t.example(
            format!("ws error {}", frame["code"].as_str().unwrap_or("?")),
            || frame.to_string(),
        );
        return;
    }
    if !kind.starts_with("trip.") {
        return; // hello, pong
    }
    let id = frame["id"].as_str().and_then(|id| id.parse::<i64>().ok());
    let Some(id) = id else {
        let mut t = lock(tally);
        t.progress.ws_error_frames += 1;
        t.example("ws notice without an id".to_owned(), || frame.to_string());
        return;
    };
    {
        let mut t = lock(tally);
        if !seen.first_time(id) {
            if frame["resent"] != true {
                t.checks.duplicate_notices += 1;
                t.example(format!("ws duplicate notice ({})", agent.email), || {
                    format!("notice {id} a second time: {frame}")
                });
            }
            return;
        }
        let trip = &frame["trip"];
        if let (Some(trip_id), Some(version)) = (trip["id"].as_str(), trip["version"].as_u64()) {
            t.trips
                .entry(trip_id.to_owned())
                .or_default()
                .entry(version)
                .or_insert_with(|| TripStep {
                    kind: kind.to_owned(),
                    at: frame["at"].as_i64().unwrap_or_default(),
                    driver: trip["driver_id"].as_str().map(str::to_owned),
                });
        }
    }
    let _ = inbox.send(frame);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_hide_ids() {
        assert_eq!(
            route_of("/v1/trips/0190a2b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b/accept"),
            "/v1/trips/{id}/accept"
        );
        assert_eq!(route_of("/v1/trips?limit=5"), "/v1/trips");
    }
}
