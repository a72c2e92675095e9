//! The supply service on the composition path: `Arc<dyn SupplyApi>` for the gateway, trip
//! dispatch's callers and `/v1/ws`; in the distributed mode it also answers `rpc.supply.*`, and
//! elsewhere its callers call it there.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use platform::config::SectionSpec;
use platform::service::{Deps, ServiceModule, Started};

use crate::{SupplyApi, SupplyService, remote};

pub struct Module;

#[async_trait]
impl ServiceModule for Module {
    fn bus_contract(&self) -> platform::service::BusContract {
        platform::service::BusContract {
            publishes: &["supply.>"],
            calls: &[],
            serves: true,
            leases: false,
        }
    }

    fn config_sections(&self) -> Vec<SectionSpec> {
        vec![SectionSpec::of::<crate::SupplyConfig>()]
    }

    fn name(&self) -> &'static str {
        "supply"
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let service = SupplyService::new(deps.bus.clone())
            .with_location_interval(Duration::from_millis(
                deps.config
                    .section::<crate::SupplyConfig>()?
                    .location_interval_ms,
            ))
            .with_shutdown(deps.shutdown.clone());
        if let Some(nats) = deps.nats() {
            remote::serve(service.clone(), nats.clone(), &deps.shutdown).await?;
        }
        deps.provide::<Arc<dyn SupplyApi>>(Arc::new(service));
        Ok(Started::default())
    }

    fn remote(&self, deps: &Deps) -> anyhow::Result<()> {
        let rpc = deps
            .rpc()
            .ok_or_else(|| anyhow::anyhow!("the supply service is remote only over NATS"))?;
        deps.provide::<Arc<dyn SupplyApi>>(Arc::new(remote::RemoteSupply::new(rpc)));
        Ok(())
    }
}
