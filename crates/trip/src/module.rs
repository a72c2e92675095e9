//! The trip service on the composition path: its store on the mode's database, the dispatcher
//! (its shards leased like the course matcher's) and the outbox relay (tasks), its `rpc.trip.*` answers in the distributed mode,
//! `Arc<dyn TripApi>` for the services after it; elsewhere a client that calls it over NATS.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use platform::config::SectionSpec;
use platform::outbox::RelayPace;
use platform::service::{Deps, ServiceModule, Started};
use pricing::QuoteBook;

use crate::{
    Dispatcher, PgTripStore, RemoteTrip, SqliteTripStore, TripApi, TripService, TripStore, remote,
};

/// Forgets `Idempotency-Key`s past their 24 hours, every 10 minutes.
fn forget_expired_keys(
    keys: platform::idempotency::IdempotencyKeys,
) -> impl FnOnce(&platform::Shutdown) + Send + 'static {
    move |shutdown| {
        let token = shutdown.token();
        shutdown.spawn(async move {
            loop {
                if let Err(e) = keys.forget_expired(platform::clock::now()).await {
                    tracing::warn!(error = %e, "cannot forget expired idempotency keys");
                }
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(600)) => {}
                }
            }
        });
    }
}

pub struct Module;

#[async_trait]
impl ServiceModule for Module {
    fn bus_contract(&self) -> platform::service::BusContract {
        platform::service::BusContract {
            publishes: &["trip.>"],
            calls: &["payment"],
            serves: true,
            leases: true,
        }
    }

    fn config_sections(&self) -> Vec<SectionSpec> {
        vec![SectionSpec::of::<crate::TripsConfig>()]
    }

    fn name(&self) -> &'static str {
        "trip"
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let key = identity::signing_key(deps)?;
        let mut started = Started::default();
        let store = deps
            .open_store(
                &mut started,
                "trip.db",
                async |pool| Ok(Arc::new(SqliteTripStore::new(pool).await?) as Arc<dyn TripStore>),
                async |url, max_connections| {
                    let store = PgTripStore::connect(url, max_connections).await?;
                    store.migrate().await?;
                    let pool = store.pool().clone();
                    Ok((Arc::new(store) as Arc<dyn TripStore>, pool))
                },
            )
            .await?;
        let config = &deps.config.section::<crate::TripsConfig>()?;
        let trips = TripService::new(
            store,
            deps.bus.clone(),
            QuoteBook::new(key.bytes()),
            config.policy(),
            deps.get::<Arc<dyn payment::PaymentApi>>()?,
        );
        // Dispatch shards: all of them in one process; shared by leases between instances. The
        // fleet mirror fills from the events and the store at once: no warm-up before joining.
        let leases = matching::module::shard_leases(
            deps,
            "dispatch",
            config.shards,
            Duration::from_millis(config.lease_ttl_ms),
            Duration::ZERO,
        )
        .await?;
        let dispatcher =
            Dispatcher::build(trips.clone(), &deps.bus, config.clone(), leases).await?;
        let trips = trips.with_arrival_rule(dispatcher.fleet(), config.arrive_radius_m);
        started = started
            .task(move |shutdown| dispatcher.run(shutdown))
            .task(trips.outbox().clone().relay(RelayPace::default()))
            .task(forget_expired_keys(trips.store().idempotency()));
        let trips: Arc<dyn TripApi> = Arc::new(trips);
        deps.provide(trips.clone());
        if let Some(nats) = deps.nats() {
            let verifier = identity::TokenVerifier::new(&key);
            remote::serve(trips, verifier, nats.clone(), &deps.shutdown).await?;
        }
        Ok(started)
    }

    fn remote(&self, deps: &Deps) -> anyhow::Result<()> {
        let rpc = deps
            .rpc()
            .ok_or_else(|| anyhow::anyhow!("the trip service is remote only over NATS"))?;
        deps.provide::<Arc<dyn TripApi>>(Arc::new(RemoteTrip::new(rpc)));
        Ok(())
    }

    async fn migrate(&self, database_url: &str) -> anyhow::Result<()> {
        let store = PgTripStore::connect(database_url, 1).await?;
        store.migrate().await?;
        store.pool().close().await;
        Ok(())
    }
}
