//! The map's two routes, for admins only: `GET /v1/admin/city` (the whole picture, JSON) and
//! `GET /v1/admin/city/live` (a WebSocket: the picture, then every `push_interval_ms` one
//! `changes` frame with what changed since, and every `figures_interval_ms` a `figures` frame).
//! Every viewer gets the same frames, serialised once; a viewer that falls behind is sent the
//! whole picture again instead of the frames it missed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use communication::SocketLimits;
use communication::limits::{Beat, close};
use domain::Role;
use futures_util::{SinkExt, StreamExt};
use identity::TokenVerifier;
use platform::auth::Caller;
use platform::{ApiError, ErrorCode, Shutdown, clock};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;

use crate::view::CityView;

/// Frames buffered for a slow viewer before it is resynchronised.
const VIEWER_QUEUE: usize = 64;

#[derive(Clone)]
pub(crate) struct Live {
    pub(crate) view: Arc<Mutex<CityView>>,
    frames: broadcast::Sender<Arc<str>>,
    verifier: TokenVerifier,
    limits: SocketLimits,
    viewers: Arc<AtomicUsize>,
    max_viewers: usize,
    shutdown: Shutdown,
}

impl Live {
    pub(crate) fn new(
        view: CityView,
        verifier: TokenVerifier,
        limits: SocketLimits,
        max_viewers: usize,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            view: Arc::new(Mutex::new(view)),
            frames: broadcast::channel(VIEWER_QUEUE).0,
            verifier,
            limits,
            viewers: Arc::default(),
            max_viewers,
            shutdown,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, CityView> {
        self.view.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn routes(&self) -> Router {
        Router::new()
            .route("/v1/admin/city", get(city))
            .route("/v1/admin/city/live", get(upgrade))
            .with_state(self.clone())
    }

    /// Sends the viewers what changed, every `push`, and the figures, every `figures`.
    pub(crate) async fn pump(self, push: Duration, figures: Duration) {
        let stop = self.shutdown.token();
        let mut push = tokio::time::interval(push);
        let mut figures = tokio::time::interval(figures);
        for ticks in [&mut push, &mut figures] {
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            // Nobody watching on this instance (asked with the view locked): a viewer subscribes
            // before it locks the view for its whole picture, so one who comes later gets the
            // changes dropped now in that picture; they can go unsent and the frames unbuilt (the
            // cells alone are an H3 lookup per open trip and free driver).
            let watched = || self.frames.receiver_count() > 0;
            let frame = tokio::select! {
                () = stop.cancelled() => return,
                _ = push.tick() => {
                    let changes = {
                        let mut view = self.lock();
                        if !watched() {
                            view.forget_changes();
                            continue;
                        }
                        view.take_changes()
                    };
                    if changes.is_empty() {
                        continue;
                    }
                    json!({"type": "changes", "changes": changes})
                }
                _ = figures.tick() => {
                    let now = clock::now();
                    let mut view = self.lock();
                    view.sweep(now);
                    if !watched() {
                        continue;
                    }
                    json!({
                        "type": "figures",
                        "figures": view.figures(now),
                        "cells": view.cells(),
                        "course": view.course_picture(),
                    })
                }
            };
            // A viewer who left meanwhile: nothing to do.
            let _ = self.frames.send(Arc::from(frame.to_string()));
        }
    }

    fn snapshot_frame(&self) -> Message {
        let snapshot = self.lock().snapshot(clock::now());
        Message::Text(
            json!({"type": "snapshot", "snapshot": snapshot})
                .to_string()
                .into(),
        )
    }

    fn admin(&self, token: Option<&str>) -> Result<(Caller, domain::Timestamp), ApiError> {
        let Some(token) = token else {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "send an admin's access token: Authorization: Bearer <token>, or ?token=<token>",
            ));
        };
        let (caller, expires_at) = self
            .verifier
            .caller(token, clock::now())
            .map_err(ApiError::from)?;
        if caller.role != Role::Admin {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "only admins see the operations map; this account is a {}",
                    caller.role
                ),
            ));
        }
        Ok((caller, expires_at))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiveQuery {
    token: Option<String>,
}

