//! The pricing service on the composition path: OSRM when `pricing.osrm_url` is set, else
//! straight lines; quotes signed with the identity key; its gRPC service in the distributed mode;
//! elsewhere a gRPC client of `grpc.pricing`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::pricing::StraightLineRouting;
use platform::config::PricingConfig;
use platform::service::{Deps, ServiceModule, Started};

use crate::{PricingApi, PricingService, QuoteBook, Router, grpc};

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
    fn name(&self) -> &'static str {
        "pricing"
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let key = identity::signing_key(deps)?;
        let pricing: Arc<dyn PricingApi> = Arc::new(service(&deps.config.pricing, &key));
        deps.provide(pricing.clone());
        let mut started = Started::default();
        if !deps.is_embedded() {
            let authenticate = identity::grpc::authenticate(identity::TokenVerifier::new(&key));
            started.grpc = Some(proto::grpc_router(grpc::service(pricing, authenticate)));
        }
        Ok(started)
    }

    fn remote(&self, deps: &Deps) -> anyhow::Result<()> {
        let grpc = &deps.config.grpc;
        let channel = proto::balanced(&grpc.pricing, Duration::from_millis(grpc.timeout_ms))
            .map_err(|e| anyhow::anyhow!("grpc.pricing: {e}"))?;
        deps.provide::<Arc<dyn PricingApi>>(Arc::new(grpc::GrpcPricing::new(channel)));
        Ok(())
    }
}
