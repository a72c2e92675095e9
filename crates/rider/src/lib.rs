//! The rider service owns ride requests (course `POST /rider`): it stamps an accepted request with
//! an id and a time and announces it on the bus as `RideRequested`. It never matches, prices or
//! notifies — matching and communication react to its event.

pub mod module;
pub mod remote;

pub use module::Module;

use async_trait::async_trait;
use domain::RideRequest;
use domain::course::RideRequestDraft;
use domain::events::RideRequested;
use platform::bus::{self, SharedBus};
use platform::clock;

#[derive(Clone, Debug, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiderError {
    #[error("cannot accept ride requests right now: {0}")]
    Unavailable(String),
}

impl From<RiderError> for platform::ApiError {
    fn from(e: RiderError) -> Self {
        platform::ApiError::unavailable(e)
    }
}

/// What a remote caller makes of an error that is not the rider service's own (it could not be
/// reached): unavailable.
impl From<platform::ApiError> for RiderError {
    fn from(e: platform::ApiError) -> Self {
        Self::Unavailable(e.message)
    }
}

/// How the gateway (or any other caller) reaches the rider service.
#[async_trait]
pub trait RiderApi: Send + Sync + 'static {
    async fn request_ride(&self, draft: RideRequestDraft) -> Result<RideRequest, RiderError>;
}

#[derive(Clone)]
pub struct RiderService {
    bus: SharedBus,
}

impl RiderService {
    pub fn new(bus: SharedBus) -> Self {
        Self { bus }
    }
}

#[async_trait]
impl RiderApi for RiderService {
    #[tracing::instrument(skip_all, fields(rider = %draft.rider))]
    async fn request_ride(&self, draft: RideRequestDraft) -> Result<RideRequest, RiderError> {
        let request = RideRequest::new(clock::new_id(), draft, clock::now());
        let event = RideRequested { request };
        bus::publish_event(self.bus.as_ref(), &event)
            .await
            .map_err(|e| RiderError::Unavailable(e.to_string()))?;
        metrics::counter!("ride_requests_total").increment(1);
        Ok(event.request)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use domain::events::Event;
    use domain::{PersonName, Point};
    use platform::bus::{Bus, InProcessBus, SubscribeOptions};

    use super::*;

    #[tokio::test]
    async fn an_accepted_request_is_announced_on_the_bus() {
        let bus = Arc::new(InProcessBus::new());
        let mut sub = bus
            .subscribe(SubscribeOptions::ephemeral(RideRequested::SUBJECT))
            .await
            .expect("subscribe");
        let service = RiderService::new(bus);
        let request = service
            .request_ride(RideRequestDraft {
                rider: PersonName::parse("Asha").expect("valid"),
                position: Point::new(1.0, 2.0).expect("valid"),
                destination: Point::new(3.0, 4.0).expect("valid"),
            })
            .await
            .expect("accepted");
        let delivery = sub.next().await.expect("event");
        let event: RideRequested = delivery.envelope.decode().expect("decodes");
        assert_eq!(event.request, request);
    }
}
