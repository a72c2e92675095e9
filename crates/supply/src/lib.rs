//! The supply service owns drivers' availability (course `POST /driver`): a driver reports a car
//! and a position and is announced as `DriverAvailable`. Matching keeps the live pool; this service
//! never pairs or rates.

pub mod remote;

use async_trait::async_trait;
use domain::events::DriverAvailable;
use domain::{CarNumber, DriverReport, PersonName, Point};
use platform::bus::{self, SharedBus};
use platform::clock;

#[derive(Debug, thiserror::Error)]
pub enum SupplyError {
    #[error("cannot accept driver reports right now: {0}")]
    Unavailable(String),
}

impl From<SupplyError> for platform::ApiError {
    fn from(e: SupplyError) -> Self {
        platform::ApiError::unavailable(e)
    }
}

/// How the gateway (or any other caller) reaches the supply service.
#[async_trait]
pub trait SupplyApi: Send + Sync + 'static {
    async fn report_driver(
        &self,
        driver: PersonName,
        car_number: CarNumber,
        position: Point,
    ) -> Result<DriverReport, SupplyError>;
}

#[derive(Clone)]
pub struct SupplyService {
    bus: SharedBus,
}

impl SupplyService {
    pub fn new(bus: SharedBus) -> Self {
        Self { bus }
    }
}

#[async_trait]
impl SupplyApi for SupplyService {
    #[tracing::instrument(skip_all, fields(driver = %driver))]
    async fn report_driver(
        &self,
        driver: PersonName,
        car_number: CarNumber,
        position: Point,
    ) -> Result<DriverReport, SupplyError> {
        let report = DriverReport {
            driver,
            car_number,
            position,
            reported_at: clock::now(),
        };
        let event = DriverAvailable { report };
        bus::publish_event(self.bus.as_ref(), &event)
            .await
            .map_err(|e| SupplyError::Unavailable(e.to_string()))?;
        metrics::counter!("driver_reports_total").increment(1);
        Ok(event.report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use domain::events::Event;
    use platform::bus::{Bus, InProcessBus, SubscribeOptions};

    use super::*;

    #[tokio::test]
    async fn a_report_is_announced_on_the_bus() {
        let bus = Arc::new(InProcessBus::new());
        let mut sub = bus
            .subscribe(SubscribeOptions::ephemeral(DriverAvailable::SUBJECT))
            .await
            .expect("subscribe");
        let service = SupplyService::new(bus);
        let report = service
            .report_driver(
                PersonName::parse("Karim").expect("valid"),
                CarNumber::parse("DHA-1").expect("valid"),
                Point::new(5.0, 5.0).expect("valid"),
            )
            .await
            .expect("accepted");
        let event: DriverAvailable = sub
            .next()
            .await
            .expect("event")
            .envelope
            .decode()
            .expect("decodes");
        assert_eq!(event.report, report);
    }
}
