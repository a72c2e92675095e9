//! The OpenAPI document of the product API, generated from the handlers' annotations
//! (`GET /openapi.json`), and a human-readable page rendering it (`GET /docs`). The schemas
//! below describe the JSON bodies; the handlers read and write exactly these shapes.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rickshaw product API",
        description = "Accounts, drivers, trip previews and the trip lifecycle. Real-time \
            events: `GET /v1/ws` (WebSocket; token in `Authorization: Bearer` or `?token=`; \
            `?last_event_id=N` replays what a reconnecting client missed). The operations \
            map's data (admins): `GET /v1/admin/city` and, live, the WebSocket \
            `GET /v1/admin/city/live` (docs/API.md). Errors are \
            `{\"error\": {\"code\", \"message\", \"field\"?}}`. Money is in minor units (poisha) of BDT."
    ),
    paths(
        super::accounts::sign_up,
        super::accounts::log_in,
        super::accounts::refresh,
        super::accounts::log_out,
        super::accounts::me,
        super::drivers::set_vehicle,
        super::drivers::set_status,
        super::drivers::locate,
        super::trips::preview,
        super::trips::book,
        super::trips::list,
        super::trips::get,
        super::trips::act,
        super::payments::mine,
        super::payments::confirm,
        super::payments::earnings,
        super::payments::refund,
        super::ratings::rate,
        super::ratings::of_account,
        super::audit_log::query,
    ),
    components(schemas(TripActionDoc)),
    modifiers(&BearerAuth, &CommonResponses),
    tags(
        (name = "accounts", description = "Sign up, log in, tokens"),
        (name = "drivers", description = "A driver's vehicle, availability and position"),
        (name = "trips", description = "Preview, book and run trips"),
        (name = "payments", description = "A rider's payments, a driver's earnings"),
        (name = "admin", description = "For the admin role: the audit log (refunds are under payments)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The answers every operation may give besides its own, documented on each so that every status
/// the API sends is in the spec (schemathesis checks it): a malformed, too large or non-JSON body;
/// a missing or bad token; a path id that names nothing or is not an id; a query that is not
/// valid; a service that cannot answer now.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content_ref("application/json", Ref::from_schema_name("ErrorBody"))
                .build()
        };
        for (path, item) in &mut openapi.paths.paths {
            let has_path_id = path.contains('{');
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let mut common: Vec<(&str, &str)> =
                    vec![("503", "A service cannot answer now (`Retry-After`)")];
                if operation.request_body.is_some() {
                    common.extend([
                        ("400", "The body is not well-formed JSON (or is missing)"),
                        ("413", "The body is larger than the limit"),
                        ("415", "The body is not `application/json`"),
                        (
                            "422",
                            "A field is missing or not valid (named in `error.field`)",
                        ),
                    ]);
                }
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    common.extend([
                        ("401", "No valid access token (`WWW-Authenticate`)"),
                        ("403", "Not with your role"),
                    ]);
                }
                if has_path_id {
                    common.push(("404", "Nothing of yours by that id"));
                }
                if has_path_id || operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    common.push((
                        "422",
                        "A path or query parameter that is not valid (named in `error.field`)",
                    ));
                }
                for (status, description) in common {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
    }
}

pub fn router() -> Router {
    Router::new()
        .route("/openapi.json", get(spec))
        .route("/docs", get(docs))
        .route("/docs/redoc.standalone.js", get(redoc))
        .route("/docs/redoc-logo-mini.svg", get(redoc_logo))
}

async fn spec() -> impl IntoResponse {
    axum::Json(ApiDoc::openapi())
}

/// Redoc 2.5.2 (MIT), vendored from npm and embedded in the binary: the docs page works offline
/// (assets/redoc/README.md says how to update it).
const REDOC: &str = include_str!("../../assets/redoc/redoc.standalone.js");

async fn redoc() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC,
    )
}

/// The footer logo the vendored bundle asks for (an empty image: nothing from a CDN).
async fn redoc_logo() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "image/svg+xml")],
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>"#,
    )
}

/// Redoc, served by this process, rendering `/openapi.json`.
async fn docs() -> Html<&'static str> {
    Html(
        r#"<!doctype html>
<html lang="en">
  <head>
    <title>Rickshaw API</title>
    <meta charset="utf-8"/>
    <meta name="viewport" content="width=device-width, initial-scale=1">
  </head>
  <body>
    <noscript>The API description is at <a href="/openapi.json">/openapi.json</a>.</noscript>
    <redoc spec-url="/openapi.json" hide-loading></redoc>
    <script src="/docs/redoc.standalone.js"></script>
  </body>
</html>"#,
    )
}

