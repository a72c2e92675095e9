//! The pricing service owns trip previews: a route estimate (a configured OSRM-compatible router,
//! else the great-circle distance × a detour factor), a fare per ride package (computed by
//! `domain::pricing`, never here) and a **quote**: the preview signed with the platform's key, so
//! any trip instance can check a booked quote without a shared quote table. It never books trips.
//!
//! A quote is bound to the rider who asked for it and expires after `pricing.quote_ttl_s`.

pub mod config;
pub mod module;
pub mod quote;
pub mod remote;
pub mod routing;

use async_trait::async_trait;
use domain::fare::{Tariff, product_fare};
use domain::pricing::{Package, RouteEstimate};
use domain::{AccountId, LatLng, Role, Timestamp};
use platform::auth::Caller;
use platform::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

pub use config::PricingConfig;
pub use module::Module;
pub use quote::{Quote, QuoteBook, QuoteError};
pub use remote::RemotePricing;
pub use routing::{Router, RoutingError};

/// The price of one package over the previewed route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageFare {
    pub package: Package,
    /// Minor units (poisha).
    pub fare: u64,
    pub currency: String,
}

/// What `POST /v1/trips/preview` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preview {
    pub quote_id: String,
    pub expires_at: Timestamp,
    pub pickup: LatLng,
    pub dropoff: LatLng,
    pub route: RouteEstimate,
    /// `straight_line` or `osrm`.
    pub route_source: String,
    pub fares: Vec<PackageFare>,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PricingError {
    #[error("pickup and drop-off are the same place; move one of them")]
    SamePlace,
    #[error("the trip is {0} m long; the longest trip quoted is 200 km")]
    TooLong(u32),
    #[error("only riders preview trips")]
    Forbidden,
    #[error("cannot sign the quote: {0}")]
    Signing(String),
    /// What a remote pricing service answered that none of the above is: an unauthenticated
    /// call, an unreachable service, …; kept as it came.
    #[error("{}", .0.message)]
    Remote(ApiError),
}

impl From<PricingError> for ApiError {
    fn from(e: PricingError) -> Self {
        match e {
            PricingError::SamePlace => ApiError::invalid_field("dropoff", e.to_string()),
            PricingError::TooLong(_) => ApiError::invalid_field("dropoff", e.to_string()),
            PricingError::Forbidden => ApiError::new(ErrorCode::Forbidden, e.to_string()),
            PricingError::Signing(_) => ApiError::new(ErrorCode::Internal, e.to_string()),
            PricingError::Remote(e) => e,
        }
    }
}

impl From<ApiError> for PricingError {
    fn from(e: ApiError) -> Self {
        Self::Remote(e)
    }
}

/// How the gateway reaches the pricing service.
#[async_trait]
pub trait PricingApi: Send + Sync + 'static {
    /// Riders only: the quote is bound to the caller.
    async fn preview(
        &self,
        caller: &Caller,
        pickup: LatLng,
        dropoff: LatLng,
    ) -> Result<Preview, PricingError>;
}

/// The longest trip quoted.
pub const MAX_TRIP_M: u32 = 200_000;

pub struct PricingService {
    router: Router,
    quotes: QuoteBook,
    quote_ttl_ms: u64,
}

impl PricingService {
    pub fn new(router: Router, quotes: QuoteBook, quote_ttl_s: u64) -> Self {
        Self {
            router,
            quotes,
            quote_ttl_ms: quote_ttl_s.saturating_mul(1_000),
        }
    }

    /// The preview at `now` (separate from the trait for tests).
    pub async fn preview_at(
        &self,
        rider: AccountId,
        pickup: LatLng,
        dropoff: LatLng,
        now: Timestamp,
    ) -> Result<Preview, PricingError> {
        if pickup.distance_m(&dropoff) < 1.0 {
            return Err(PricingError::SamePlace);
        }
        let (route, route_source) = self.router.route(&pickup, &dropoff).await;
        if route.distance_m > MAX_TRIP_M {
            return Err(PricingError::TooLong(route.distance_m));
        }
        let fares: Vec<PackageFare> = Package::ALL
            .into_iter()
            .map(|package| PackageFare {
                package,
                fare: product_fare(&Tariff::default_for(package), &route),
                currency: domain::fare::CURRENCY.to_owned(),
            })
            .collect();
        let expires_at = now.plus_millis(i64::try_from(self.quote_ttl_ms).unwrap_or(i64::MAX));
        let quote = Quote {
            id: uuid::Uuid::now_v7(),
            rider,
            pickup,
            dropoff,
            route,
            fares: fares.iter().map(|f| (f.package, f.fare)).collect(),
            expires_at,
        };
        let quote_id = self
            .quotes
            .sign(&quote)
            .map_err(|e| PricingError::Signing(e.to_string()))?;
        metrics::counter!("pricing_previews_total", "route_source" => route_source).increment(1);
        Ok(Preview {
            quote_id,
            expires_at,
            pickup,
            dropoff,
            route,
            route_source: route_source.to_owned(),
            fares,
        })
    }
}

#[async_trait]
impl PricingApi for PricingService {
    #[tracing::instrument(skip_all)]
    async fn preview(
        &self,
        caller: &Caller,
        pickup: LatLng,
        dropoff: LatLng,
    ) -> Result<Preview, PricingError> {
        if caller.role != Role::Rider {
            return Err(PricingError::Forbidden);
        }
        self.preview_at(caller.account, pickup, dropoff, platform::clock::now())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lng: f64) -> LatLng {
        LatLng::new(lat, lng).expect("valid")
    }

    fn service() -> PricingService {
        PricingService::new(
            Router::straight_line(Default::default()),
            QuoteBook::new(b"0123456789abcdef0123456789abcdef"),
            300,
        )
    }

    #[tokio::test]
    async fn a_preview_prices_every_package_and_its_quote_verifies() {
        let rider = AccountId::from_uuid(uuid::Uuid::from_u128(7));
        let now = Timestamp::from_millis(1_700_000_000_000);
        let (a, b) = (at(23.7806, 90.4074), at(23.7509, 90.3935));
        let preview = service()
            .preview_at(rider, a, b, now)
            .await
            .expect("priced");
        assert_eq!(preview.fares.len(), 4);
        assert_eq!(preview.route_source, "straight_line");
        assert_eq!(preview.expires_at, now.plus_millis(300_000));
        let quote = service()
            .quotes
            .verify(&preview.quote_id, now)
            .expect("verifies");
        assert_eq!(quote.rider, rider);
        assert_eq!(quote.route, preview.route);
        let car = preview
            .fares
            .iter()
            .find(|f| f.package == Package::Car)
            .expect("car");
        assert_eq!(quote.fare(Package::Car), Some(car.fare));
        assert_eq!(
            car.fare,
            product_fare(&Tariff::default_for(Package::Car), &preview.route)
        );
    }

    #[tokio::test]
    async fn the_same_place_and_a_too_long_trip_are_refused() {
        let rider = AccountId::from_uuid(uuid::Uuid::from_u128(7));
        let now = Timestamp::from_millis(0);
        let a = at(23.78, 90.40);
        let same = service().preview_at(rider, a, a, now).await;
        assert!(matches!(same, Err(PricingError::SamePlace)));
        let far = service().preview_at(rider, a, at(22.33, 91.83), now).await;
        assert!(matches!(far, Err(PricingError::TooLong(_))));
    }
}
