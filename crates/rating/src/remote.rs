//! The rating service across processes: `serve` answers `rpc.rating.rate` and
//! `rpc.rating.driver_rating` with a local `RatingService`; `RemoteRating` is the gateway's
//! `RatingApi` that calls them.

use std::sync::Arc;

use async_trait::async_trait;
use domain::rating::Stars;
use platform::rpc::{self, RpcClient};
use platform::{ApiError, ErrorCode, Shutdown};
use serde::{Deserialize, Serialize};

use crate::{DriverRating, DriverRef, RatingApi, RatingError, RatingService, StoreError};

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
    rpc::serve(client.clone(), RATE, GROUP, shutdown, move |r: Rate| {
        let service = rate.clone();
        async move {
            service
                .rate(r.driver, r.stars)
                .await
                .map_err(ApiError::from)
        }
    })
    .await?;
    rpc::serve(
        client,
        DRIVER_RATING,
        GROUP,
        shutdown,
        move |driver: DriverRef| {
            let service = service.clone();
            async move { service.driver_rating(driver).await.map_err(ApiError::from) }
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

fn rating_error(driver: DriverRef, e: ApiError) -> RatingError {
    match e.code {
        ErrorCode::NotFound => RatingError::UnknownDriver(driver),
        _ => RatingError::Store(StoreError(e.message)),
    }
}

#[async_trait]
impl RatingApi for RemoteRating {
    async fn rate(&self, driver: DriverRef, stars: Stars) -> Result<DriverRating, RatingError> {
        let request = Rate {
            driver: driver.clone(),
            stars,
        };
        self.rpc
            .call(RATE, &request)
            .await
            .map_err(|e| rating_error(driver, e))
    }

    async fn driver_rating(&self, driver: DriverRef) -> Result<DriverRating, RatingError> {
        self.rpc
            .call(DRIVER_RATING, &driver)
            .await
            .map_err(|e| rating_error(driver, e))
    }
}
