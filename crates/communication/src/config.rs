//! The communication service's section of the config (`[sockets]`).

use platform::config::Section;
use serde::{Deserialize, Serialize};

/// Limits of every socket (course WebSocket, socket.io, `/v1/ws`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketsConfig {
    /// The largest frame and the largest message a client may send (a larger one closes the
    /// session with 1009 before it is buffered).
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
    /// How often the server pings a silent client.
    pub ping_interval_ms: u64,
    /// A session the client has sent nothing on (not even a pong) for this long is closed.
    pub idle_timeout_ms: u64,
    /// `/v1/ws` sessions one account may hold at once; one more is refused with 429.
    pub per_account: usize,
}

impl Default for SocketsConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 * 1024,
            max_message_bytes: 64 * 1024,
            ping_interval_ms: 20_000,
            idle_timeout_ms: 60_000,
            per_account: 5,
        }
    }
}

impl Section for SocketsConfig {
    const NAME: &'static str = "sockets";

    fn validate(&self) -> Result<(), String> {
        if self.max_frame_bytes < 1024
            || self.max_message_bytes < self.max_frame_bytes
            || self.ping_interval_ms == 0
            || self.idle_timeout_ms <= self.ping_interval_ms
            || self.per_account == 0
        {
            return Err(format!(
                "sockets: max_frame_bytes = {} must be at least 1024 and at most max_message_bytes = {}; ping_interval_ms = {} positive and below idle_timeout_ms = {}; per_account positive",
                self.max_frame_bytes,
                self.max_message_bytes,
                self.ping_interval_ms,
                self.idle_timeout_ms
            ));
        }
        Ok(())
    }
}
