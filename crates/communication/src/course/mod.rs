//! The course protocol's sockets (seed 002): plain WebSocket at `GET /communication` and
//! socket.io (Engine.IO v4) in the `/communication` namespace under `/socket.io/`. They turn match
//! events from the bus into messages for whoever should see them: a client that identified itself
//! by name gets only its own messages, an anonymous one gets every match (the course bots listen
//! for all). One hub (`CourseHub`) feeds both transports; one message type each way
//! (`ClientMessage`, `ServerMessage`).

mod messages;
mod socketio;
mod websocket;

use std::collections::VecDeque;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::Router;
use axum::routing::get;
use domain::EventId;
use domain::events::{Event, RideExpired, RideMatched};
use platform::Shutdown;
use platform::bus::{self, BusError, Handled, SharedBus, SubscribeOptions, Subscription};
use tokio::sync::broadcast;
use tower::Layer;

pub use messages::{ClientMessage, MatchNotice, ServerMessage, Spellings, UnmatchedNotice};

use crate::SocketLimits;

/// Messages buffered per WebSocket session before it is told it lagged.
const SESSION_BUFFER: usize = 4096;

/// Notices each instance keeps, newest last, for WebSocket clients that reconnect with the
/// `last_event_id` of the last one they got (every instance sees every event, so the instance a
/// client reconnects to holds what it missed while its old instance stopped).
const RECENT_NOTICES: usize = 4096;
/// How many notices before a reconnecting client's last one are sent again: the two subjects'
/// events may interleave differently on two instances. Clients drop the ids they have.
const RESEND_BEFORE: usize = 64;

/// One message for some recipients, serialized once for every session, when first sent (never,
/// if nobody is connected and nobody reconnects for it).
#[derive(Debug)]
pub(crate) struct Notice {
    /// The event's id (a match emitted under several names has the same id in each).
    pub id: EventId,
    /// Names it concerns; anonymous sessions see it only if `for_everyone`.
    pub recipients: Vec<String>,
    pub for_everyone: bool,
    /// The socket.io event name (the frame's `type`).
    pub event: Arc<str>,
    message: ServerMessage,
    payload: OnceLock<serde_json::Value>,
    frame: OnceLock<Arc<str>>,
}

impl Notice {
    pub fn new(
        id: EventId,
        message: ServerMessage,
        event: &str,
        recipients: Vec<String>,
        for_everyone: bool,
    ) -> Self {
        Self {
            id,
            recipients,
            for_everyone,
            event: event.into(),
            message,
            payload: OnceLock::new(),
            frame: OnceLock::new(),
        }
    }

    /// The socket.io event's payload.
    pub fn payload(&self) -> &serde_json::Value {
        self.payload.get_or_init(|| {
            serde_json::to_value(&self.message).map_or(serde_json::Value::Null, |mut payload| {
                if let Some(object) = payload.as_object_mut() {
                    object.remove("type");
                }
                payload
            })
        })
    }

    /// The WebSocket text frame: the payload with the event's name as its `type`.
    pub fn frame(&self) -> &Arc<str> {
        self.frame.get_or_init(|| {
            let mut frame = self.payload().clone();
            if let Some(object) = frame.as_object_mut() {
                object.insert("type".to_owned(), serde_json::Value::from(&*self.event));
            }
            frame.to_string().into()
        })
    }

    pub fn concerns(&self, identity: Option<&str>) -> bool {
        match identity {
            None => self.for_everyone,
            Some(name) => self.recipients.iter().any(|r| r == name),
        }
    }
}

/// The last [`RECENT_NOTICES`] notices, in the order this instance got them.
#[derive(Default)]
pub(crate) struct Recent {
    notices: Mutex<VecDeque<Arc<Notice>>>,
}

impl Recent {
    fn push(&self, notice: Arc<Notice>) {
        let mut notices = self.notices.lock().unwrap_or_else(PoisonError::into_inner);
        if notices.len() == RECENT_NOTICES {
            notices.pop_front();
        }
        notices.push_back(notice);
    }

    /// What a client whose last notice was `last` may have missed: from [`RESEND_BEFORE`] before
    /// it on; everything held when `last` is no longer (or never was) among them.
    pub fn after(&self, last: EventId) -> Vec<Arc<Notice>> {
        let notices = self.notices.lock().unwrap_or_else(PoisonError::into_inner);
        let from = notices
            .iter()
            .rposition(|n| n.id == last)
            .map_or(0, |at| at.saturating_sub(RESEND_BEFORE));
        notices.range(from..).cloned().collect()
    }
}

#[derive(Clone)]
pub(crate) struct CourseHub {
    sessions: broadcast::Sender<Arc<Notice>>,
    recent: Arc<Recent>,
    /// Every name a match is emitted under (`course.match_events`).
    match_events: Arc<[String]>,
    io: socketioxide::SocketIo,
    /// socket.io sessions open on this instance: none, and nothing is emitted there.
    socketio_sessions: Arc<AtomicUsize>,
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
        let socketio_sessions = Arc::new(AtomicUsize::new(0));
        socketio::register(&io, &socketio_sessions);
        let (sessions, _) = broadcast::channel(SESSION_BUFFER);
        Ok(Self {
            hub: CourseHub {
                sessions,
                recent: Arc::default(),
                match_events: match_events.into(),
                io,
                socketio_sessions,
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
        // Kept before it is sent: a session that subscribes and then reads the recent ones
        // misses nothing in between (it drops the copies).
        self.recent.push(notice.clone());
        // No WebSocket session listening is fine.
        let _ = self.sessions.send(notice.clone());
        if self
            .socketio_sessions
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
        {
            socketio::broadcast(&self.io, notice);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: u128) -> Arc<Notice> {
        Arc::new(Notice::new(
            EventId::from(uuid::Uuid::from_u128(n)),
            ServerMessage::Pong,
            "match",
            Vec::new(),
            true,
        ))
    }

    fn ids(notices: &[Arc<Notice>]) -> Vec<u128> {
        notices.iter().map(|n| n.id.as_uuid().as_u128()).collect()
    }

    #[test]
    fn a_reconnecting_client_gets_what_followed_its_last_notice() {
        let recent = Recent::default();
        for n in 1..=(RECENT_NOTICES as u128 + 100) {
            recent.push(numbered(n));
        }
        let newest = RECENT_NOTICES as u128 + 100;
        // From RESEND_BEFORE before the last one it had.
        let last = newest - 10;
        let missed = recent.after(EventId::from(uuid::Uuid::from_u128(last)));
        let from = last - RESEND_BEFORE as u128;
        assert_eq!(ids(&missed), (from..=newest).collect::<Vec<_>>());
        // Its last one is older than anything kept (or unknown here): everything kept.
        let all = recent.after(EventId::from(uuid::Uuid::from_u128(3)));
        assert_eq!(all.len(), RECENT_NOTICES);
        assert_eq!(ids(&all).first(), Some(&101));
        assert_eq!(ids(&all).last(), Some(&newest));
    }

    #[test]
    fn identified_sessions_see_only_their_own() {
        let notice = Notice::new(
            EventId::from(uuid::Uuid::from_u128(1)),
            ServerMessage::Pong,
            "match",
            vec!["asha".into(), "karim".into()],
            true,
        );
        assert!(notice.concerns(None));
        assert!(notice.concerns(Some("karim")));
        assert!(!notice.concerns(Some("someone else")));
    }
}
