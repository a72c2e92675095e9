//! The supply service owns drivers' availability. Course drivers (`POST /driver`) report a car and
//! a position and are announced as `DriverAvailable`; product drivers go online or offline
//! (`DriverStatusChanged`) and stream positions (`DriverLocated`). Matching and trip dispatch keep
//! the live pools from these events; this service never pairs, offers or rates.

pub mod config;
pub mod module;
pub mod remote;

pub use config::SupplyConfig;
pub use module::Module;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use domain::events::{DriverAvailable, DriverLocated, DriverStatusChanged};
use domain::{AccountId, CarNumber, DriverReport, LatLng, Package, PersonName, Point};
use platform::bus::{self, SharedBus};
use platform::clock;

#[derive(Clone, Debug, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SupplyError {
    #[error("cannot accept driver reports right now: {0}")]
    Unavailable(String),
}

impl From<SupplyError> for platform::ApiError {
    fn from(e: SupplyError) -> Self {
        platform::ApiError::unavailable(e)
    }
}

/// What a remote caller makes of an error that is not the supply service's own (it could not be
/// reached): unavailable.
impl From<platform::ApiError> for SupplyError {
    fn from(e: platform::ApiError) -> Self {
        Self::Unavailable(e.message)
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
    positions: Arc<Throttle>,
    /// Where a coalesced position waiting for its interval runs, so shutdown waits for it (a
    /// rolling restart must not drop a driver's last position).
    tasks: Option<platform::Shutdown>,
}

impl SupplyService {
    pub fn new(bus: SharedBus) -> Self {
        Self {
            bus,
            positions: Arc::new(Throttle::new(Duration::ZERO)),
            tasks: None,
        }
    }

    /// At most one position per driver published each `interval`; the ones in between are
    /// coalesced to the latest, published when the interval ends (`supply.location_interval_ms`).
    pub fn with_location_interval(mut self, interval: Duration) -> Self {
        self.positions = Arc::new(Throttle::new(interval));
        self
    }

    /// Runs the coalesced positions' publishes as part of the system: shutdown sends them first.
    pub fn with_shutdown(mut self, shutdown: platform::Shutdown) -> Self {
        self.tasks = Some(shutdown);
        self
    }
}

/// Per driver: when its last position went out, and the latest one waiting for the interval to
/// end. A driver flooding positions costs one bus message an interval, not one a request.
struct Throttle {
    interval: Duration,
    drivers: Mutex<HashMap<AccountId, Slot>>,
}

struct Slot {
    last_sent: tokio::time::Instant,
    /// The latest position not yet published; a task publishes it when the interval ends.
    pending: Option<DriverLocated>,
}

enum Admission {
    /// Publish now.
    Now,
    /// Kept as the latest; the flush task already waiting publishes it.
    Coalesced,
    /// Kept as the latest; start a task that publishes it at this instant.
    Later(tokio::time::Instant),
}

impl Throttle {
    fn new(interval: Duration) -> Self {
        Self {
            interval,
            drivers: Mutex::new(HashMap::new()),
        }
    }

    fn admit(&self, event: &DriverLocated) -> Admission {
        if self.interval.is_zero() {
            return Admission::Now;
        }
        let now = tokio::time::Instant::now();
        let mut drivers = self.drivers.lock().unwrap_or_else(PoisonError::into_inner);
        match drivers.get_mut(&event.driver) {
            None => {
                drivers.insert(
                    event.driver,
                    Slot {
                        last_sent: now,
                        pending: None,
                    },
                );
                Admission::Now
            }
            Some(slot) if slot.pending.is_some() => {
                slot.pending = Some(event.clone());
                Admission::Coalesced
            }
            Some(slot) if now >= slot.last_sent + self.interval => {
                slot.last_sent = now;
                Admission::Now
            }
            Some(slot) => {
                slot.pending = Some(event.clone());
                Admission::Later(slot.last_sent + self.interval)
            }
        }
    }

