//! The communication service owns client sessions, of two protocols, each with its own hub and
//! its own message types:
//!
//! - `course`: the seed-002 course protocol — plain WebSocket at `GET /communication` and socket.io
//!   in the `/communication` namespace; match and expiry messages by rider or driver name;
//! - `realtime`: the product's `GET /v1/ws` — authenticated sessions receiving their account's
//!   trip notices (with replay from a last id) and the assigned driver's positions.
//!
//! It never decides anything about rides; `limits` bounds every socket of both.

pub mod config;
pub mod course;
pub mod limits;
pub mod module;
pub mod realtime;

pub use config::{CourseConfig, SocketsConfig};
pub use course::{ClientMessage, CourseSockets, MatchNotice, ServerMessage, UnmatchedNotice};
pub use limits::SocketLimits;
pub use module::Module;
pub use realtime::{Realtime, RealtimeDeps};
