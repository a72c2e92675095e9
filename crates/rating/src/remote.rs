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

pub const RATE_TRIP: &str = "rpc.rating.rate_trip";
pub const ACCOUNT_RATING: &str = "rpc.rating.account_rating";

#[derive(Serialize, Deserialize)]
struct RateTripCall {
    trip: domain::TripId,
    rating: crate::RateTrip,
}

/// Answers `rpc.rating.rate_trip` (for the caller the call's token names) and
/// `rpc.rating.account_rating`.
pub async fn serve_trip_ratings(
    service: Arc<dyn crate::TripRatingApi>,
    verifier: identity::TokenVerifier,
    client: async_nats::Client,
    shutdown: &Shutdown,
) -> Result<(), ApiError> {
    let rate = service.clone();
    rpc::serve(
        client.clone(),
        RATE_TRIP,
        GROUP,
        shutdown,
        move |call: rpc::Call<RateTripCall>| {
            let (service, verifier) = (rate.clone(), verifier.clone());
            async move {
                let caller = identity::caller_of(&verifier, call.bearer.as_deref())
                    .map_err(|e| crate::TripRatingError::Trip(e.into()))?;
                service
                    .rate_trip(&caller, call.request.trip, call.request.rating)
                    .await
            }
        },
    )
    .await?;
    rpc::serve(
        client,
        ACCOUNT_RATING,
        GROUP,
        shutdown,
        move |call: rpc::Call<domain::AccountId>| {
            let service = service.clone();
            async move { service.account_rating(call.request).await }
        },
    )
    .await
}

#[derive(Clone, Debug)]
pub struct RemoteTripRatings {
    rpc: RpcClient,
}

impl RemoteTripRatings {
    pub fn new(rpc: RpcClient) -> Self {
        Self { rpc }
    }
}

#[async_trait]
impl crate::TripRatingApi for RemoteTripRatings {
    async fn rate_trip(
        &self,
        caller: &platform::auth::Caller,
        trip: domain::TripId,
        rating: crate::RateTrip,
    ) -> Result<crate::TripRating, crate::TripRatingError> {
        let request = RateTripCall { trip, rating };
        self.rpc
            .call(RATE_TRIP, &request, Some(&caller.token))
            .await
    }

    async fn account_rating(
        &self,
        account: domain::AccountId,
    ) -> Result<crate::AccountRating, crate::TripRatingError> {
        self.rpc.call(ACCOUNT_RATING, &account, None).await
    }
}
