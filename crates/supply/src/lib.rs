//! The supply service owns drivers' availability. Course drivers (`POST /driver`) report a car and
//! a position and are announced as `DriverAvailable`; product drivers go online or offline
//! (`DriverStatusChanged`) and stream positions (`DriverLocated`). Matching and trip dispatch keep
//! the live pools from these events; this service never pairs, offers or rates.

pub mod remote;

use async_trait::async_trait;
use domain::events::{DriverAvailable, DriverLocated, DriverStatusChanged};
use domain::{AccountId, CarNumber, DriverReport, LatLng, Package, PersonName, Point};
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

    /// A product driver goes online serving `package` (`Some`) or offline (`None`).
    async fn set_status(
        &self,
        driver: AccountId,
        package: Option<Package>,
    ) -> Result<DriverStatusChanged, SupplyError>;

    /// A product driver's position.
    async fn locate(
        &self,
        driver: AccountId,
        position: LatLng,
    ) -> Result<DriverLocated, SupplyError>;
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

    #[tracing::instrument(skip_all, fields(driver = %driver))]
    async fn set_status(
        &self,
        driver: AccountId,
        package: Option<Package>,
    ) -> Result<DriverStatusChanged, SupplyError> {
        let event = DriverStatusChanged {
            driver,
            online: package.is_some(),
            package,
            at: clock::now(),
        };
        self.announce(&event).await?;
        Ok(event)
    }

    async fn locate(
        &self,
        driver: AccountId,
        position: LatLng,
    ) -> Result<DriverLocated, SupplyError> {
        let event = DriverLocated {
            driver,
            position,
            at: clock::now(),
        };
        self.announce(&event).await?;
        metrics::counter!("driver_locations_total").increment(1);
        Ok(event)
    }
}

impl SupplyService {
    async fn announce<E: domain::events::Event>(&self, event: &E) -> Result<(), SupplyError> {
        bus::publish_event(self.bus.as_ref(), event)
            .await
            .map(|_| ())
            .map_err(|e| SupplyError::Unavailable(e.to_string()))
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
