//! The gateway on the composition path: the course routes, the product's `/v1` and the web apps
//! (`web`), calling the services started before it (locally or remotely, as the composition
//! decided).

use std::sync::Arc;

use async_trait::async_trait;
use platform::config::SectionSpec;
use platform::service::{Deps, ServiceModule, Started};

use crate::{AuthLimits, ProductServices, Services, course_router, product_router};

pub struct Module;

#[async_trait]
impl ServiceModule for Module {
    fn bus_contract(&self) -> platform::service::BusContract {
        platform::service::BusContract {
            publishes: &[],
            calls: &[
                "identity", "pricing", "trip", "supply", "payment", "rating", "rider", "audit",
            ],
            serves: false,
            leases: false,
        }
    }

    fn config_sections(&self) -> Vec<SectionSpec> {
        vec![
            SectionSpec::of::<crate::GatewayConfig>(),
            SectionSpec::of::<web::WebConfig>(),
        ]
    }

    fn name(&self) -> &'static str {
        "gateway"
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let supply = deps.get::<Arc<dyn supply::SupplyApi>>()?;
        let course = course_router(Services {
            rider: deps.get::<Arc<dyn rider::RiderApi>>()?,
            supply: supply.clone(),
            rating: deps.get::<Arc<dyn rating::RatingApi>>()?,
        });
        let product = product_router(ProductServices {
            identity: deps.get::<Arc<dyn identity::IdentityApi>>()?,
            pricing: deps.get::<Arc<dyn pricing::PricingApi>>()?,
            trips: deps.get::<Arc<dyn trip::TripApi>>()?,
            supply,
            payments: deps.get::<Arc<dyn payment::PaymentApi>>()?,
            trip_ratings: deps.get::<Arc<dyn rating::TripRatingApi>>()?,
            audit: deps.get::<Arc<dyn audit::AuditApi>>()?,
            verifier: identity::verifier(deps)?,
            auth_limits: AuthLimits::new(&deps.config.section()?, &deps.config.http),
        });
        Ok(Started {
            http: Some(
                course
                    .merge(product)
                    .merge(web::router(deps.config.section()?)),
            ),
            ..Started::default()
        })
    }
}
