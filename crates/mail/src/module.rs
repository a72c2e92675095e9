//! The mail service on the composition path: the consumers of `payment.captured.v1` (receipts,
//! fee notices) and `payment.refunded.v1` (refund notices), tasks. It provides nothing to other
//! services.

use std::sync::Arc;

use async_trait::async_trait;
use domain::events::Event;
use identity::IdentityApi;
use lettre::message::Mailbox;
use payment::{PaymentCaptured, PaymentRefunded};
use platform::bus::{self, Handled, SubscribeOptions};
use platform::config::SectionSpec;
use platform::service::{Backends, Deps, ServiceModule, Started};

use crate::config::smtp_address;
use crate::{MailConfig, Mailer, receipt};

/// Attempts of one message before it is dead-lettered: with the bus's backoff (capped at 10 s)
/// about an hour of a mail server down.
const MAX_DELIVER: u32 = 360;

pub struct Module;

#[async_trait]
impl ServiceModule for Module {
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
                let (host, port) = smtp_address(url).map_err(|e| anyhow::anyhow!(e))?;
                Mailer::smtp(&host, port)
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
        Ok(Started::default().task(move |shutdown| {
            let (i, m, f) = (identity.clone(), mailer.clone(), from.clone());
            shutdown.spawn(bus::consume(
                captures,
                shutdown.token(),
                "mail.receipts",
                move |capture: PaymentCaptured, envelope| {
                    let (identity, mailer, from) = (i.clone(), m.clone(), f.clone());
                    async move {
                        let event = envelope.id.to_string();
                        send_to_rider(
                            &*identity,
                            &mailer,
                            &from,
                            capture.rider_id,
                            &event,
                            capture.kind.as_str(),
                            |name| receipt::text(&capture, name),
                        )
                        .await
                    }
                },
            ));
            shutdown.spawn(bus::consume(
                refunds,
                shutdown.token(),
                "mail.refunds",
                move |refund: PaymentRefunded, envelope| {
                    let (identity, mailer, from) = (identity.clone(), mailer.clone(), from.clone());
                    async move {
                        let event = envelope.id.to_string();
                        send_to_rider(
                            &*identity,
                            &mailer,
                            &from,
                            refund.rider_id,
                            &event,
                            "refund",
                            |name| receipt::refund_text(&refund, name),
                        )
                        .await
                    }
                },
            ));
        }))
    }
}

/// Writes to `rider` the message `compose` makes from their name; `kind` labels the metric.
async fn send_to_rider(
    identity: &dyn IdentityApi,
    mailer: &Mailer,
    from: &Mailbox,
    rider: domain::AccountId,
    event: &str,
    kind: &'static str,
    compose: impl FnOnce(&str) -> (String, String),
) -> Handled {
    let account = match identity.account_by_id(rider).await {
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
    let message = match receipt::letter(event, from, to, compose(account.name.as_str())) {
        Ok(message) => message,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a message");
            return Handled::Done;
        }
    };
    match mailer.send(message).await {
        Ok(()) => {
            metrics::counter!("mail_sent_total", "kind" => kind).increment(1);
            Handled::Done
        }
        Err(e) => {
            metrics::counter!("mail_send_failures_total").increment(1);
            Handled::Retry(format!("cannot send mail: {e}"))
        }
    }
}
