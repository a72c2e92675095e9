//! The mail service: a receipt after every paid trip, a notice for every fee charged. It follows
//! the payment service's `payment.captured.v1` (a durable consumer: any instance, each event
//! once, retried with backoff while the mail server is down — never in the way of a trip), looks
//! the rider up (`IdentityApi::account_by_id`) and sends over SMTP (`mail.smtp_url`), or, with
//! no server configured, writes `.eml` files under the data directory's `mail/`. Each message
//! sent is announced (`mail.sent.v1`) for the audit log.

pub mod config;
pub mod events;
mod mailer;
pub mod module;
pub mod receipt;

pub use config::MailConfig;
pub use events::{MailKind, MailSent};
pub use mailer::{Mailer, SmtpTls, parse_smtp_url};
pub use module::Module;
