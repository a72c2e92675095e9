//! The mail service on the composition path: the consumer of `payment.captured.v1` (a task). It
//! provides nothing to other services.

use std::sync::Arc;

use async_trait::async_trait;
use domain::events::Event;
use identity::IdentityApi;
use lettre::message::Mailbox;
use payment::PaymentCaptured;
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
        let mut options = SubscribeOptions::durable(PaymentCaptured::SUBJECT, "mail-receipts");
        options.max_deliver = MAX_DELIVER;
        let captures = deps.bus.subscribe(options).await?;
        Ok(Started::default().task(move |shutdown| {
            shutdown.spawn(bus::consume(
                captures,
                shutdown.token(),
                "mail.receipts",
                move |capture: PaymentCaptured, envelope| {
                    let (identity, mailer, from) = (identity.clone(), mailer.clone(), from.clone());
                    let event = envelope.id.to_string();
                    async move { send_receipt(&*identity, &mailer, &from, &capture, &event).await }
                },
            ));
        }))
    }
}

async fn send_receipt(
    identity: &dyn IdentityApi,
    mailer: &Mailer,
    from: &Mailbox,
    capture: &PaymentCaptured,
    event: &str,
) -> Handled {
    let account = match identity.account_by_id(capture.rider_id).await {
        Ok(account) => account,
        Err(identity::IdentityError::UnknownAccount) => {
            tracing::warn!(rider = %capture.rider_id, "a receipt for an unknown account; dropped");
            return Handled::Done;
        }
        Err(e) => return Handled::Retry(format!("cannot look the rider up: {e}")),
    };
    let to = match account.email.as_str().parse::<Mailbox>() {
        Ok(address) => Mailbox::new(Some(account.name.as_str().to_owned()), address.email),
        Err(e) => {
            tracing::warn!(error = %e, "a rider's email is not a mail address; no receipt");
            return Handled::Done;
        }
    };
    let message = match receipt::message(capture, event, from, to, account.name.as_str()) {
        Ok(message) => message,
        Err(e) => {
            tracing::error!(error = %e, "cannot build a receipt");
            return Handled::Done;
        }
    };
    match mailer.send(message).await {
        Ok(()) => {
            metrics::counter!("mail_sent_total", "kind" => capture.kind.as_str()).increment(1);
            Handled::Done
        }
        Err(e) => {
            metrics::counter!("mail_send_failures_total").increment(1);
            Handled::Retry(format!("cannot send a receipt: {e}"))
        }
    }
}
