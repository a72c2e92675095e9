//! The course protocol's sockets (seed 002): plain WebSocket at `GET /communication` and
//! socket.io (Engine.IO v4) in the `/communication` namespace under `/socket.io/`. They turn match
//! events from the bus into messages for whoever should see them: a client that identified itself
//! by name gets only its own messages, an anonymous one gets every match (the course bots listen
//! for all). One hub (`CourseHub`) feeds both transports; one message type each way
//! (`ClientMessage`, `ServerMessage`).

mod messages;
mod socketio;
mod websocket;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use domain::events::{Event, RideExpired, RideMatched};
use platform::Shutdown;
use platform::bus::{self, BusError, Handled, SharedBus, SubscribeOptions, Subscription};
use tokio::sync::broadcast;
use tower::Layer;

pub use messages::{ClientMessage, MatchNotice, ServerMessage, Spellings, UnmatchedNotice};

use crate::SocketLimits;

/// Messages buffered per WebSocket session before it is told it lagged.
const SESSION_BUFFER: usize = 4096;

/// One message for some recipients, serialized once for every session.
#[derive(Debug)]
pub(crate) struct Notice {
    /// Names it concerns; anonymous sessions see it only if `for_everyone`.
    pub recipients: Vec<String>,
    pub for_everyone: bool,
    /// The socket.io event name (the frame's `type`) and payload.
    pub event: Arc<str>,
    pub payload: serde_json::Value,
    /// The WebSocket text frame (the payload with its `type`).
    pub frame: Arc<str>,
}

impl Notice {
    pub fn concerns(&self, identity: Option<&str>) -> bool {
        match identity {
            None => self.for_everyone,
            Some(name) => self.recipients.iter().any(|r| r == name),
        }
    }
}

#[derive(Clone)]
pub(crate) struct CourseHub {
    sessions: broadcast::Sender<Arc<Notice>>,
    /// Every name a match is emitted under (`course.match_events`).
    match_events: Arc<[String]>,
    io: socketioxide::SocketIo,
    shutdown: Shutdown,
    limits: SocketLimits,
}

/// The course sockets: their routes, the socket.io layer and the bus consumers feeding them.
pub struct CourseSockets {
    hub: CourseHub,
    socketio_layer: socketioxide::layer::SocketIoLayer,
    matched: Subscription,
    expired: Subscription,
}

impl CourseSockets {
    /// Subscribes to the events it delivers (every instance sees every event: fan-out) and sets up
    /// the socket.io namespace.
    pub async fn build(
        bus: SharedBus,
        shutdown: &Shutdown,
        limits: SocketLimits,
        match_events: Vec<String>,
    ) -> Result<Self, BusError> {
        let matched = bus
            .subscribe(SubscribeOptions::ephemeral(RideMatched::SUBJECT))
            .await?;
        let expired = bus
            .subscribe(SubscribeOptions::ephemeral(RideExpired::SUBJECT))
            .await?;
        let message = limits.max_message_bytes.min(64 * 1024);
        let (socketio_layer, io) = socketioxide::SocketIo::builder()
            .max_payload(u64::try_from(message).unwrap_or(u64::MAX))
            .ws_max_message_size(message)
            .ws_max_frame_size(limits.max_frame_bytes.min(message))
            .ping_interval(limits.ping_interval)
            .ping_timeout(limits.idle_timeout.saturating_sub(limits.ping_interval))
            .build_layer();
        socketio::register(&io);
        let (sessions, _) = broadcast::channel(SESSION_BUFFER);
        Ok(Self {
            hub: CourseHub {
                sessions,
                match_events: match_events.into(),
                io,
                shutdown: shutdown.clone(),
                limits,
            },
            socketio_layer,
            matched,
            expired,
        })
    }

    /// `GET /communication`, to merge into the public router.
    pub fn routes(&self) -> Router {
        Router::new()
            .route("/communication", get(websocket::upgrade))
            .with_state(self.hub.clone())
    }

    /// What serves `/socket.io/` in front of the finished public router. Apply it last, outside
    /// the request timeout: long-polling requests legitimately wait up to the ping interval.
    ///
    /// The layer is applied exactly once, around the whole router: every application of a
    /// `SocketIoLayer` creates its own Engine.IO session table, and `Router::layer` would apply it
    /// once per route, so a long-polling session opened on one would be unknown to the next.
    pub fn socketio_layer(&self) -> impl FnOnce(Router) -> Router + Send + 'static {
        let layer = self.socketio_layer.clone();
        move |app| Router::new().fallback_service(layer.layer(app))
    }

    /// Delivers bus events to sessions until shutdown, then closes every session.
    pub fn run(self, shutdown: &Shutdown) {
        let Self {
            hub,
            matched,
            expired,
            ..
        } = self;
        let deliver = hub.clone();
        shutdown.spawn(bus::consume(
            matched,
            shutdown.token(),
            "communication.matched",
            move |event: RideMatched, envelope| {
                for name in deliver.match_events.iter() {
                    deliver.publish(messages::match_notice(&event, envelope.id, name));
                }
                async { Handled::Done }
            },
        ));
        let deliver = hub.clone();
        shutdown.spawn(bus::consume(
            expired,
            shutdown.token(),
            "communication.expired",
            move |event: RideExpired, envelope| {
                deliver.publish(messages::unmatched_notice(&event, envelope.id));
                async { Handled::Done }
            },
        ));
        let token = shutdown.token();
        shutdown.spawn(async move {
            token.cancelled().await;
            hub.io.close().await;
        });
    }
}

impl CourseHub {
    fn publish(&self, notice: Notice) {
        let notice = Arc::new(notice);
        // No WebSocket session listening is fine.
        let _ = self.sessions.send(notice.clone());
        socketio::broadcast(&self.io, notice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identified_sessions_see_only_their_own() {
        let notice = Notice {
            recipients: vec!["asha".into(), "karim".into()],
            for_everyone: true,
            event: Arc::from("match"),
            payload: serde_json::Value::Null,
            frame: Arc::from("{}"),
        };
        assert!(notice.concerns(None));
        assert!(notice.concerns(Some("karim")));
        assert!(!notice.concerns(Some("someone else")));
    }
}
