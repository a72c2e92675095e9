//! Plain WebSocket sessions at `GET /communication[?name=…]`.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use domain::{EventId, PersonName};
use futures_util::{SinkExt, StreamExt};
use platform::{ApiError, ErrorCode};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::messages::{ClientMessage, ServerMessage, parse_client_message};
use super::{CourseHub, Notice};
use crate::limits::{Beat, close};

#[derive(Debug, Deserialize)]
pub(crate) struct SessionQuery {
    name: Option<String>,
    /// The `event_id` of the last match or unmatched notice the client got, when it reconnects:
    /// what it missed is sent first (see [`super::Recent`]).
    last_event_id: Option<String>,
}

pub(crate) async fn upgrade(
    State(hub): State<CourseHub>,
    query: Result<Query<SessionQuery>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match crate::limits::websocket(upgrade, "/communication") {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused.into_response(),
    };
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => return ApiError::new(ErrorCode::InvalidInput, e.body_text()).into_response(),
    };
    let name = match query.name.as_deref().map(PersonName::parse) {
        None => None,
        Some(Ok(name)) => Some(name),
        Some(Err(e)) => return ApiError::invalid_field("name", e.to_string()).into_response(),
    };
    let last_event_id = match query.last_event_id.as_deref().map(str::parse::<EventId>) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            return ApiError::invalid_field(
                "last_event_id",
                "not an event id; send the event_id of the last match or unmatched message you received",
            )
            .into_response();
        }
    };
    hub.limits
        .apply(upgrade, 64 * 1024)
        .on_upgrade(move |socket| session(socket, hub, name, last_event_id))
}

fn text(message: &ServerMessage) -> Message {
    Message::Text(serde_json::to_string(message).unwrap_or_default().into())
}

async fn session(
    socket: WebSocket,
    hub: CourseHub,
    name: Option<PersonName>,
    last_event_id: Option<EventId>,
) {
    // Shutdown waits for this session to send its close frame.
    let _running = hub.shutdown.hold();
    let stop = hub.shutdown.token();
    let gauge = metrics::gauge!("communication_connected_clients", "transport" => "websocket");
    gauge.increment(1.0);
    let (mut sink, mut stream) = socket.split();
    let mut notices = hub.sessions.subscribe();
    let mut identity: Option<String> = name.map(|n| n.to_string());
    let mut liveness = hub.limits.liveness();
    if let Some(name) = &identity {
        let _ = sink
            .send(text(&ServerMessage::Identified { name: name.clone() }))
            .await;
    }
    // Subscribed above, so what arrives while the missed ones are sent comes next (its copies
    // among them are skipped).
    let mut replayed: HashSet<(EventId, Arc<str>)> = HashSet::new();
    if let Some(last) = last_event_id {
        for notice in hub.recent.after(last) {
            if let Some(frame) = frame_for(&notice, identity.as_deref()) {
                replayed.insert((notice.id, notice.event.clone()));
                if sink.send(frame).await.is_err() {
                    gauge.decrement(1.0);
                    return;
                }
            }
        }
    }
    loop {
        let outgoing = tokio::select! {
            () = stop.cancelled() => {
                let _ = sink.send(close(close_code::AWAY, "server shutting down")).await;
                break;
            }
            beat = liveness.tick() => match beat {
                Beat::Ping => Message::Ping(Default::default()),
                Beat::Idle => {
                    let _ = sink.send(close(close_code::POLICY, "idle too long; reconnect")).await;
                    break;
                }
            },
            incoming = stream.next() => match incoming {
                None | Some(Ok(Message::Close(_))) => break,
                Some(Err(e)) => {
                    if let Some(closing) = crate::limits::too_large(&e) {
                        let _ = sink.send(closing).await;
                    }
                    break;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    liveness.heard();
                    continue;
                }
                Some(Ok(Message::Binary(_))) => {
                    let _ = sink.send(close(close_code::UNSUPPORTED, "binary frames are not supported; send JSON text")).await;
                    break;
                }
                Some(Ok(Message::Text(frame))) => {
                    liveness.heard();
                    match parse_client_message(frame.as_str()) {
                        Ok(ClientMessage::Ping) => text(&ServerMessage::Pong),
                        Ok(ClientMessage::Identify { name }) => match PersonName::parse(&name) {
                            Ok(name) => {
                                identity = Some(name.to_string());
                                text(&ServerMessage::Identified { name: name.to_string() })
                            }
                            Err(e) => {
                                let _ = sink.send(close(close_code::POLICY, &format!("invalid name: {e}"))).await;
                                break;
                            }
                        },
                        Err(reason) => {
                            let _ = sink.send(close(close_code::POLICY, &reason)).await;
                            break;
                        }
                    }
                }
            },
            notice = notices.recv() => match notice {
                Ok(notice) if !replayed.is_empty()
                    && replayed.remove(&(notice.id, notice.event.clone())) => continue,
                Ok(notice) => match frame_for(&notice, identity.as_deref()) {
                    Some(frame) => frame,
                    None => continue,
                },
                Err(RecvError::Lagged(missed)) => text(&ServerMessage::Lagged { missed }),
                Err(RecvError::Closed) => break,
            },
        };
        if sink.send(outgoing).await.is_err() {
            break;
        }
    }
    gauge.decrement(1.0);
}

fn frame_for(notice: &Arc<Notice>, identity: Option<&str>) -> Option<Message> {
    notice
        .concerns(identity)
        .then(|| Message::Text(Utf8Bytes::from(notice.frame().as_ref())))
}
