//! The communication service on the composition path: the course sockets (`/communication`,
//! socket.io) and the product's `/v1/ws`, their bus consumers (tasks), and socket.io as the
//! outermost layer of the public router.

use std::sync::Arc;

use async_trait::async_trait;
use platform::config::SectionSpec;
use platform::service::{Deps, ServiceModule, Started};
use supply::SupplyApi;
use trip::TripApi;

use crate::{CourseSockets, Realtime, RealtimeDeps, SocketLimits};

pub struct Module;

#[async_trait]
impl ServiceModule for Module {
    fn bus_contract(&self) -> platform::service::BusContract {
        platform::service::BusContract {
            publishes: &[],
            calls: &["supply", "trip", "rating"],
            serves: false,
            leases: false,
        }
    }

    fn config_sections(&self) -> Vec<SectionSpec> {
        vec![
            SectionSpec::of::<crate::SocketsConfig>(),
            SectionSpec::of::<crate::CourseConfig>(),
        ]
    }

    fn name(&self) -> &'static str {
        "communication"
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let limits = SocketLimits::from(&deps.config.section::<crate::SocketsConfig>()?);
        let course = CourseSockets::build(
            deps.bus.clone(),
            &deps.shutdown,
            limits.clone(),
            deps.config.section::<crate::CourseConfig>()?.match_events,
        )
        .await?;
        let realtime = Realtime::build(
            &deps.bus,
            RealtimeDeps {
                trips: deps.get::<Arc<dyn TripApi>>()?,
                supply: deps.get::<Arc<dyn SupplyApi>>()?,
                ratings: deps.get::<Arc<dyn rating::TripRatingApi>>()?,
                verifier: identity::verifier(deps)?,
            },
            &deps.shutdown,
            limits,
        )
        .await?;
        let socketio = course.socketio_layer();
        Ok(Started {
            http: Some(course.routes().merge(realtime.routes())),
            wrap: Some(Box::new(socketio)),
            ..Started::default()
        }
        .task(move |shutdown| course.run(shutdown))
        .task(move |shutdown| realtime.run(shutdown)))
    }
}
