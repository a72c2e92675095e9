//! Two-way ratings of product trips: the rider rates the driver, the driver the rider, once each,
//! after the trip is completed; every account's average.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::AccountId;
use domain::rating::Stars;
use platform::ApiError;
use platform::http::JsonBody;
use rating::{AccountRating, RateTrip, TripRating};
use serde_json::Value;

use super::trips::trip_id;
use super::{Authenticated, ProductServices, body, openapi};

/// Rate the other side of a completed trip: its driver (as its rider) or its rider (as its
/// driver); once.
#[utoipa::path(post, path = "/v1/trips/{id}/rating", tag = "trips", security(("bearer" = [])),
    params(("id" = String, Path, description = "Trip id")),
    request_body = openapi::RateTripRequest,
    responses(
        (status = 201, description = "The rating, with the rated account's new average", body = openapi::TripRatingDoc),
        (status = 404, description = "No such trip of the caller's", body = openapi::ErrorBody),
        (status = 409, description = "Not completed, or rated already", body = openapi::ErrorBody),
        (status = 422, description = "Stars not 1 to 5; a comment or tags too long", body = openapi::ErrorBody),
    ))]
pub async fn rate(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<TripRating>), ApiError> {
    let Path(id) = id.map_err(|e| ApiError::not_found(e.body_text()))?;
    let trip = trip_id(&id)?;
    let object = body::object(&body)?;
    let stars = match object.get("stars") {
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| ApiError::invalid_field("stars", "stars must be a whole number"))
            .and_then(|n| {
                Stars::new(n).map_err(|e| ApiError::invalid_field("stars", e.to_string()))
            })?,
        Some(_) => return Err(ApiError::invalid_field("stars", "stars must be a number")),
        None => return Err(ApiError::invalid_field("stars", "stars is required")),
    };
    let comment = body::optional_string(&body, "comment")?.map(str::to_owned);
    let tags = match object.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| {
                t.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ApiError::invalid_field("tags", "tags must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::invalid_field("tags", "tags must be an array")),
    };
    let rating = RateTrip {
        stars,
        comment,
        tags,
    };
    let stored = services
        .trip_ratings
        .rate_trip(&caller, trip, rating)
        .await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

/// An account's average over the trip ratings it received.
#[utoipa::path(get, path = "/v1/accounts/{id}/rating", tag = "accounts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Account id")),
    responses((status = 200, description = "The average (null before the first rating) and the count", body = openapi::AccountRatingDoc)))]
pub async fn of_account(
    State(services): State<ProductServices>,
    Authenticated(_caller): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<AccountRating>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::not_found(e.body_text()))?;
    let account: AccountId = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no account {id:?}: account ids are UUIDs")))?;
    Ok(Json(services.trip_ratings.account_rating(account).await?))
}
