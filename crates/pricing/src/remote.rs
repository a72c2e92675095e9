//! The pricing service across processes, over NATS request/reply (`platform::rpc`): [`serve`]
//! answers `rpc.pricing.preview` with a local [`PricingApi`], rebuilding the caller from the
//! token the call carries; [`RemotePricing`] is the `PricingApi` of a process where pricing runs
//! elsewhere.

use std::sync::Arc;

use async_trait::async_trait;
use domain::LatLng;
use identity::TokenVerifier;
use platform::rpc::{self, Call, RpcClient};
use platform::{ApiError, Shutdown};
use serde::{Deserialize, Serialize};

use crate::{Caller, Preview, PricingApi, PricingError};

pub const PREVIEW: &str = "rpc.pricing.preview";
const GROUP: &str = "pricing";

#[derive(Debug, Serialize, Deserialize)]
struct PreviewRequest {
    pickup: LatLng,
    dropoff: LatLng,
}

/// Answers `rpc.pricing.preview` with `api`, for the caller `verifier` finds in the call's token.
pub async fn serve(
    api: Arc<dyn PricingApi>,
    verifier: TokenVerifier,
    client: async_nats::Client,
    shutdown: &Shutdown,
) -> Result<(), ApiError> {
    rpc::serve(
        client,
        PREVIEW,
        GROUP,
        shutdown,
        move |call: Call<PreviewRequest>| {
            let (api, verifier) = (api.clone(), verifier.clone());
            async move {
                let caller = identity::caller_of(&verifier, call.bearer.as_deref())
                    .map_err(|e| PricingError::Remote(e.into()))?;
                api.preview(&caller, call.request.pickup, call.request.dropoff)
                    .await
            }
        },
    )
    .await
}

/// A [`PricingApi`] served by a remote pricing service.
#[derive(Clone, Debug)]
pub struct RemotePricing {
    rpc: RpcClient,
}

impl RemotePricing {
    pub fn new(rpc: RpcClient) -> Self {
        Self { rpc }
    }
}

#[async_trait]
impl PricingApi for RemotePricing {
    async fn preview(
        &self,
        caller: &Caller,
        pickup: LatLng,
        dropoff: LatLng,
    ) -> Result<Preview, PricingError> {
        self.rpc
            .call(
                PREVIEW,
                &PreviewRequest { pickup, dropoff },
                Some(&caller.token),
            )
            .await
    }
}