// The bodies, as documentation.

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ErrorDetail {
    /// invalid_json, invalid_input, unauthorized, forbidden, not_found, conflict,
    /// payload_too_large, rate_limited, unavailable, internal, bad_request …
    code: String,
    message: String,
    /// The offending field, for invalid_input.
    field: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct SignUpRequest {
    email: String,
    /// 8 to 128 characters.
    password: String,
    name: String,
    /// rider | driver
    role: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct SignUpAccepted {
    email: String,
    message: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct LogInRequest {
    email: String,
    password: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct RefreshRequest {
    refresh_token: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct VehicleRequest {
    /// bike | auto | car | premium
    package: String,
    plate: String,
    model: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct AccountView {
    id: String,
    email: String,
    name: String,
    role: String,
    vehicle: Option<VehicleRequest>,
    /// Milliseconds since the Unix epoch.
    created_at: i64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct TokensView {
    access_token: String,
    /// Bearer
    token_type: String,
    /// Seconds.
    expires_in: u64,
    refresh_token: String,
    refresh_expires_in: u64,
    account: AccountView,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct StatusRequest {
    /// online | offline
    status: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct StatusView {
    driver: String,
    online: bool,
    package: Option<String>,
    at: i64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct LatLngBody {
    /// -90 to 90
    lat: f64,
    /// -180 to 180
    lng: f64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct LocationView {
    driver: String,
    position: LatLngBody,
    at: i64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct PreviewRequest {
    pickup: LatLngBody,
    dropoff: LatLngBody,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct RouteDoc {
    distance_m: u32,
    duration_s: u32,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct FareDoc {
    package: PackageDoc,
    /// Minor units (poisha).
    fare: u64,
    /// BDT
    currency: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct PreviewView {
    /// Book it with `POST /v1/trips` before `expires_at`.
    quote_id: String,
    expires_at: i64,
    pickup: LatLngBody,
    dropoff: LatLngBody,
    route: RouteDoc,
    /// straight_line | osrm
    route_source: String,
    fares: Vec<FareDoc>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct BookRequest {
    quote_id: String,
    package: PackageDoc,
    /// The card to hold the fare on, a test payment method of the provider: `pm_card_visa`
    /// (the default: held), `pm_card_chargeDeclined` (402), `pm_card_authenticationRequired`
    /// (402 with `next_action: confirm`).
    payment_method: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct RateTripRequest {
    /// 1 to 5
    stars: u8,
    /// At most 500 characters.
    comment: Option<String>,
    /// At most 5, each at most 32 characters.
    tags: Option<Vec<String>>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct AccountRatingDoc {
    account_id: String,
    /// Two decimals; null before the first rating.
    average: Option<f64>,
    count: u64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct TripRatingDoc {
    trip_id: String,
    /// rider (rating the driver) | driver (rating the rider)
    rater_role: String,
    rater_id: String,
    ratee_id: String,
    stars: u8,
    comment: Option<String>,
    tags: Vec<String>,
    created_at: i64,
    ratee_rating: AccountRatingDoc,
}

/// Where a trip's payment stands.
#[allow(dead_code)]
#[derive(ToSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatusDoc {
    Authorizing,
    RequiresConfirmation,
    Authorized,
    Captured,
    Voided,
    Expired,
    Declined,
    Failed,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct SignedMoneyDoc {
    /// Minor units (poisha); negative where money went back.
    amount: i64,
    currency: String,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct PaymentDoc {
    trip_id: String,
    status: PaymentStatusDoc,
    /// What was (or still is) held on the card: the fare plus a buffer.
    held: SignedMoneyDoc,
    captured: SignedMoneyDoc,
    refunded: SignedMoneyDoc,
    /// fare | fee
    charged_for: Option<String>,
    created_at: i64,
    updated_at: i64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct RefundRequest {
    /// Minor units (poisha); absent: all that is left of what was captured.
    amount: Option<u64>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct PaymentListDoc {
    payments: Vec<PaymentDoc>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct AuthorizationDoc {
    trip: String,
    held: u64,
    status: PaymentStatusDoc,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct DayEarningsDoc {
    /// YYYY-MM-DD (UTC)
    day: String,
    amount: SignedMoneyDoc,
    trips: u32,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct TripEarningsDoc {
    trip_id: String,
    amount: SignedMoneyDoc,
    at: i64,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct EarningsDoc {
    total: SignedMoneyDoc,
    days: Vec<DayEarningsDoc>,
    trips: Vec<TripEarningsDoc>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct MoneyDoc {
    amount: u64,
    currency: String,
}

/// A trip's state (`domain::trip::TripStatus`, spelled as the API spells it; a test keeps the two
/// equal).
#[allow(dead_code)]
#[derive(ToSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TripStatusDoc {
    Searching,
    Offered,
    DriverAssigned,
    Arrived,
    InProgress,
    Completed,
    Cancelled,
    NoDriversFound,
}

/// A ride package (`domain::Package`; a test keeps the two equal).
#[allow(dead_code)]
#[derive(ToSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageDoc {
    Bike,
    Auto,
    Car,
    Premium,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct TripDoc {
    id: String,
    status: TripStatusDoc,
    /// To its rider, once a driver is assigned (`GET /v1/trips/{id}`, and the
    /// `trip.driver_assigned` notice): the driver's average.
    driver_rating: Option<AccountRatingDoc>,
    rider_id: String,
    driver_id: Option<String>,
    package: PackageDoc,
    pickup: LatLngBody,
    dropoff: LatLngBody,
    route: RouteDoc,
    fare: MoneyDoc,
    requested_at: i64,
    updated_at: i64,
    offer_expires_at: Option<i64>,
    assigned_at: Option<i64>,
    arrived_at: Option<i64>,
    /// rider | driver
    cancelled_by: Option<String>,
    cancellation_fee: Option<MoneyDoc>,
    /// While a driver is assigned or waiting: until when (ms) the rider may cancel free.
    free_cancel_until: Option<i64>,
    /// While a driver is assigned or waiting: what the rider's cancel costs after
    /// `free_cancel_until`.
    late_cancel_fee: Option<MoneyDoc>,
    version: u64,
}

/// An action on a trip (`trip::Action`; a test keeps the two equal).
#[allow(dead_code)]
#[derive(ToSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TripActionDoc {
    Accept,
    Decline,
    Arrive,
    Start,
    Complete,
    Cancel,
}

/// Who did it (`audit::ActorKind`; a test keeps the two equal).
#[allow(dead_code)]
#[derive(ToSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKindDoc {
    Rider,
    Driver,
    Admin,
    System,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct ActorDoc {
    kind: ActorKindDoc,
    /// Absent for the system.
    account_id: Option<String>,
}

/// One recorded domain event.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct AuditEntryDoc {
    event_id: String,
    /// The bus subject it came on, as `trip.notice.v1`.
    subject: String,
    /// What happened: `trip.requested`, `trip.offered`, `trip.driver_assigned`, …,
    /// `payment.authorized`, `payment.captured`, `payment.refunded`, `payment.voided`,
    /// `rating.trip_rated`, `mail.receipt`, `mail.fee`, `mail.refund`, `driver.online`, …
    kind: String,
    /// Milliseconds since the epoch.
    occurred_at: i64,
    actor: ActorDoc,
    trip_id: Option<String>,
    /// Every account the event concerns.
    accounts: Vec<String>,
    /// The event as it was published (its schema is the subject's, docs/ARCHITECTURE.md).
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct AuditPageDoc {
    /// Oldest first.
    entries: Vec<AuditEntryDoc>,
    /// Pass as `after` for the next page; `null` at the end.
    next: Option<String>,
}

#[allow(dead_code)]
#[derive(ToSchema)]
pub struct TripListDoc {
    trips: Vec<TripDoc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let spec = serde_json::to_value(ApiDoc::openapi()).expect("serializes");
        let paths = spec["paths"].as_object().expect("paths");
        for path in [
            "/v1/auth/signup",
            "/v1/auth/login",
            "/v1/auth/refresh",
            "/v1/auth/logout",
            "/v1/me",
            "/v1/drivers/me/vehicle",
            "/v1/drivers/me/status",
            "/v1/drivers/me/location",
            "/v1/trips/preview",
            "/v1/trips",
            "/v1/trips/{id}",
            "/v1/trips/{id}/{action}",
            "/v1/me/payments",
            "/v1/payments/{trip_id}/confirm",
            "/v1/drivers/me/earnings",
            "/v1/admin/payments/{trip_id}/refund",
            "/v1/trips/{id}/rating",
            "/v1/accounts/{id}/rating",
            "/v1/admin/audit",
        ] {
            assert!(paths.contains_key(path), "{path} is missing from the spec");
        }
        assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
        assert!(spec["components"]["schemas"]["TripDoc"].is_object());
    }

    /// The documented enums list exactly the values the API sends and accepts.
    #[test]
    fn documented_states_and_packages_are_the_real_ones() {
        let spec = serde_json::to_value(ApiDoc::openapi()).expect("serializes");
        let values = |schema: &str| -> Vec<String> {
            spec["components"]["schemas"][schema]["enum"]
                .as_array()
                .unwrap_or_else(|| panic!("{schema} is an enum in the spec"))
                .iter()
                .map(|v| v.as_str().expect("a string").to_owned())
                .collect()
        };
        let states: Vec<String> = domain::trip::TripStatus::ALL
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        assert_eq!(values("TripStatusDoc"), states);
        let actors: Vec<String> = [
            audit::ActorKind::Rider,
            audit::ActorKind::Driver,
            audit::ActorKind::Admin,
            audit::ActorKind::System,
        ]
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
        assert_eq!(values("ActorKindDoc"), actors);
        let actions: Vec<String> = trip::Action::ALL
            .iter()
            .map(|a| a.name().to_owned())
            .collect();
        assert_eq!(values("TripActionDoc"), actions);
        let packages: Vec<String> = domain::Package::ALL
            .iter()
            .map(|p| p.name().to_owned())
            .collect();
        assert_eq!(values("PackageDoc"), packages);
        let statuses: Vec<String> = payment::PaymentStatus::ALL
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        assert_eq!(values("PaymentStatusDoc"), statuses);
        assert_eq!(
            spec["components"]["schemas"]["TripDoc"]["properties"]["status"]["$ref"],
            "#/components/schemas/TripStatusDoc"
        );
    }
}
