//! The gateway owns the public HTTP edge of the course protocol: it validates every body, turns
//! it into a domain command and calls the owning service through that service's client trait
//! (`RiderApi`, `SupplyApi`, `RatingApi`), so in the distributed mode the same handlers call
//! remote services. It holds no state and no business rules beyond input validation.

pub mod config;
pub mod module;
pub mod payload;
pub mod product;

pub use config::GatewayConfig;
pub use module::Module;
pub use product::auth_limits::AuthLimits;
pub use product::{ProductServices, product_router};

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use domain::{CarNumber, PersonName, Point};
use platform::ApiError;
use platform::http::JsonBody;
use rating::{DriverRating, DriverRef, RatingApi, RatingError};
use rider::RiderApi;
use serde::Serialize;
use serde_json::{Value, json};
use supply::SupplyApi;

/// The services the gateway routes to.
#[derive(Clone)]
pub struct Services {
    pub rider: Arc<dyn RiderApi>,
    pub supply: Arc<dyn SupplyApi>,
    pub rating: Arc<dyn RatingApi>,
}

/// The course protocol: `POST /rider`, `POST /driver`, `POST /rating`, `GET /ratings/{driver}`.
pub fn course_router(services: Services) -> Router {
    // The course's clients call these under `/api/` too (a common prefix in the class's code).
    let routes = Router::new()
        .route("/rider", post(post_rider))
        .route("/driver", post(post_driver))
        .route("/rating", post(post_rating))
        .route("/ratings/{driver}", get(get_rating));
    Router::new()
        .merge(routes.clone())
        .nest("/api", routes)
        .with_state(services)
}

fn point(p: Point) -> Value {
    json!({"x": p.x(), "y": p.y()})
}

type Reply = Result<(StatusCode, axum::Json<Value>), ApiError>;

async fn post_rider(State(services): State<Services>, JsonBody(body): JsonBody<Value>) -> Reply {
    let draft = payload::parse_rider(&body)?;
    let request = services.rider.request_ride(draft).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "ride_id": request.id,
            "status": "waiting",
            "rider": request.rider,
            "position": point(request.position),
            "destination": point(request.destination),
            "requested_at": request.requested_at,
        })),
    ))
}

async fn post_driver(State(services): State<Services>, JsonBody(body): JsonBody<Value>) -> Reply {
    let driver = payload::parse_driver(&body)?;
    let report = services
        .supply
        .report_driver(driver.name, driver.car_number, driver.position)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({
            "status": "available",
            "driver": report.driver,
            "car_number": report.car_number,
            "position": point(report.position),
            "reported_at": report.reported_at,
        })),
    ))
}

#[derive(Serialize)]
struct RatingView {
    driver: PersonName,
    car_number: CarNumber,
    count: u64,
    average: Option<f64>,
}

impl From<DriverRating> for RatingView {
    fn from(r: DriverRating) -> Self {
        Self {
            driver: r.driver.name,
            car_number: r.driver.car_number,
            count: r.summary.count,
            average: r.summary.average,
        }
    }
}

async fn post_rating(State(services): State<Services>, JsonBody(body): JsonBody<Value>) -> Reply {
    let rating = payload::parse_rating(&body)?;
    let stars = rating.stars.get();
    let rated = services.rating.rate(rating.driver, rating.stars).await?;
    let mut view = serde_json::to_value(RatingView::from(rated)).map_err(ApiError::internal)?;
    view["rating"] = json!(stars);
    Ok((StatusCode::CREATED, axum::Json(view)))
}

async fn get_rating(
    State(services): State<Services>,
    driver: Result<Path<String>, PathRejection>,
) -> Reply {
    let Ok(Path(driver)) = driver else {
        return Err(ApiError::not_found(
            "the driver in the path is not valid UTF-8; no such driver",
        ));
    };
    let not_found = || ApiError::not_found(format!("no driver or car {driver:?} is known"));
    // The path names a driver, or else a car.
    let by_name = match PersonName::parse(&driver) {
        Ok(name) => match services.rating.driver_rating(DriverRef::Name(name)).await {
            Ok(found) => Some(found),
            Err(RatingError::UnknownDriver(_)) => None,
            Err(e) => return Err(e.into()),
        },
        Err(_) => None,
    };
    let found = match by_name {
        Some(found) => found,
        None => {
            let car = CarNumber::parse(&driver).map_err(|_| not_found())?;
            match services.rating.driver_rating(DriverRef::Car(car)).await {
                Ok(found) => found,
                Err(RatingError::UnknownDriver(_)) => return Err(not_found()),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let view = serde_json::to_value(RatingView::from(found)).map_err(ApiError::internal)?;
    Ok((StatusCode::OK, axum::Json(view)))
}
