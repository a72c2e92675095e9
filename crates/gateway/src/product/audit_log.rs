//! The audit log as admins read it: every domain event, filtered, in the order it happened.

use std::collections::BTreeMap;

use audit::{AuditPage, AuditQuery};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use domain::Role;
use platform::ApiError;

use super::{Authenticated, ProductServices, openapi, require};

/// What happened, who did it, when, to which trip and accounts (admins only), oldest first, a
/// page at a time: pass a page's `next` as `after` to read on.
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("bearer" = [])),
    params(
        ("account" = Option<String>, Query, description = "Only events concerning this account"),
        ("trip" = Option<String>, Query, description = "Only this trip's events (its whole history, in order)"),
        ("kind" = Option<String>, Query, description = "A kind (`trip.offered`) or a family (`payment`)"),
        ("since" = Option<String>, Query, description = "From this time (inclusive): RFC 3339 or milliseconds since the epoch"),
        ("until" = Option<String>, Query, description = "Before this time (exclusive)"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page"),
        ("limit" = Option<u32>, Query, description = "1 to 500, default 100"),
    ),
    responses(
        (status = 200, description = "A page of the log", body = openapi::AuditPageDoc),
        (status = 403, description = "Not an admin", body = openapi::ErrorBody),
        (status = 422, description = "A parameter that is not valid (named in `field`)", body = openapi::ErrorBody),
    ))]
pub async fn query(
    State(services): State<ProductServices>,
    Authenticated(caller): Authenticated,
    params: Result<Query<BTreeMap<String, String>>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    require(&caller, Role::Admin, "read the audit log")?;
    let Query(params) = params.map_err(|e| ApiError::invalid_field("query", e.body_text()))?;
    let query = AuditQuery::from_params(&params)?;
    Ok(Json(services.audit.query(&caller, query).await?))
}
