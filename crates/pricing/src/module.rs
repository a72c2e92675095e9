//! The pricing service on the composition path: OSRM when `pricing.osrm_url` is set, else
//! straight lines; quotes signed with the identity key; its `rpc.pricing.*` answers in the
//! distributed mode; elsewhere a client that calls it over NATS.

use std::sync::Arc;
use std::time::Duration;

use crate::PricingConfig;
use async_trait::async_trait;
use domain::pricing::StraightLineRouting;
use platform::config::SectionSpec;
use platform::service::{Deps, ServiceModule, Started};

use crate::{PricingApi, PricingService, QuoteBook, RemotePricing, Router, remote};

/// The pricing service `[pricing]` asks for, signing quotes with `key`.
pub fn service(config: &PricingConfig, key: &identity::SigningKey) -> PricingService {
    let fallback = StraightLineRouting {
        detour_factor: config.detour_factor,
        speed_kmh: config.speed_kmh,
    };
    let router = match &config.osrm_url {
        Some(url) => Router::osrm(url, Duration::from_secs(2), fallback),
        None => Router::straight_line(fallback),
    };
    PricingService::new(router, QuoteBook::new(key.bytes()), config.quote_ttl_s)
}

pub struct Module;

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

    fn config_sections(&self) -> Vec<SectionSpec> {
        vec![SectionSpec::of::<crate::PricingConfig>()]
    }

    fn name(&self) -> &'static str {
        "pricing"
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let key = identity::signing_key(deps)?;
        let config = deps.config.section::<PricingConfig>()?;
        let pricing: Arc<dyn PricingApi> = Arc::new(service(&config, &key));
        deps.provide(pricing.clone());
        if let Some(nats) = deps.nats() {
            let verifier = identity::TokenVerifier::new(&key);
            remote::serve(pricing, verifier, nats.clone(), &deps.shutdown).await?;
        }
        Ok(Started::default())
    }

    fn remote(&self, deps: &Deps) -> anyhow::Result<()> {
        let rpc = deps
            .rpc()
            .ok_or_else(|| anyhow::anyhow!("the pricing service is remote only over NATS"))?;
        deps.provide::<Arc<dyn PricingApi>>(Arc::new(RemotePricing::new(rpc)));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::PricingError;
    use platform::ApiError;

    #[test]
    fn every_pricing_error_crosses_processes_as_itself() {
        platform::rpc::assert_round_trip(&[
            PricingError::SamePlace,
            PricingError::TooLong(250_000),
            PricingError::Forbidden,
            PricingError::Signing("no key".into()),
            PricingError::Remote(ApiError::unavailable("rpc.pricing.preview: no reply")),
        ]);
    }
}
