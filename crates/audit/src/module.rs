//! The audit service on the composition path: its store on the mode's database, a recording task
//! per audited subject (a durable consumer group shared by every instance), `Arc<dyn AuditApi>`
//! for the gateway; in the distributed mode it also answers `rpc.audit.query`, and elsewhere the
//! gateway calls it there.

use std::sync::Arc;

use async_trait::async_trait;
use platform::bus::{self, SubscribeOptions, Subscription};
use platform::config::SectionSpec;
use platform::service::{Deps, ServiceModule, Started};
use tokio_util::sync::CancellationToken;

use crate::record::Recorded;
use crate::{AuditApi, AuditConfig, AuditService, AuditStore, remote};

/// Attempts of one event before the bus dead-letters it: with its backoff (capped at 10 s)
/// about an hour of a database down.
const MAX_DELIVER: u32 = 360;

pub struct Module;

/// The consumer group of `subject` (`payment.>` → `audit-payment_all`): stable, so a restart or
/// another instance resumes where the group is.
pub fn group_of(subject: &str) -> String {
    let name: String = subject
        .chars()
        .map(|c| match c {
            '>' => "all".to_owned(),
            '*' => "any".to_owned(),
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => c.to_string(),
            _ => "_".to_owned(),
        })
        .collect();
    format!("audit-{name}")
}

#[async_trait]
impl ServiceModule for Module {
    fn bus_contract(&self) -> platform::service::BusContract {
        platform::service::BusContract {
            publishes: &[],
            calls: &[],
            serves: true,
            leases: false,
        }
    }

    fn name(&self) -> &'static str {
        "audit"
    }

    fn config_sections(&self) -> Vec<SectionSpec> {
        vec![SectionSpec::of::<AuditConfig>()]
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let config = deps.config.section::<AuditConfig>()?;
        let mut started = Started::default();
        let store = deps
            .open_store(
                &mut started,
                "audit.db",
                async |pool| Ok(AuditStore::sqlite(pool).await?),
                async |url, max_connections| {
                    let store = AuditStore::postgres(url, max_connections).await?;
                    store.migrate().await?;
                    let AuditStore::Postgres(pool) = &store else {
                        unreachable!("a PostgreSQL store")
                    };
                    let pool = pool.clone();
                    Ok((store, pool))
                },
            )
            .await?;
        for subject in &config.subjects {
            let mut options = SubscribeOptions::durable(subject.clone(), group_of(subject));
            options.max_deliver = MAX_DELIVER;
            let subscription = deps.bus.subscribe(options).await?;
            let (store, batch) = (store.clone(), config.batch);
            let subject = subject.clone();
            started = started.task(move |shutdown| {
                shutdown.spawn(record(
                    subscription,
                    store,
                    batch,
                    shutdown.token(),
                    subject,
                ));
            });
        }
        let api: Arc<dyn AuditApi> = Arc::new(AuditService::new(store));
        if let Some(nats) = deps.nats() {
            remote::serve(
                api.clone(),
                identity::verifier(deps)?,
                nats.clone(),
                &deps.shutdown,
            )
            .await?;
        }
        deps.provide(api);
        Ok(started)
    }

    fn remote(&self, deps: &Deps) -> anyhow::Result<()> {
        let rpc = deps
            .rpc()
            .ok_or_else(|| anyhow::anyhow!("the audit service is remote only over NATS"))?;
        deps.provide::<Arc<dyn AuditApi>>(Arc::new(remote::RemoteAudit::new(rpc)));
        Ok(())
    }

    async fn migrate(&self, database_url: &str) -> anyhow::Result<()> {
        let store = AuditStore::postgres(database_url, 1).await?;
        store.migrate().await?;
        store.close().await;
        Ok(())
    }
}

/// Records what `subscription` delivers until `shutdown`: whatever has come in, up to `batch`
/// events, in one transaction; acked once committed, redelivered with backoff if not.
async fn record(
    subscription: Subscription,
    store: AuditStore,
    batch: usize,
    shutdown: CancellationToken,
    subject: String,
) {
    bus::consume_batches(subscription, shutdown, "audit", batch, move |envelopes| {
        let store = store.clone();
        let subject = subject.clone();
        async move {
            let records: Vec<Recorded> = envelopes.into_iter().map(Recorded::of).collect();
            match store.record(&records).await {
                Ok(new) => {
                    metrics::counter!("audit_events_recorded_total").increment(new);
                    bus::Handled::Done
                }
                Err(e) => {
                    metrics::counter!("audit_record_failures_total").increment(1);
                    bus::Handled::Retry(format!(
                        "cannot record {} events of {subject}: {e}",
                        records.len()
                    ))
                }
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_names_nats_accepts() {
        assert_eq!(group_of("payment.>"), "audit-payment_all");
        assert_eq!(group_of("trip.notice.v1"), "audit-trip_notice_v1");
        assert_eq!(group_of("a.*.b"), "audit-a_any_b");
    }
}
