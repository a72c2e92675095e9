//! A trip's money as riders and drivers see it: a rider's payments, the confirmation step of a
//! card that needs one, a driver's earnings.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use domain::Role;
use payment::{Authorization, Earnings, PaymentView};
use platform::ApiError;
use platform::http::JsonBody;
use serde::Serialize;
use serde_json::Value;

use super::trips::trip_id;
use super::{Authenticated, ProductServices, openapi, require};

#[derive(Debug, Serialize)]
pub struct PaymentList {
    payments: Vec<PaymentView>,
}

/// The rider's payments (a hold per booking, then what was captured), newest first.
#[utoipa::path(get, path = "/v1/me/payments", tag = "payments", security(("bearer" = [])),
    responses(
        (status = 200, description = "Payments", body = openapi::PaymentListDoc),
        (status = 403, description = "Not a rider", body = openapi::ErrorBody),
    ))]
pub async fn mine(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
) -> Result<Json<PaymentList>, ApiError> {
    require(&caller, Role::Rider, "have payments")?;
    let payments = services.payments.payments_of(caller.account).await?;
    Ok(Json(PaymentList { payments }))
}

/// The confirmation step of a card that needs one (as 3-D Secure): afterwards, book again with
/// the same quote.
#[utoipa::path(post, path = "/v1/payments/{trip_id}/confirm", tag = "payments",
    security(("bearer" = [])),
    params(("trip_id" = String, Path, description = "The trip id the booking's 402 named")),
    responses(
        (status = 200, description = "The fare is held", body = openapi::AuthorizationDoc),
        (status = 404, description = "No payment of yours for this trip", body = openapi::ErrorBody),
        (status = 409, description = "Nothing to confirm", body = openapi::ErrorBody),
    ))]
pub async fn confirm(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Authorization>, ApiError> {
    require(&caller, Role::Rider, "confirm payments")?;
    let Path(id) = id.map_err(|e| ApiError::not_found(e.body_text()))?;
    let trip = trip_id(&id)?;
    Ok(Json(services.payments.confirm(caller.account, trip).await?))
}

/// Gives money back to a trip's rider (admins only): `amount` (minor units), or all that is left
/// of what was captured.
#[utoipa::path(post, path = "/v1/admin/payments/{trip_id}/refund", tag = "payments",
    security(("bearer" = [])),
    params(("trip_id" = String, Path, description = "The trip"),
           ("Idempotency-Key" = String, Header, description = "Required: one per refund; repeat it to retry (the first answer is replayed)")),
    request_body = openapi::RefundRequest,
    responses(
        (status = 200, description = "The payment after the refund", body = openapi::PaymentDoc),
        (status = 403, description = "Not an admin", body = openapi::ErrorBody),
        (status = 404, description = "No payment for this trip", body = openapi::ErrorBody),
        (status = 409, description = "The payment is not captured", body = openapi::ErrorBody),
        (status = 422, description = "An amount of 0, or above what is left to refund", body = openapi::ErrorBody),
    ))]
pub async fn refund(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<PaymentView>, ApiError> {
    require(&caller, Role::Admin, "refund payments")?;
    // Money goes out: a retry must never refund twice, so the key is required.
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::invalid_field(
                "Idempotency-Key",
                "a refund needs an Idempotency-Key header (one per refund; repeat it to retry)",
            )
        })?;
    let Path(id) = id.map_err(|e| ApiError::not_found(e.body_text()))?;
    let trip = trip_id(&id)?;
    let amount = match body.get("amount") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_u64().filter(|a| *a > 0).ok_or_else(|| {
            ApiError::invalid_field("amount", "amount must be a positive whole number of poisha")
        })?),
    };
    Ok(Json(
        services
            .payments
            .refund(trip, amount, key, caller.account)
            .await?,
    ))
}

/// The driver's earnings: per trip (their share of its fare or fee, less refunds) and per day.
#[utoipa::path(get, path = "/v1/drivers/me/earnings", tag = "payments", security(("bearer" = [])),
    responses(
        (status = 200, description = "Earnings", body = openapi::EarningsDoc),
        (status = 403, description = "Not a driver", body = openapi::ErrorBody),
    ))]
pub async fn earnings(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Earnings>, ApiError> {
    require(&caller, Role::Driver, "have earnings")?;
    Ok(Json(services.payments.earnings_of(caller.account).await?))
}
