//! The course matching service on the composition path: the pool and its ticks (a task); the
//! shards it owns are all of them in the embedded mode, and leased from a NATS KV bucket in the
//! distributed mode (so several instances share the plane).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use platform::config::SectionSpec;
use platform::service::{Backends, Deps, ServiceModule, Started};

use crate::{AllShards, KvLeases, LeaseConfig, Leases, MatchingService};

/// The shards this process may work on, for the engine's users (course matching, trip
/// dispatch): all `shards` in the embedded mode (one process); in the distributed mode a share of
/// them, leased in the bucket `<stream_prefix>_<name>_leases` with `ttl`, joining after `warmup`.
pub async fn shard_leases(
    deps: &Deps,
    name: &str,
    shards: u32,
    ttl: Duration,
    warmup: Duration,
) -> anyhow::Result<Arc<dyn Leases>> {
    Ok(match &deps.backends {
        Backends::Embedded { .. } => Arc::new(AllShards(shards)),
        Backends::Distributed { jetstream, .. } => {
            let config = LeaseConfig {
                shards,
                ttl,
                bucket: format!("{}_{name}_leases", deps.config.nats.stream_prefix),
                replicas: deps.config.nats.replicas,
                instance: uuid::Uuid::now_v7().simple().to_string(),
                warmup,
            };
            let joining = (!warmup.is_zero()).then(|| {
                deps.health
                    .warming("watching for one hold time before taking shards")
            });
            KvLeases::start(jetstream, config, &deps.shutdown, joining).await?
        }
    })
}

pub struct Module;

#[async_trait]
impl ServiceModule for Module {
    fn bus_contract(&self) -> platform::service::BusContract {
        platform::service::BusContract {
            publishes: &["matching.>"],
            calls: &[],
            serves: false,
            leases: true,
        }
    }

    fn config_sections(&self) -> Vec<SectionSpec> {
        vec![SectionSpec::of::<crate::MatchingConfig>()]
    }

    fn name(&self) -> &'static str {
        "matching"
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let config = &deps.config.section::<crate::MatchingConfig>()?;
        // Subscribe first, so the mirror fills while the leases warm up.
        let matching = MatchingService::build(deps.bus.clone(), config.clone()).await?;
        let leases = shard_leases(
            deps,
            "matching",
            config.shards,
            Duration::from_millis(config.lease_ttl_ms),
            Duration::from_millis(config.hold_ms),
        )
        .await?;
        Ok(Started::default().task(move |shutdown| matching.run(shutdown, leases)))
    }
}
