//! The rating service owns driver ratings: it stores each rating durably before answering, keeps
//! count and average per driver, and knows which drivers exist from supply's `DriverAvailable`
//! events (only a known driver can be rated). It never reads another service's tables.

pub mod module;
pub mod remote;
pub mod trips;

pub use module::Module;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use domain::events::{DriverAvailable, DriverRated, Event};
use domain::rating::{RatingSummary, Stars};
use domain::{CarNumber, PersonName};
use platform::bus::{self, BusError, Envelope, Handled, SharedBus, SubscribeOptions, Subscription};
use platform::outbox::Outbox;
use platform::{Shutdown, clock};

pub use store::{
    DriverRef, KnownDriver, PgRatingStore, RatingStore, SqliteRatingStore, StoreError,
};
pub use trips::{
    AccountRating, RateTrip, TripRated, TripRating, TripRatingApi, TripRatingError,
    TripRatingService, TripRatingStore,
};

#[derive(Clone, Debug, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatingError {
    #[error("no {0} is known; a driver becomes known by posting to /driver")]
    UnknownDriver(DriverRef),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RatingError> for platform::ApiError {
    fn from(e: RatingError) -> Self {
        match e {
            RatingError::UnknownDriver(_) => platform::ApiError::not_found(e.to_string()),
            RatingError::Store(e) => platform::ApiError::unavailable(e),
        }
    }
}

/// What a remote caller makes of an error that is not the rating service's own (it could not be
/// reached): a store failure, answered 503.
impl From<platform::ApiError> for RatingError {
    fn from(e: platform::ApiError) -> Self {
        Self::Store(StoreError(e.message))
    }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DriverRating {
    pub driver: KnownDriver,
    pub summary: RatingSummary,
}

/// How the gateway (or any other caller) reaches the rating service.
#[async_trait]
pub trait RatingApi: Send + Sync + 'static {
    /// Stores a rating; returns once it is durable, with the driver's updated summary.
    async fn rate(&self, driver: DriverRef, stars: Stars) -> Result<DriverRating, RatingError>;
    async fn driver_rating(&self, driver: DriverRef) -> Result<DriverRating, RatingError>;
}

pub struct RatingService {
    store: Arc<dyn RatingStore>,
    /// Where the `DriverRated` announcements go: written with the rating, published after the
    /// commit, relayed again if that publish is lost.
    outbox: Outbox,
}

/// Keeps the store's driver directory in step with supply's reports.
pub struct DriverDirectory {
    store: Arc<dyn RatingStore>,
    subscription: Subscription,
}

impl RatingService {
    /// The API, and the directory consumer to `run`; subscribed before returning.
    pub async fn build(
        store: Arc<dyn RatingStore>,
        bus: SharedBus,
    ) -> Result<(Arc<Self>, DriverDirectory), BusError> {
        let subscription = bus
            .subscribe(SubscribeOptions::durable(
                DriverAvailable::SUBJECT,
                "rating-drivers",
            ))
            .await?;
        let service = Arc::new(Self {
            outbox: Outbox::new("rating", bus, store.outbox()),
            store: store.clone(),
        });
        Ok((
            service,
            DriverDirectory {
                store,
                subscription,
            },
        ))
    }

    /// The outbox of the announcements; run its relay (`Outbox::relay`) wherever the service runs.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    async fn known(&self, driver: &DriverRef) -> Result<KnownDriver, RatingError> {
        self.store
            .find_driver(driver)
            .await?
            .ok_or_else(|| RatingError::UnknownDriver(driver.clone()))
    }
}

#[async_trait]
impl RatingApi for RatingService {
    #[tracing::instrument(skip(self), fields(%driver, stars = stars.get()))]
    async fn rate(&self, driver: DriverRef, stars: Stars) -> Result<DriverRating, RatingError> {
        let known = self.known(&driver).await?;
        let rated_at = clock::now();
        let event = DriverRated {
            driver: known.name.clone(),
            car_number: known.car_number.clone(),
            stars,
            rated_at,
        };
        let announcement = Envelope::from_event(&event, clock::new_id(), rated_at)
            .map_err(|e| RatingError::Store(StoreError(e.to_string())))?;
        let (summary, pending) = self
            .store
            .add_rating(
                uuid::Uuid::now_v7(),
                &known.name,
                stars,
                rated_at,
                &announcement,
            )
            .await?;
        metrics::counter!("ratings_stored_total").increment(1);
        // The rating and its announcement are durable together; a publish that fails now is
        // relayed later, and never fails the request.
        self.outbox.publish_committed(vec![pending]).await;
        Ok(DriverRating {
            driver: known,
            summary,
        })
    }

