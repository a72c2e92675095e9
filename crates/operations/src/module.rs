//! The operations service on the composition path: its bus subscriptions (ephemeral: every
//! instance sees every event), the view they feed, its routes and the task that pushes changes
//! to the map's viewers.

use std::time::Duration;

use async_trait::async_trait;
use domain::events::{
    DriverAvailable, DriverLocated, DriverStatusChanged, Event, RideExpired, RideMatched,
    RideRequested,
};
use platform::bus::{self, Handled, SubscribeOptions};
use platform::config::SectionSpec;
use platform::service::{Deps, ServiceModule, Started};
use serde::de::DeserializeOwned;
use trip::TripNotice;

use crate::live::Live;
use crate::view::CityView;
use crate::{OperationsConfig, ViewLimits};

pub struct Module;

impl Module {
    /// A task applying every `E` on the bus to the view.
    async fn follow<E: Event + DeserializeOwned + Send + 'static>(
        deps: &Deps,
        live: &Live,
        started: Started,
        apply: fn(&mut CityView, &E),
    ) -> anyhow::Result<Started> {
        let subscription = deps
            .bus
            .subscribe(SubscribeOptions::ephemeral(E::SUBJECT))
            .await?;
        let view = live.view.clone();
        Ok(started.task(move |shutdown| {
            shutdown.spawn(bus::consume(
                subscription,
                shutdown.token(),
                "operations.city_view",
                move |event: E, _| {
                    apply(
                        &mut view
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner),
                        &event,
                    );
                    async { Handled::Done }
                },
            ));
        }))
    }
}

#[async_trait]
impl ServiceModule for Module {
    fn bus_contract(&self) -> platform::service::BusContract {
        platform::service::BusContract {
            publishes: &[],
            calls: &[],
            serves: false,
            leases: false,
        }
    }

    fn config_sections(&self) -> Vec<SectionSpec> {
        vec![SectionSpec::of::<OperationsConfig>()]
    }

    fn name(&self) -> &'static str {
        "operations"
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let config = deps.config.section::<OperationsConfig>()?;
        let limits = ViewLimits {
            resolution: h3o::Resolution::try_from(config.h3_resolution)?,
            course_window_ms: config.course_window_ms,
            stale_after_ms: config.stale_after_ms,
            max_course_entries: config.max_course_entries,
        };
        let live = Live::new(
            CityView::new(limits),
            identity::verifier(deps)?,
            communication::SocketLimits::from(
                &deps.config.section::<communication::SocketsConfig>()?,
            ),
            config.max_viewers,
            deps.shutdown.clone(),
        );
        let started = Started {
            http: Some(live.routes()),
            ..Started::default()
        };
        let started =
            Self::follow::<DriverStatusChanged>(deps, &live, started, CityView::driver_status)
                .await?;
        let started =
            Self::follow::<DriverLocated>(deps, &live, started, CityView::driver_located).await?;
        let started =
            Self::follow::<TripNotice>(deps, &live, started, CityView::trip_notice).await?;
        let started =
            Self::follow::<RideRequested>(deps, &live, started, CityView::ride_requested).await?;
        let started =
            Self::follow::<DriverAvailable>(deps, &live, started, CityView::driver_available)
                .await?;
        let started =
            Self::follow::<RideMatched>(deps, &live, started, CityView::ride_matched).await?;
        let started =
            Self::follow::<RideExpired>(deps, &live, started, CityView::ride_expired).await?;
        let (push, figures) = (
            Duration::from_millis(config.push_interval_ms),
            Duration::from_millis(config.figures_interval_ms),
        );
        Ok(started.task(move |shutdown| {
            shutdown.spawn(live.pump(push, figures));
        }))
    }
}
