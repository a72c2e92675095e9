//! `/v1/drivers/me/*`: a driver's vehicle, availability and position.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::events::{DriverLocated, DriverStatusChanged};
use domain::{Role, Vehicle};
use identity::Account;
use platform::http::JsonBody;
use platform::{ApiError, ErrorCode};
use serde_json::Value;

use super::{Authenticated, ProductServices, body, openapi, require};

/// Set the caller's vehicle (drivers only).
#[utoipa::path(put, path = "/v1/drivers/me/vehicle", tag = "drivers", security(("bearer" = [])),
    request_body = openapi::VehicleRequest,
    responses(
        (status = 200, description = "The account with its vehicle", body = openapi::AccountView),
        (status = 403, description = "Not a driver", body = openapi::ErrorBody),
        (status = 422, description = "A field is invalid", body = openapi::ErrorBody),
    ))]
pub async fn set_vehicle(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Account>, ApiError> {
    require(&caller, Role::Driver, "have vehicles")?;
    let package = body::package(&body, "package")?;
    let vehicle = Vehicle::new(
        package,
        body::string(&body, "plate")?,
        body::string(&body, "model")?,
    )
    .map_err(|(field, message)| ApiError::invalid_field(field, message))?;
    Ok(Json(services.identity.set_vehicle(&caller, vehicle).await?))
}

/// Go online (offered trips of the vehicle's package) or offline.
#[utoipa::path(post, path = "/v1/drivers/me/status", tag = "drivers", security(("bearer" = [])),
    request_body = openapi::StatusRequest,
    responses(
        (status = 200, description = "The new status", body = openapi::StatusView),
        (status = 403, description = "Not a driver", body = openapi::ErrorBody),
        (status = 409, description = "Going online without a vehicle", body = openapi::ErrorBody),
    ))]
pub async fn set_status(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<DriverStatusChanged>, ApiError> {
    require(&caller, Role::Driver, "go online")?;
    let package = match body::string(&body, "status")? {
        "online" => {
            let account = services.identity.account(&caller).await?;
            let vehicle = account.vehicle.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Conflict,
                    "set your vehicle first: PUT /v1/drivers/me/vehicle",
                )
            })?;
            Some(vehicle.package)
        }
        "offline" => None,
        other => {
            return Err(ApiError::invalid_field(
                "status",
                format!("unknown status {other:?}; expected \"online\" or \"offline\""),
            ));
        }
    };
    Ok(Json(
        services.supply.set_status(caller.account, package).await?,
    ))
}

/// Report the caller's position (also possible over the WebSocket).
#[utoipa::path(post, path = "/v1/drivers/me/location", tag = "drivers", security(("bearer" = [])),
    request_body = openapi::LatLngBody,
    responses(
        (status = 202, description = "Accepted", body = openapi::LocationView),
        (status = 403, description = "Not a driver", body = openapi::ErrorBody),
        (status = 422, description = "Out-of-range coordinates (the field is named)", body = openapi::ErrorBody),
    ))]
pub async fn locate(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<DriverLocated>), ApiError> {
    require(&caller, Role::Driver, "report positions")?;
    let position = body::lat_lng(&body, "")?;
    let located = services.supply.locate(caller.account, position).await?;
    Ok((StatusCode::ACCEPTED, Json(located)))
}
