//! The payment service on the composition path: its store on the mode's database, the settling
//! consumer of the trip notices (a task), the provider's webhook route, its `rpc.payment.*`
//! answers in the distributed mode and `Arc<dyn PaymentApi>` for the services after it; elsewhere
//! a client that calls it over NATS. It reaches the provider over HTTP, as Stripe would be
//! reached: in the embedded mode the provider of this very process (`/provider/v1`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use platform::config::SectionSpec;
use platform::outbox::RelayPace;
use platform::service::{Deps, ServiceModule, Started};

use crate::provider_client::ProviderClient;
use crate::{
    PaymentApi, PaymentConfig, PaymentService, PaymentStore, PgPaymentStore, SqlitePaymentStore,
    remote, settle, webhook,
};

pub struct Module;

#[async_trait]
impl ServiceModule for Module {
    fn bus_contract(&self) -> platform::service::BusContract {
        platform::service::BusContract {
            publishes: &["payment.>"],
            calls: &[],
            serves: true,
            leases: false,
        }
    }

    fn name(&self) -> &'static str {
        "payment"
    }

    fn config_sections(&self) -> Vec<SectionSpec> {
        vec![SectionSpec::of::<PaymentConfig>()]
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let config = deps.config.section::<PaymentConfig>()?;
        // The configured provider, else the one running in this process.
        let provider_url = match (&config.provider_url, deps.get::<provider::LocalProvider>()) {
            (Some(url), _) => url.clone(),
            (None, Ok(local)) => local.url,
            (None, Err(_)) => anyhow::bail!(
                "payment.provider_url is required where the provider does not run in the same process (its …/provider/v1)"
            ),
        };
        let provider = ProviderClient::new(
            &provider_url,
            &config.provider_key,
            Duration::from_millis(config.provider_timeout_ms),
            config.provider_max_in_flight,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut started = Started::default();
        let store = deps
            .open_store(
                &mut started,
                "payment.db",
                async |pool| {
                    Ok(Arc::new(SqlitePaymentStore::new(pool).await?) as Arc<dyn PaymentStore>)
                },
                async |url, max_connections| {
                    let store = PgPaymentStore::connect(url, max_connections).await?;
                    store.migrate().await?;
                    let pool = store.pool().clone();
                    Ok((Arc::new(store) as Arc<dyn PaymentStore>, pool))
                },
            )
            .await?;
        let service = PaymentService::new(store, deps.bus.clone(), provider, config);
        let notices = settle::subscribe(&deps.bus).await?;
        let settling = service.clone();
        started = started
            .task(move |shutdown| settle::run(settling, notices, shutdown))
            .task(service.outbox().clone().relay(RelayPace::default()));
        started.http = Some(webhook::routes(service.clone()));
        let api: Arc<dyn PaymentApi> = Arc::new(service.clone());
        deps.provide(api);
        if let Some(nats) = deps.nats() {
            remote::serve(Arc::new(service), nats.clone(), &deps.shutdown).await?;
        }
        Ok(started)
    }

    fn remote(&self, deps: &Deps) -> anyhow::Result<()> {
        let rpc = deps
            .rpc()
            .ok_or_else(|| anyhow::anyhow!("the payment service is remote only over NATS"))?;
        deps.provide::<Arc<dyn PaymentApi>>(Arc::new(remote::RemotePayment::new(rpc)));
        Ok(())
    }

    async fn migrate(&self, database_url: &str) -> anyhow::Result<()> {
        let store = PgPaymentStore::connect(database_url, 1).await?;
        store.migrate().await?;
        store.pool().close().await;
        Ok(())
    }
}
