//! A simulated payment provider that behaves like Stripe, for the payment service to call over
//! HTTP as it would call Stripe (`/provider/v1`, JSON bodies instead of form encoding).
//!
//! - **PaymentIntents** with manual capture, confirmed at creation: the test card decides the
//!   outcome (`pm_card_visa` authorizes, `pm_card_chargeDeclined` declines with 402,
//!   `pm_card_authenticationRequired` waits for `confirm`). An authorization is captured at most
//!   once (all or part; the rest is released), canceled, or canceled automatically when it
//!   expires uncaptured (`provider.authorization_ttl_s`). Captured money can be refunded, in
//!   parts, up to what was captured.
//! - **Idempotency-Key** on every POST, with Stripe's semantics (`idempotency`).
//! - **Webhooks**: every change emits an event, written in the same transaction as the change (an
//!   outbox) and POSTed, signed (`Stripe-Signature`), with retries, to `provider.webhook_url`
//!   (`webhooks`). Receivers check the signature with [`signature::verify`].
//! - **Errors** in Stripe's shape (`error`): `{"error": {"type", "code", "message", "param"?}}`.
//!
//! Its state is its own (`store`): the SQLite file `provider.db` in the embedded mode, the
//! PostgreSQL schema `provider` in the distributed mode; every change of an intent is a
//! compare-and-set on its version, so concurrent requests (on any instance) cannot both win.

pub mod api;
pub mod config;
pub mod error;
pub mod idempotency;
pub mod maintenance;
pub mod model;
pub mod module;
mod service;
pub mod signature;
pub mod store;
pub mod webhooks;

pub use config::ProviderConfig;
pub use error::{ErrorBody, ErrorObject, ErrorType, ProviderError};
pub use model::{
    CancellationReason, Event, EventData, EventObject, EventType, IntentStatus, NewIntent,
    PaymentIntent, Refund,
};
pub use module::{LocalProvider, Module};
pub use service::Provider;
pub use signature::SignatureError;
pub use store::{PgProviderStore, ProviderStore, SqliteProviderStore, StoreError};
pub use webhooks::{DeliveryPace, Endpoint, WebhookSender};
