//! What one socket may cost: the largest frame and message a client may send (refused with 1009
//! before more than a frame is buffered), a ping from the server while the client is silent,
//! and a close once it has been silent (not even a pong) for the idle timeout. `/v1/ws` also
//! caps the sessions per account. From `[sockets]`.

use std::time::Duration;

use crate::SocketsConfig;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocketUpgrade, close_code};
use platform::{ApiError, ErrorCode};
use tokio::time::{Instant, Interval, MissedTickBehavior};

#[derive(Clone, Debug)]
pub struct SocketLimits {
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub per_account: usize,
    pub read_buffer_bytes: usize,
}

impl From<&SocketsConfig> for SocketLimits {
    fn from(config: &SocketsConfig) -> Self {
        Self {
            max_frame_bytes: config.max_frame_bytes,
            max_message_bytes: config.max_message_bytes,
            ping_interval: Duration::from_millis(config.ping_interval_ms),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
            per_account: config.per_account,
            read_buffer_bytes: config.read_buffer_bytes,
        }
    }
}

impl Default for SocketLimits {
    fn default() -> Self {
        Self::from(&SocketsConfig::default())
    }
}

impl SocketLimits {
    /// The upgrade with the frame and message limits (`message_cap`: a protocol's own, smaller
    /// message limit, if it has one).
    pub fn apply(&self, upgrade: WebSocketUpgrade, message_cap: usize) -> WebSocketUpgrade {
        let message = self.max_message_bytes.min(message_cap);
        upgrade
            .max_frame_size(self.max_frame_bytes.min(message))
            .max_message_size(message)
            // Allocated whole for every socket (`sockets.read_buffer_bytes`).
            .read_buffer_size(self.read_buffer_bytes)
    }

    pub fn liveness(&self) -> Liveness {
        let mut ticks =
            tokio::time::interval_at(Instant::now() + self.ping_interval, self.ping_interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Liveness {
            ticks,
            idle_timeout: self.idle_timeout,
            last_heard: Instant::now(),
        }
    }
}

/// The upgrade, or the 422 for a plain request to the WebSocket endpoint at `path`.
pub fn websocket(
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    path: &str,
) -> Result<WebSocketUpgrade, ApiError> {
    upgrade.map_err(|rejection| {
        ApiError::new(
            ErrorCode::InvalidInput,
            format!("{path} is a WebSocket endpoint: {}", rejection.body_text()),
        )
    })
}

/// A close frame.
pub fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    }))
}

/// The close frame (1009) for a read error that is a frame or message over the limits, if it
/// is one; any other read error just ends the session.
pub fn too_large(error: &axum::Error) -> Option<Message> {
    let text = error.to_string();
    text.contains("Space limit exceeded").then(|| {
        let reason: String =
            format!("frame or message too large ({text}); send at most the documented size")
                .chars()
                .take(120)
                .collect();
        Message::Close(Some(CloseFrame {
            code: close_code::SIZE,
            reason: Utf8Bytes::from(reason),
        }))
    })
}

/// A session's clock: when to ping, and when the client has been silent too long.
#[derive(Debug)]
pub struct Liveness {
    ticks: Interval,
    idle_timeout: Duration,
    last_heard: Instant,
}

/// What a tick of [`Liveness`] asks of the session.
#[derive(Debug, PartialEq, Eq)]
pub enum Beat {
    Ping,
    /// Silent past the idle timeout: close.
    Idle,
}

impl Liveness {
    /// The client sent something (any frame, a pong included).
    pub fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// Waits for the next ping time.
    pub async fn tick(&mut self) -> Beat {
        self.ticks.tick().await;
        if self.last_heard.elapsed() >= self.idle_timeout {
            Beat::Idle
        } else {
            Beat::Ping
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_pinged_then_dropped_a_talking_one_is_kept() {
        let limits = SocketLimits {
            ping_interval: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(25),
            ..SocketLimits::default()
        };
        let mut silent = limits.liveness();
        assert_eq!(silent.tick().await, Beat::Ping);
        assert_eq!(silent.tick().await, Beat::Ping);
        assert_eq!(silent.tick().await, Beat::Idle, "30 s of silence");

        let mut talking = limits.liveness();
        for _ in 0..10 {
            assert_eq!(talking.tick().await, Beat::Ping);
            talking.heard();
        }
    }
}