    async fn driver_rating(&self, driver: DriverRef) -> Result<DriverRating, RatingError> {
        let known = self.known(&driver).await?;
        let summary = self.store.summary(&known.name).await?;
        Ok(DriverRating {
            driver: known,
            summary,
        })
    }
}

/// Most driver reports written to the directory in one transaction.
const DIRECTORY_BATCH: usize = 256;

/// Reports already reflected in the store; beyond this many entries the cache starts afresh.
const DIRECTORY_CACHE_LIMIT: usize = 100_000;

/// What this consumer last wrote: each driver's car and each car's driver. A report that matches
/// both needs no write (the store would change nothing a reader can see).
#[derive(Default)]
struct DirectoryCache {
    car_of: HashMap<PersonName, CarNumber>,
    driver_of: HashMap<CarNumber, PersonName>,
}

impl DirectoryCache {
    fn is_current(&self, driver: &PersonName, car: &CarNumber) -> bool {
        self.car_of.get(driver) == Some(car) && self.driver_of.get(car) == Some(driver)
    }

    fn record(&mut self, driver: PersonName, car: CarNumber) {
        if self.car_of.len() >= DIRECTORY_CACHE_LIMIT {
            self.car_of.clear();
            self.driver_of.clear();
        }
        self.car_of.insert(driver.clone(), car.clone());
        self.driver_of.insert(car, driver);
    }
}

impl DriverDirectory {
    pub fn run(self, shutdown: &Shutdown) {
        let Self {
            store,
            subscription,
        } = self;
        let cache: Arc<Mutex<DirectoryCache>> = Arc::default();
        // Thousands of drivers reporting for the first time a second are one transaction per
        // batch, not one each: the directory keeps up, and the bus never refuses their reports
        // because it fell behind.
        shutdown.spawn(bus::consume_batches(
            subscription,
            shutdown.token(),
            "rating.drivers",
            DIRECTORY_BATCH,
            move |envelopes| {
                let store = store.clone();
                let cache = cache.clone();
                async move {
                    let new: Vec<(PersonName, CarNumber, domain::Timestamp)> = {
                        let cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
                        bus::decode_all::<DriverAvailable>(&envelopes, "rating.drivers")
                            .into_iter()
                            .map(|event| event.report)
                            .filter(|report| !cache.is_current(&report.driver, &report.car_number))
                            .map(|report| (report.driver, report.car_number, report.reported_at))
                            .collect()
                    };
                    if new.is_empty() {
                        return Handled::Done;
                    }
                    match store.remember_drivers(&new).await {
                        Ok(()) => {
                            let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
                            for (driver, car, _) in new {
                                cache.record(driver, car);
                            }
                            Handled::Done
                        }
                        Err(e) => Handled::Retry(e.to_string()),
                    }
                }
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use domain::{DriverReport, Point};
    use platform::bus::InProcessBus;

    use super::*;

    #[tokio::test]
    async fn drivers_reported_on_the_bus_can_be_rated_and_others_cannot() {
        let bus: SharedBus = Arc::new(InProcessBus::new());
        let pool = platform::store::open_sqlite_in_memory()
            .await
            .expect("sqlite");
        let store = Arc::new(SqliteRatingStore::new(pool).await.expect("migrates"));
        let shutdown = Shutdown::new();
        let (service, directory) = RatingService::build(store, bus.clone())
            .await
            .expect("builds");
        directory.run(&shutdown);

        let karim = PersonName::parse("Karim").expect("valid");
        let unknown = service
            .rate(
                DriverRef::Name(karim.clone()),
                Stars::new(5).expect("valid"),
            )
            .await;
        assert!(matches!(unknown, Err(RatingError::UnknownDriver(_))));

        let report = DriverReport {
            driver: karim.clone(),
            car_number: CarNumber::parse("DHA-7").expect("valid"),
            position: Point::new(0.0, 0.0).expect("valid"),
            reported_at: clock::now(),
        };
        bus::publish_event(bus.as_ref(), &DriverAvailable { report })
            .await
            .expect("publish");
        let by_car = DriverRef::Car(CarNumber::parse("DHA-7").expect("valid"));
        let mut rated = None;
        for _ in 0..100 {
            match service
                .rate(by_car.clone(), Stars::new(4).expect("valid"))
                .await
            {
                Ok(r) => {
                    rated = Some(r);
                    break;
                }
                Err(RatingError::UnknownDriver(_)) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(e) => panic!("unexpected {e}"),
            }
        }
        let rated = rated.expect("the driver becomes known");
        assert_eq!(rated.driver.name, karim);
        assert_eq!((rated.summary.count, rated.summary.average), (1, Some(4.0)));
        assert!(shutdown.complete(Duration::from_secs(5)).await);
    }
}
