//! The platform's adapters against the real servers they adapt to.

mod http_server;
mod nats_bus;
mod rpc;

/// The NATS server tests use: `RICKSHAW_TEST_NATS_URL`, or the one on this machine.
pub fn nats_url() -> String {
    std::env::var("RICKSHAW_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}
