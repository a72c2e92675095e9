//! The product API under `/v1` (issue 4): accounts, drivers, previews and trips. Every handler
//! authenticates the bearer token locally (`identity::TokenVerifier`, no call per request),
//! checks the role the route needs (403), validates the body naming the field (400/422), and calls
//! the owning service through its API trait — which checks the caller again. 401 means "who are
//! you?", 403 "not with your role", 404 "no such thing of yours" (a rider never learns that
//! someone else's trip exists).

mod accounts;
mod audit_log;
pub mod auth_limits;
mod body;
mod drivers;
pub mod openapi;
mod payments;
mod ratings;
mod trips;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use domain::Role;
use identity::{IdentityApi, TokenVerifier};
use platform::auth::Caller;
use platform::{ApiError, ErrorCode, clock};
use pricing::PricingApi;
use supply::SupplyApi;
use trip::TripApi;

/// The services behind the product API.
#[derive(Clone)]
pub struct ProductServices {
    pub identity: Arc<dyn IdentityApi>,
    pub pricing: Arc<dyn PricingApi>,
    pub trips: Arc<dyn TripApi>,
    pub supply: Arc<dyn SupplyApi>,
    pub payments: Arc<dyn payment::PaymentApi>,
    pub trip_ratings: Arc<dyn rating::TripRatingApi>,
    pub audit: Arc<dyn audit::AuditApi>,
    pub verifier: TokenVerifier,
    /// Per client address: sign-ups and logins in flight, failed logins.
    pub auth_limits: auth_limits::AuthLimits,
}

/// `/v1/…`, `/openapi.json` and `/docs`.
pub fn product_router(services: ProductServices) -> Router {
    Router::new()
        .route("/v1/auth/signup", post(accounts::sign_up))
        .route("/v1/auth/login", post(accounts::log_in))
        .route("/v1/auth/refresh", post(accounts::refresh))
        .route("/v1/auth/logout", post(accounts::log_out))
        .route("/v1/me", get(accounts::me))
        .route("/v1/drivers/me/vehicle", put(drivers::set_vehicle))
        .route("/v1/drivers/me/status", post(drivers::set_status))
        .route("/v1/drivers/me/location", post(drivers::locate))
        .route("/v1/trips/preview", post(trips::preview))
        .route("/v1/trips", post(trips::book).get(trips::list))
        .route("/v1/trips/{id}", get(trips::get))
        .route("/v1/trips/{id}/rating", post(ratings::rate))
        .route("/v1/trips/{id}/{action}", post(trips::act))
        .route("/v1/accounts/{id}/rating", get(ratings::of_account))
        .route("/v1/me/payments", get(payments::mine))
        .route("/v1/payments/{trip_id}/confirm", post(payments::confirm))
        .route("/v1/drivers/me/earnings", get(payments::earnings))
        .route(
            "/v1/admin/payments/{trip_id}/refund",
            post(payments::refund),
        )
        .route("/v1/admin/audit", get(audit_log::query))
        .with_state(services)
        .merge(openapi::router())
}

/// A 401 that tells the client how to authenticate.
pub struct Unauthorized(ApiError);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"rickshaw\""),
        );
        response
    }
}

fn unauthorized(message: impl Into<String>) -> Unauthorized {
    Unauthorized(ApiError::new(ErrorCode::Unauthorized, message))
}

/// The verified caller of a request.
pub struct Authenticated(pub Caller);

impl FromRequestParts<ProductServices> for Authenticated {
    type Rejection = Unauthorized;

    async fn from_request_parts(
        parts: &mut Parts,
        services: &ProductServices,
    ) -> Result<Self, Self::Rejection> {
        let token = platform::auth::bearer(&parts.headers).ok_or_else(|| {
            unauthorized(
                "send an access token: Authorization: Bearer <token> (POST /v1/auth/login)",
            )
        })?;
        services
            .verifier
            .caller(token, clock::now())
            .map(|(caller, _)| Authenticated(caller))
            .map_err(|e| Unauthorized(e.into()))
    }
}

/// 403 unless the caller has `role`.
fn require(caller: &Caller, role: Role, what: &str) -> Result<(), ApiError> {
    if caller.role == role {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("only {role}s {what}; this account is a {}", caller.role),
        ))
    }
}
