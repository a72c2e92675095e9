//! The rating service across processes: `serve` answers `rpc.rating.rate` and
//! `rpc.rating.driver_rating` with a local `RatingService`; `RemoteRating` is the gateway's
//! `RatingApi` that calls them.

use std::sync::Arc;

use async_trait::async_trait;
use domain::rating::Stars;
use platform::rpc::{self, RpcClient};
use platform::{ApiError, Shutdown};
use serde::{Deserialize, Serialize};

use crate::{DriverRating, DriverRef, RatingApi, RatingError, RatingService};

pub const RATE: &str = "rpc.rating.rate";
pub const DRIVER_RATING: &str = "rpc.rating.driver_rating";
const GROUP: &str = "rating";

#[derive(Serialize, Deserialize)]
struct Rate {
    driver: DriverRef,
    stars: Stars,
}

pub async fn serve(
    service: Arc<RatingService>,
    client: async_nats::Client,
    shutdown: &Shutdown,
) -> Result<(), ApiError> {
    let rate = service.clone();
    rpc::serve(
        client.clone(),
        RATE,
        GROUP,
        shutdown,
        move |call: rpc::Call<Rate>| {
            let service = rate.clone();
            let r = call.request;
            async move { service.rate(r.driver, r.stars).await }
        },
    )
    .await?;
    rpc::serve(
        client,
        DRIVER_RATING,
        GROUP,
        shutdown,
        move |call: rpc::Call<DriverRef>| {
            let service = service.clone();
            async move { service.driver_rating(call.request).await }
        },
    )
    .await
}

#[derive(Clone, Debug)]
pub struct RemoteRating {
    rpc: RpcClient,
}

impl RemoteRating {
    pub fn new(rpc: RpcClient) -> Self {
        Self { rpc }
    }
}

#[async_trait]
impl RatingApi for RemoteRating {
    async fn rate(&self, driver: DriverRef, stars: Stars) -> Result<DriverRating, RatingError> {
        let request = Rate { driver, stars };
        self.rpc.call(RATE, &request, None).await
    }

    async fn driver_rating(&self, driver: DriverRef) -> Result<DriverRating, RatingError> {
        self.rpc.call(DRIVER_RATING, &driver, None).await
    }
}
