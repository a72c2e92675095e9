//! The rider service on the composition path: `Arc<dyn RiderApi>` for the gateway; in the
//! distributed mode it also answers `rpc.rider.*`, and elsewhere the gateway calls it there.

use std::sync::Arc;

use async_trait::async_trait;
use platform::service::{Deps, ServiceModule, Started};

use crate::{RiderApi, RiderService, remote};

pub struct Module;

#[async_trait]
impl ServiceModule for Module {
    fn bus_contract(&self) -> platform::service::BusContract {
        platform::service::BusContract {
            publishes: &["rider.>"],
            calls: &[],
            serves: true,
            leases: false,
        }
    }

    fn name(&self) -> &'static str {
        "rider"
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let service = RiderService::new(deps.bus.clone());
        if let Some(nats) = deps.nats() {
            remote::serve(service.clone(), nats.clone(), &deps.shutdown).await?;
        }
        deps.provide::<Arc<dyn RiderApi>>(Arc::new(service));
        Ok(Started::default())
    }

    fn remote(&self, deps: &Deps) -> anyhow::Result<()> {
        let rpc = deps
            .rpc()
            .ok_or_else(|| anyhow::anyhow!("the rider service is remote only over NATS"))?;
        deps.provide::<Arc<dyn RiderApi>>(Arc::new(remote::RemoteRider::new(rpc)));
        Ok(())
    }
}
