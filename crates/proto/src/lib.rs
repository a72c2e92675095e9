//! The gRPC contracts between the gateway and the identity, pricing and trip services: the
//! generated messages, clients and servers (`identity::v1`, `pricing::v1`, `trip::v1`, and the
//! shared `common::v1`), and the conventions every adapter follows:
//!
//! - **Who is calling**: only the access token travels, as `authorization: Bearer <token>`
//!   metadata ([`set_bearer`], [`bearer`]); the receiving service verifies it with its
//!   [`Authenticate`] and rebuilds the `Caller` ([`caller`]). Account ids in messages are never
//!   trusted for authorization.
//! - **Errors**: one mapping between `platform::ErrorCode` and gRPC codes ([`status_of`],
//!   [`error_of`]); the exact `ErrorCode` and the offending field ride along as metadata, so an
//!   `ApiError` survives the round trip unchanged. A failure to reach the service at all becomes
//!   `ErrorCode::Unavailable` naming it ([`remote_error`]).

mod auth;
pub mod convert;
mod error;
mod redact;
#[doc(hidden)]
pub mod testing;

pub use auth::{AUTHORIZATION, Authenticate, bearer, caller, set_bearer, with_bearer};
pub use error::{ERROR_CODE, ERROR_FIELD, error_of, grpc_code, remote_error, status_of};

/// Shared types: positions, money, routes, packages.
pub mod common {
    #[allow(clippy::all, clippy::pedantic, clippy::unwrap_used)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/rickshaw.common.v1.rs"));
    }
}

/// `rickshaw.identity.v1`: accounts, logins and sessions.
pub mod identity {
    #[allow(clippy::all, clippy::pedantic, clippy::unwrap_used)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/rickshaw.identity.v1.rs"));
    }
}

/// `rickshaw.pricing.v1`: trip previews.
pub mod pricing {
    #[allow(clippy::all, clippy::pedantic, clippy::unwrap_used)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/rickshaw.pricing.v1.rs"));
    }
}

/// `rickshaw.trip.v1`: the trip lifecycle.
pub mod trip {
    #[allow(clippy::all, clippy::pedantic, clippy::unwrap_used)]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/rickshaw.trip.v1.rs"));
    }
}

/// A channel balanced over a service's instances (`http://host:port` each), connecting lazily
/// (an instance that is down now is used once it is up); every call may take `timeout`.
pub fn balanced(
    endpoints: &[String],
    timeout: std::time::Duration,
) -> Result<tonic::transport::Channel, String> {
    let endpoints = endpoints
        .iter()
        .map(|url| {
            tonic::transport::Endpoint::from_shared(url.clone())
                .map(|e| {
                    e.timeout(timeout)
                        .connect_timeout(std::time::Duration::from_secs(2))
                })
                .map_err(|e| format!("invalid gRPC endpoint {url:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(tonic::transport::Channel::balance_list(
        endpoints.into_iter(),
    ))
}

/// A gRPC service as routes of an axum router that merges with other services' (tonic's own
/// `Routes` carries a fallback, and two routers with fallbacks do not merge): each service of a
/// process contributes one, and the composition serves them all on one listener.
pub fn grpc_router<S>(service: S) -> axum::Router
where
    S: tower::Service<axum::http::Request<tonic::body::Body>, Error = std::convert::Infallible>
        + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    use tower::ServiceExt;
    axum::Router::new().route_service(
        &format!("/{}/{{*rest}}", S::NAME),
        service.map_request(|request: axum::http::Request<axum::body::Body>| {
            request.map(tonic::body::Body::new)
        }),
    )
}
