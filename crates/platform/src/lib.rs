//! What every service stands on: the config tree, telemetry, the shutdown token, the error type
//! that maps to HTTP, HTTP helpers, the bus seam (with its in-process adapter and the contract suite
//! every adapter must pass) and the SQLite store helper.
//!
//! It holds no business rules: nothing here knows what a ride or a rating is beyond the event
//! envelope.

pub mod auth;
pub mod bus;
pub mod clock;
pub mod config;
pub mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod http;
pub mod idempotency;
pub mod limit;
pub mod outbox;
pub mod rpc;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod telemetry;

pub use config::Config;
pub use error::{ApiError, ErrorCode};
pub use shutdown::Shutdown;
