//! The communication service's sections of the config (`[sockets]`, `[course]`).

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
    /// Each socket's read buffer, allocated whole when it opens: most of an idle session's
    /// memory (the library's default is 128 KiB). A larger frame grows it, up to the limits.
    pub read_buffer_bytes: usize,
}

impl Default for SocketsConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 * 1024,
            max_message_bytes: 64 * 1024,
            ping_interval_ms: 20_000,
            idle_timeout_ms: 60_000,
            per_account: 5,
            read_buffer_bytes: 4 * 1024,
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
            || !(256..=1024 * 1024).contains(&self.read_buffer_bytes)
        {
            return Err(format!(
                "sockets: max_frame_bytes = {} must be at least 1024 and at most max_message_bytes = {}; ping_interval_ms = {} positive and below idle_timeout_ms = {}; per_account positive; read_buffer_bytes 256 to 1048576",
                self.max_frame_bytes,
                self.max_message_bytes,
                self.ping_interval_ms,
                self.idle_timeout_ms
            ));
        }
        Ok(())
    }
}

/// The course protocol's dialect on its sockets (`[course]`): what a class's existing clients
/// listen for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CourseConfig {
    /// Every event name a match is emitted under (socket.io event names; the `type` of the plain
    /// WebSocket frames), e.g. `["match", "rideMatched"]`; env
    /// `RICKSHAW_COURSE__MATCH_EVENTS='["match","rideMatched"]'`.
    pub match_events: Vec<String>,
}

impl Default for CourseConfig {
    fn default() -> Self {
        Self {
            match_events: vec!["match".to_owned()],
        }
    }
}

/// Names socket.io or Rickshaw's own messages use, which a match may not take.
const RESERVED_EVENTS: [&str; 10] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "error",
    "identified",
    "identify",
    "unmatched",
    "lagged",
    "pong",
];

impl Section for CourseConfig {
    const NAME: &'static str = "course";

    fn validate(&self) -> Result<(), String> {
        if self.match_events.is_empty() || self.match_events.len() > 8 {
            return Err("course.match_events needs 1 to 8 event names".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for name in &self.match_events {
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.'));
            if !valid {
                return Err(format!(
                    "course.match_events: {name:?} must be 1 to 64 letters, digits, _ - : or ."
                ));
            }
            if RESERVED_EVENTS.contains(&name.as_str()) {
                return Err(format!(
                    "course.match_events: {name:?} is taken by socket.io or Rickshaw itself"
                ));
            }
            if !seen.insert(name) {
                return Err(format!("course.match_events names {name:?} twice"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod course_tests {
    use super::*;

    #[test]
    fn match_event_names_are_checked() {
        assert_eq!(CourseConfig::default().validate(), Ok(()));
        for bad in [
            vec![],
            vec!["".to_owned()],
            vec!["a b".to_owned()],
            vec!["disconnect".to_owned()],
            vec!["match".to_owned(), "match".to_owned()],
        ] {
            let config = CourseConfig { match_events: bad };
            assert!(config.validate().is_err(), "{config:?}");
        }
        let two = CourseConfig {
            match_events: vec!["match".into(), "rideMatched".into()],
        };
        assert_eq!(two.validate(), Ok(()));
    }
}
