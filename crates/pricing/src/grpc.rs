//! The pricing service over gRPC (`rickshaw.pricing.v1.Pricing`, crates/proto): [`service`] serves
//! any [`PricingApi`]; [`GrpcPricing`] is a `PricingApi` that calls one.
//!
//! The caller travels as its access token only (`authorization: Bearer …`); the serving side
//! rebuilds the `Caller` with its [`Authenticate`] and binds the quote to that account.

use std::sync::Arc;

use async_trait::async_trait;
use domain::LatLng;
use platform::auth::Caller;
use platform::{ApiError, ErrorCode};
pub use proto::Authenticate;
use proto::convert::{self, malformed};
use proto::pricing::v1 as pb;
use proto::pricing::v1::pricing_client::PricingClient;
use proto::pricing::v1::pricing_server::{Pricing, PricingServer};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::{PackageFare, Preview, PricingApi, PricingError};

/// The service's name in errors.
const SERVICE: &str = "pricing";

/// Serves a [`PricingApi`] over gRPC (built by [`service`]).
pub struct GrpcPricingService {
    api: Arc<dyn PricingApi>,
    authenticate: Authenticate,
}

/// The gRPC service to add to a `tonic::transport::Server`: every call is authenticated with
/// `authenticate` and answered by `api`.
pub fn service(
    api: Arc<dyn PricingApi>,
    authenticate: Authenticate,
) -> PricingServer<GrpcPricingService> {
    PricingServer::new(GrpcPricingService { api, authenticate })
}

#[tonic::async_trait]
impl Pricing for GrpcPricingService {
    async fn preview(
        &self,
        request: Request<pb::PreviewRequest>,
    ) -> Result<Response<pb::PreviewResponse>, Status> {
        let caller = proto::caller(&request, &self.authenticate)?;
        let message = request.into_inner();
        let pickup = convert::lat_lng(message.pickup, "pickup").map_err(proto::status_of)?;
        let dropoff = convert::lat_lng(message.dropoff, "dropoff").map_err(proto::status_of)?;
        let preview = self
            .api
            .preview(&caller, pickup, dropoff)
            .await
            .map_err(|e| proto::status_of(e.into()))?;
        Ok(Response::new(encode(preview)))
    }
}

/// A [`PricingApi`] served by a remote pricing service.
#[derive(Clone)]
pub struct GrpcPricing {
    inner: PricingClient<Channel>,
}

impl GrpcPricing {
    pub fn new(channel: Channel) -> Self {
        Self {
            inner: PricingClient::new(channel),
        }
    }
}

#[async_trait]
impl PricingApi for GrpcPricing {
    async fn preview(
        &self,
        caller: &Caller,
        pickup: LatLng,
        dropoff: LatLng,
    ) -> Result<Preview, PricingError> {
        let request = proto::with_bearer(
            pb::PreviewRequest {
                pickup: Some(pickup.into()),
                dropoff: Some(dropoff.into()),
            },
            &caller.token,
        )
        .map_err(PricingError::Remote)?;
        let response = self
            .inner
            .clone()
            .preview(request)
            .await
            .map_err(|status| error_of(proto::remote_error(SERVICE, status)))?;
        decode(response.into_inner()).map_err(|e| PricingError::Remote(malformed(SERVICE)(e)))
    }
}

fn encode(p: Preview) -> pb::PreviewResponse {
    pb::PreviewResponse {
        quote_id: p.quote_id,
        expires_at_ms: p.expires_at.as_millis(),
        pickup: Some(p.pickup.into()),
        dropoff: Some(p.dropoff.into()),
        route: Some(p.route.into()),
        route_source: p.route_source,
        fares: p
            .fares
            .into_iter()
            .map(|f| pb::PackageFare {
                package: proto::common::v1::Package::from(f.package).into(),
                fare: f.fare,
                currency: f.currency,
            })
            .collect(),
    }
}

fn decode(p: pb::PreviewResponse) -> Result<Preview, ApiError> {
    Ok(Preview {
        quote_id: p.quote_id,
        expires_at: convert::timestamp(p.expires_at_ms),
        pickup: convert::lat_lng(p.pickup, "pickup")?,
        dropoff: convert::lat_lng(p.dropoff, "dropoff")?,
        route: convert::route(p.route, "route")?,
        route_source: p.route_source,
        fares: p
            .fares
            .into_iter()
            .map(|f| {
                Ok(PackageFare {
                    package: convert::package(f.package, "fares.package")?,
                    fare: f.fare,
                    currency: f.currency,
                })
            })
            .collect::<Result<_, ApiError>>()?,
    })
}

/// The `PricingError` a remote service answered: the variant that converts into exactly this
/// `ApiError` (so `matches!(e, PricingError::SamePlace)` holds across the wire), else `Remote`.
fn error_of(e: ApiError) -> PricingError {
    let candidate = match (e.code, e.field.as_deref()) {
        (ErrorCode::InvalidInput, Some("dropoff")) => {
            if e.message == PricingError::SamePlace.to_string() {
                Some(PricingError::SamePlace)
            } else {
                e.message
                    .strip_prefix("the trip is ")
                    .and_then(|rest| rest.split_once(" m long"))
                    .and_then(|(metres, _)| metres.parse().ok())
                    .map(PricingError::TooLong)
            }
        }
        (ErrorCode::Forbidden, None) => Some(PricingError::Forbidden),
        (ErrorCode::Internal, None) => e
            .message
            .strip_prefix("cannot sign the quote: ")
            .map(|cause| PricingError::Signing(cause.to_owned())),
        _ => None,
    };
    match candidate {
        Some(candidate) if ApiError::from(same(&candidate)) == e => candidate,
        _ => PricingError::Remote(e),
    }
}

/// A copy of a variant `error_of` builds (`PricingError` is not `Clone`).
fn same(e: &PricingError) -> PricingError {
    match e {
        PricingError::SamePlace => PricingError::SamePlace,
        PricingError::TooLong(m) => PricingError::TooLong(*m),
        PricingError::Forbidden => PricingError::Forbidden,
        PricingError::Signing(cause) => PricingError::Signing(cause.clone()),
        PricingError::Remote(e) => PricingError::Remote(e.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pricing_error_comes_back_as_itself() {
        for e in [
            PricingError::SamePlace,
            PricingError::TooLong(250_123),
            PricingError::Forbidden,
            PricingError::Signing("no key".into()),
            PricingError::Remote(ApiError::new(ErrorCode::Unauthorized, "expired")),
        ] {
            let api = ApiError::from(same(&e));
            let back = error_of(proto::error_of(proto::status_of(api.clone())));
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
            assert_eq!(ApiError::from(back), api);
        }
        // Same code and field, another message: kept as it came.
        let other = ApiError::invalid_field("dropoff", "somewhere else");
        assert!(matches!(error_of(other), PricingError::Remote(_)));
    }
}
