//! The mail service on the composition path: the consumers of `payment.captured.v1` (receipts,
//! fee notices) and `payment.refunded.v1` (refund notices), tasks. It provides nothing to other
//! services.

use std::sync::Arc;

use async_trait::async_trait;
use domain::events::Event;
use domain::ledger::TransactionKind;
use domain::{AccountId, EventId, TripId};
use identity::IdentityApi;
use lettre::message::Mailbox;
use payment::{PaymentCaptured, PaymentRefunded};
use platform::bus::{self, Envelope, Handled, SharedBus, SubscribeOptions};
use platform::clock;
use platform::config::SectionSpec;
use platform::service::{Backends, Deps, ServiceModule, Started};

use crate::{MailConfig, MailKind, MailSent, Mailer, receipt};

/// Attempts of one message before it is dead-lettered: with the bus's backoff (capped at 10 s)
/// about an hour of a mail server down.
const MAX_DELIVER: u32 = 360;

pub struct Module;

#[async_trait]
impl ServiceModule for Module {
    fn bus_contract(&self) -> platform::service::BusContract {
        platform::service::BusContract {
            publishes: &["mail.>"],
            calls: &["identity"],
            serves: false,
            leases: false,
        }
    }

    fn name(&self) -> &'static str {
        "mail"
    }

    fn config_sections(&self) -> Vec<SectionSpec> {
        vec![SectionSpec::of::<MailConfig>()]
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let config = deps.config.section::<MailConfig>()?;
        let mailer = match &config.smtp_url {
            Some(url) => {
                let ca = match &config.ca_file {
                    Some(path) => Some(
                        std::fs::read(path)
                            .map_err(|e| anyhow::anyhow!("mail.ca_file {}: {e}", path.display()))?,
                    ),
                    None => None,
                };
                Mailer::smtp(url, ca.as_deref()).map_err(|e| anyhow::anyhow!(e))?
            }
            None => {
                let dir = match (&config.dir, &deps.backends) {
                    (Some(dir), _) => dir.clone(),
                    (None, Backends::Embedded { data_dir }) => data_dir.join("mail"),
                    (None, Backends::Distributed { .. }) => deps.config.data_dir.join("mail"),
                };
                tracing::info!(dir = %dir.display(), "no mail.smtp_url: mail is written as .eml files");
                Mailer::files(&dir)?
            }
        };
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("mail.from: {e}"))?;
        let identity = deps.get::<Arc<dyn IdentityApi>>()?;
        let subscribe = |subject: &str, group: &str| {
            let mut options = SubscribeOptions::durable(subject, group);
            options.max_deliver = MAX_DELIVER;
            deps.bus.subscribe(options)
        };
        let captures = subscribe(PaymentCaptured::SUBJECT, "mail-receipts").await?;
        let refunds = subscribe(PaymentRefunded::SUBJECT, "mail-refunds").await?;
        let bus = deps.bus.clone();
        let sender = Sender {
            identity,
            mailer,
            from,
            bus,
        };
        let to_refunds = sender.clone();
        Ok(Started::default().task(move |shutdown| {
            shutdown.spawn(bus::consume(
                captures,
                shutdown.token(),
                "mail.receipts",
                move |capture: PaymentCaptured, envelope| {
                    let sender = sender.clone();
                    async move {
                        let letter = Letter {
                            rider: capture.rider_id,
                            trip: capture.trip_id,
                            cause: envelope.id,
                            kind: match capture.kind {
                                TransactionKind::Fee => MailKind::Fee,
                                _ => MailKind::Receipt,
                            },
                        };
                        sender
                            .send(letter, |name| receipt::text(&capture, name))
                            .await
                    }
                },
            ));
            shutdown.spawn(bus::consume(
                refunds,
                shutdown.token(),
                "mail.refunds",
                move |refund: PaymentRefunded, envelope| {
                    let sender = to_refunds.clone();
                    async move {
                        let letter = Letter {
                            rider: refund.rider_id,
                            trip: refund.trip_id,
                            cause: envelope.id,
                            kind: MailKind::Refund,
                        };
                        sender
                            .send(letter, |name| receipt::refund_text(&refund, name))
                            .await
                    }
                },
            ));
        }))
    }
}

/// What one message is about: the event that caused it (its id is the `Message-ID`).
struct Letter {
    rider: AccountId,
    trip: TripId,
    cause: EventId,
    kind: MailKind,
}

#[derive(Clone)]
struct Sender {
    identity: Arc<dyn IdentityApi>,
    mailer: Mailer,
    from: Mailbox,
    bus: SharedBus,
}

impl Sender {
    /// Writes to the letter's rider the message `compose` makes from their name, then announces
    /// it (`mail.sent.v1`, its id derived from the cause's, so a redelivered cause is recorded
    /// once).
    async fn send(
        &self,
        letter: Letter,
        compose: impl FnOnce(&str) -> (String, String),
    ) -> Handled {
        let rider = letter.rider;
        let account = match self.identity.account_by_id(rider).await {
            Ok(account) => account,
            Err(identity::IdentityError::UnknownAccount) => {
                tracing::warn!(%rider, "mail for an unknown account; dropped");
                return Handled::Done;
            }
            Err(e) => return Handled::Retry(format!("cannot look the rider up: {e}")),
        };
        let to = match account.email.as_str().parse::<Mailbox>() {
            Ok(address) => Mailbox::new(Some(account.name.as_str().to_owned()), address.email),
            Err(e) => {
                tracing::warn!(error = %e, "a rider's email is not a mail address; no mail");
                return Handled::Done;
            }
        };
        let (subject, body) = compose(account.name.as_str());
        let cause = letter.cause.to_string();
        let message = match receipt::letter(&cause, &self.from, to, (subject.clone(), body)) {
            Ok(message) => message,
            Err(e) => {
                tracing::error!(error = %e, "cannot build a message");
                return Handled::Done;
            }
        };
        if let Err(e) = self.mailer.send(message).await {
            metrics::counter!("mail_send_failures_total").increment(1);
            return Handled::Retry(format!("cannot send mail: {e}"));
        }
        metrics::counter!("mail_sent_total", "kind" => letter.kind.as_str()).increment(1);
        let sent = MailSent {
            trip_id: letter.trip,
            account_id: rider,
            kind: letter.kind,
            subject,
            message_id: receipt::message_id(&cause),
            cause: letter.cause,
            sent_at: clock::now(),
        };
        // Sent is sent: an announcement that cannot be published now is logged, not retried by
        // sending the message again.
        let announced = Envelope::from_event(&sent, MailSent::id_for(letter.cause), sent.sent_at);
        match announced {
            Ok(envelope) => {
                if let Err(e) = self.bus.publish(envelope).await {
                    metrics::counter!("mail_unannounced_total").increment(1);
                    tracing::warn!(error = %e, "a sent message could not be announced");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode mail.sent.v1"),
        }
        Handled::Done
    }
}
