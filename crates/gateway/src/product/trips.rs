//! `/v1/trips…`: preview, book, read and act on trips.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use domain::{Role, TripId};
use platform::http::JsonBody;
use platform::{ApiError, ErrorCode};
use pricing::Preview;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use trip::{Action, BookTrip, TripView};

use super::{Authenticated, ProductServices, body, openapi, require};

/// Price a trip in every package; the quote can be booked for a few minutes.
#[utoipa::path(post, path = "/v1/trips/preview", tag = "trips", security(("bearer" = [])),
    request_body = openapi::PreviewRequest,
    responses(
        (status = 200, description = "Route estimate, fares and a quote", body = openapi::PreviewView),
        (status = 403, description = "Not a rider", body = openapi::ErrorBody),
        (status = 422, description = "A coordinate is missing or out of range (named)", body = openapi::ErrorBody),
    ))]
pub async fn preview(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Preview>, ApiError> {
    require(&caller, Role::Rider, "preview trips")?;
    let pickup = body::lat_lng(&body, "pickup")?;
    let dropoff = body::lat_lng(&body, "dropoff")?;
    Ok(Json(
        services.pricing.preview(&caller, pickup, dropoff).await?,
    ))
}

/// Book a previewed trip; booking the same quote again returns the same trip.
#[utoipa::path(post, path = "/v1/trips", tag = "trips", security(("bearer" = [])),
    request_body = openapi::BookRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Stripe's semantics: a repeat with the same key gets the first answer; kept 24 h")),
    responses(
        (status = 201, description = "The trip, searching for a driver", body = openapi::TripDoc),
        (status = 402, description = "The card was declined, or needs its confirmation step (`next_action: confirm`)", body = openapi::ErrorBody),
        (status = 403, description = "Not a rider", body = openapi::ErrorBody),
        (status = 409, description = "The rider already has an open trip, or a request with the same Idempotency-Key is still running", body = openapi::ErrorBody),
        (status = 422, description = "Unknown, expired or someone else's quote; unknown package or payment method; an Idempotency-Key used with other parameters", body = openapi::ErrorBody),
    ))]
pub async fn book(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<TripView>), ApiError> {
    require(&caller, Role::Rider, "book trips")?;
    let request = BookTrip {
        quote_id: body::string(&body, "quote_id")?.to_owned(),
        package: body::package(&body, "package")?,
        payment_method: body::optional_string(&body, "payment_method")?.map(str::to_owned),
        idempotency_key: idempotency_key(&headers)?,
    };
    let trip = services.trips.book(&caller, request).await?;
    Ok((StatusCode::CREATED, Json(trip)))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct TripList {
    trips: Vec<TripView>,
}

/// The caller's trips (as rider or driver), newest first.
#[utoipa::path(get, path = "/v1/trips", tag = "trips", security(("bearer" = [])),
    params(("limit" = Option<u32>, Query, description = "1 to 200, default 50")),
    responses((status = 200, description = "Trips", body = openapi::TripListDoc)))]
pub async fn list(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<TripList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid_field("limit", e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "limit must be 1 to 200"));
    }
    let trips = services.trips.list(&caller, limit).await?;
    Ok(Json(TripList { trips }))
}

pub(super) fn trip_id(raw: &str) -> Result<TripId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("no trip {raw:?}: trip ids are UUIDs")))
}

/// One of the caller's trips.
#[utoipa::path(get, path = "/v1/trips/{id}", tag = "trips", security(("bearer" = [])),
    params(("id" = String, Path, description = "Trip id")),
    responses(
        (status = 200, description = "The trip", body = openapi::TripDoc),
        (status = 404, description = "No such trip of the caller's", body = openapi::ErrorBody),
    ))]
pub async fn get(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::not_found(e.body_text()))?;
    let trip = services.trips.get(&caller, trip_id(&id)?).await?;
    let mut body = serde_json::to_value(&trip).map_err(ApiError::internal)?;
    // A rider sees the assigned driver's average (a rating service that cannot answer leaves
    // it out rather than failing the read).
    if caller.role == Role::Rider
        && let Some(driver) = trip.driver_id
        && let Ok(rating) = services.trip_ratings.account_rating(driver).await
    {
        body["driver_rating"] = serde_json::to_value(rating).map_err(ApiError::internal)?;
    }
    Ok(Json(body))
}

/// Act on a trip: `accept`, `decline`, `arrive`, `start`, `complete` (its driver) or `cancel`
/// (its rider or driver).
#[utoipa::path(post, path = "/v1/trips/{id}/{action}", tag = "trips", security(("bearer" = [])),
    params(("id" = String, Path, description = "Trip id"),
           ("action" = openapi::TripActionDoc, Path, description = "What to do"),
           ("Idempotency-Key" = Option<String>, Header, description = "Stripe's semantics: a repeat with the same key gets the first answer; kept 24 h")),
    responses(
        (status = 200, description = "The trip after the action", body = openapi::TripDoc),
        (status = 403, description = "A rider calling a driver's action", body = openapi::ErrorBody),
        (status = 404, description = "No such trip of the caller's, or no such action", body = openapi::ErrorBody),
        (status = 409, description = "Not possible in the trip's state (names state and command), or the driver is busy", body = openapi::ErrorBody),
    ))]
pub async fn act(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<TripView>, ApiError> {
    let Path((id, action)) = path.map_err(|e| ApiError::not_found(e.body_text()))?;
    let action: Action = action
        .parse()
        .map_err(|e: String| ApiError::new(ErrorCode::NotFound, e))?;
    let id = trip_id(&id)?;
    let key = idempotency_key(&headers)?;
    Ok(Json(
        services.trips.act_keyed(&caller, id, action, key).await?,
    ))
}

/// The request's `Idempotency-Key`, if any (its rules are checked where the key is kept).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|value| {
            value.to_str().map(str::to_owned).map_err(|_| {
                ApiError::invalid_field(
                    "Idempotency-Key",
                    "Idempotency-Key must be visible ASCII characters",
                )
            })
        })
        .transpose()
}