    /// The position to publish at the end of the interval (the latest sent meanwhile).
    fn take_pending(&self, driver: AccountId) -> Option<DriverLocated> {
        let mut drivers = self.drivers.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = drivers.get_mut(&driver)?;
        slot.last_sent = tokio::time::Instant::now();
        slot.pending.take()
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
        match self.positions.admit(&event) {
            Admission::Now => {
                self.announce(&event).await?;
                metrics::counter!("driver_locations_total").increment(1);
            }
            Admission::Coalesced => {
                metrics::counter!("driver_locations_coalesced_total").increment(1);
            }
            Admission::Later(at) => {
                metrics::counter!("driver_locations_coalesced_total").increment(1);
                let service = self.clone();
                let publish = async move {
                    tokio::time::sleep_until(at).await;
                    if let Some(latest) = service.positions.take_pending(driver) {
                        match service.announce(&latest).await {
                            Ok(()) => metrics::counter!("driver_locations_total").increment(1),
                            Err(e) => {
                                tracing::warn!(error = %e, %driver, "cannot publish a coalesced position")
                            }
                        }
                    }
                };
                match &self.tasks {
                    Some(tasks) => drop(tasks.spawn(publish)),
                    None => drop(tokio::spawn(publish)),
                }
            }
        }
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

#[cfg(test)]
mod throttle_tests {
    use domain::events::Event;
    use platform::bus::{Bus, InProcessBus, SubscribeOptions};

    use super::*;

    /// A rolling restart: the position coalesced for the end of the interval still goes out
    /// before the process stops (shutdown waits for it).
    #[tokio::test(start_paused = true)]
    async fn shutdown_sends_the_position_waiting_for_its_interval() {
        let bus = Arc::new(InProcessBus::new());
        let mut sub = bus
            .subscribe(SubscribeOptions::ephemeral(DriverLocated::SUBJECT))
            .await
            .expect("subscribe");
        let shutdown = platform::Shutdown::new();
        let service = SupplyService::new(bus)
            .with_location_interval(Duration::from_secs(1))
            .with_shutdown(shutdown.clone());
        let driver = AccountId::from_uuid(uuid::Uuid::now_v7());
        let first = LatLng::new(23.70, 90.40).expect("valid");
        let last = LatLng::new(23.71, 90.41).expect("valid");
        service.locate(driver, first).await.expect("accepted");
        service.locate(driver, last).await.expect("coalesced");
        assert!(
            shutdown.complete(Duration::from_secs(5)).await,
            "shutdown waited for the pending position"
        );
        let mut positions = Vec::new();
        while let Some(delivery) = sub.try_next() {
            let event: DriverLocated = delivery.envelope.decode().expect("decodes");
            positions.push(event.position);
        }
        assert_eq!(positions, [first, last]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flooding_driver_is_coalesced_to_its_latest_position_each_interval() {
        let bus = Arc::new(InProcessBus::new());
        let mut sub = bus
            .subscribe(SubscribeOptions::ephemeral(DriverLocated::SUBJECT))
            .await
            .expect("subscribe");
        let service = SupplyService::new(bus).with_location_interval(Duration::from_secs(1));
        let driver = AccountId::from_uuid(uuid::Uuid::now_v7());
        let other = AccountId::from_uuid(uuid::Uuid::now_v7());
        let at = |i: u32| LatLng::new(23.7 + f64::from(i) * 1e-4, 90.4).expect("valid");
        // 100 positions within one interval: the first goes out at once, the last at its end.
        for i in 0..100 {
            service.locate(driver, at(i)).await.expect("accepted");
        }
        service
            .locate(other, at(0))
            .await
            .expect("another driver is not held back");
        let mut next = async || {
            let delivery = sub.next().await.expect("event");
            let event: DriverLocated = delivery.envelope.decode().expect("decodes");
            delivery.ack().await.expect("acked");
            event
        };
        let mut got = Vec::new();
        for _ in 0..3 {
            let event = next().await;
            got.push((event.driver, event.position));
        }
        assert_eq!(
            got,
            vec![(driver, at(0)), (other, at(0)), (driver, at(99))],
            "the first, the other driver's, then only the latest"
        );
        // Nothing else is queued.
        let more = tokio::time::timeout(Duration::from_secs(5), next()).await;
        assert!(more.is_err(), "no further messages");
        // After a quiet interval the next position goes out at once again.
        service.locate(driver, at(200)).await.expect("accepted");
        assert_eq!(next().await.position, at(200));
    }
}
