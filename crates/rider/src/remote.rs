//! The rider service across processes: `serve` answers `rpc.rider.request_ride` with a local
//! `RiderService`; `RemoteRider` is the gateway's `RiderApi` that calls it.

use async_trait::async_trait;
use domain::RideRequest;
use domain::course::RideRequestDraft;
use platform::rpc::{self, RpcClient};
use platform::{ApiError, Shutdown};

use crate::{RiderApi, RiderError, RiderService};

pub const REQUEST_RIDE: &str = "rpc.rider.request_ride";
const GROUP: &str = "rider";

pub async fn serve(
    service: RiderService,
    client: async_nats::Client,
    shutdown: &Shutdown,
) -> Result<(), ApiError> {
    rpc::serve(
        client,
        REQUEST_RIDE,
        GROUP,
        shutdown,
        move |call: rpc::Call<RideRequestDraft>| {
            let service = service.clone();
            async move { service.request_ride(call.request).await }
        },
    )
    .await
}

#[derive(Clone, Debug)]
pub struct RemoteRider {
    rpc: RpcClient,
}

impl RemoteRider {
    pub fn new(rpc: RpcClient) -> Self {
        Self { rpc }
    }
}

#[async_trait]
impl RiderApi for RemoteRider {
    async fn request_ride(&self, draft: RideRequestDraft) -> Result<RideRequest, RiderError> {
        self.rpc.call(REQUEST_RIDE, &draft, None).await
    }
}