async fn city(State(live): State<Live>, headers: HeaderMap) -> Response {
    if let Err(e) = live.admin(platform::auth::bearer(&headers)) {
        return e.into_response();
    }
    let snapshot = live.lock().snapshot(clock::now());
    axum::Json(snapshot).into_response()
}

/// A viewer's place, given back when dropped.
struct Seat(Arc<AtomicUsize>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn upgrade(
    State(live): State<Live>,
    headers: HeaderMap,
    query: Result<Query<LiveQuery>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => return ApiError::new(ErrorCode::InvalidInput, e.body_text()).into_response(),
    };
    let token = platform::auth::bearer(&headers).or(query.token.as_deref());
    let expires_at = match live.admin(token) {
        Ok((_, expires_at)) => expires_at,
        Err(e) => return e.into_response(),
    };
    let upgrade = match communication::limits::websocket(upgrade, "/v1/admin/city/live") {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused.into_response(),
    };
    if live.viewers.fetch_add(1, Ordering::Relaxed) >= live.max_viewers {
        live.viewers.fetch_sub(1, Ordering::Relaxed);
        return ApiError::new(
            ErrorCode::RateLimited,
            format!(
                "the map has {} viewers on this instance already (operations.max_viewers)",
                live.max_viewers
            ),
        )
        .with_retry_after(5)
        .into_response();
    }
    let seat = Seat(live.viewers.clone());
    // Viewers send nothing but pings: 1 KiB is plenty.
    live.limits
        .apply(upgrade, 1024)
        .on_upgrade(move |socket| view(socket, live, expires_at, seat))
}

async fn view(socket: WebSocket, live: Live, expires_at: domain::Timestamp, _seat: Seat) {
    let _running = live.shutdown.hold();
    let gauge = metrics::gauge!("operations_viewers");
    gauge.increment(1.0);
    // Subscribed before the picture is taken: a change made meanwhile arrives after it (changes
    // are states, so one seen twice does no harm).
    let mut frames = live.frames.subscribe();
    let (mut sink, mut stream) = socket.split();
    let stop = live.shutdown.token();
    let token_left = Duration::from_millis(expires_at.millis_since(clock::now()));
    let token_expiry = tokio::time::sleep(token_left);
    tokio::pin!(token_expiry);
    let mut liveness = live.limits.liveness();
    let mut next = Some(live.snapshot_frame());
    while let Some(outgoing) = next.take() {
        if sink.send(outgoing).await.is_err() {
            break;
        }
        next = tokio::select! {
            () = stop.cancelled() => {
                let _ = sink.send(close(close_code::AWAY, "server shutting down")).await;
                None
            }
            () = &mut token_expiry => {
                let _ = sink.send(close(close_code::POLICY, "the access token expired; reconnect with a fresh one")).await;
                None
            }
            beat = liveness.tick() => match beat {
                Beat::Ping => Some(Message::Ping(Default::default())),
                Beat::Idle => {
                    let _ = sink.send(close(close_code::POLICY, "idle too long; reconnect")).await;
                    None
                }
            },
            incoming = stream.next() => match incoming {
                None | Some(Ok(Message::Close(_))) => None,
                Some(Err(e)) => {
                    if let Some(closing) = communication::limits::too_large(&e) {
                        let _ = sink.send(closing).await;
                    }
                    None
                }
                Some(Ok(Message::Text(text))) if text.as_str().contains("\"ping\"") => {
                    liveness.heard();
                    Some(Message::Text(Utf8Bytes::from_static(r#"{"type":"pong"}"#)))
                }
                Some(Ok(_)) => {
                    liveness.heard();
                    // Anything else is ignored: the map only listens.
                    Some(Message::Ping(Default::default()))
                }
            },
            frame = frames.recv() => match frame {
                Ok(frame) => Some(Message::Text(Utf8Bytes::from(&*frame))),
                // Fell behind: the whole picture again, then on from there.
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    metrics::counter!("operations_viewer_resyncs_total").increment(1);
                    frames = frames.resubscribe();
                    Some(live.snapshot_frame())
                }
                Err(broadcast::error::RecvError::Closed) => None,
            },
        };
    }
    gauge.decrement(1.0);
}
