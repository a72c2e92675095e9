//! The rating service on the composition path: its store on the mode's database, the driver
//! directory (a task), `Arc<dyn RatingApi>` (course) and `Arc<dyn TripRatingApi>` (product trips)
//! for the gateway; in the distributed mode it also
//! answers `rpc.rating.*`, and elsewhere the gateway calls it there.

use std::sync::Arc;

use async_trait::async_trait;
use platform::outbox::RelayPace;
use platform::service::{Deps, ServiceModule, Started};

use crate::{
    PgRatingStore, RatingApi, RatingService, RatingStore, SqliteRatingStore, TripRatingApi,
    TripRatingService, TripRatingStore, remote,
};

pub struct Module;

#[async_trait]
impl ServiceModule for Module {
    fn bus_contract(&self) -> platform::service::BusContract {
        platform::service::BusContract {
            publishes: &["rating.>"],
            calls: &["trip"],
            serves: true,
            leases: false,
        }
    }

    fn name(&self) -> &'static str {
        "rating"
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let mut started = Started::default();
        let (store, trip_ratings) = deps
            .open_store(
                &mut started,
                "rating.db",
                async |pool| {
                    let store = SqliteRatingStore::new(pool).await?;
                    let trips =
                        TripRatingStore::Sqlite(store.pool().clone(), store.writes().clone());
                    Ok((Arc::new(store) as Arc<dyn RatingStore>, trips))
                },
                async |url, max_connections| {
                    let store = PgRatingStore::connect(url, max_connections).await?;
                    store.migrate().await?;
                    let pool = store.pool().clone();
                    let trips = TripRatingStore::Postgres(pool.clone());
                    Ok(((Arc::new(store) as Arc<dyn RatingStore>, trips), pool))
                },
            )
            .await?;
        let (rating, directory) = RatingService::build(store, deps.bus.clone()).await?;
        let trip_ratings: Arc<dyn TripRatingApi> = Arc::new(TripRatingService::new(
            trip_ratings,
            deps.get::<Arc<dyn trip::TripApi>>()?,
            rating.outbox().clone(),
        ));
        started = started
            .task(move |shutdown| directory.run(shutdown))
            .task(rating.outbox().clone().relay(RelayPace::default()));
        if let Some(nats) = deps.nats() {
            remote::serve(rating.clone(), nats.clone(), &deps.shutdown).await?;
            remote::serve_trip_ratings(
                trip_ratings.clone(),
                identity::verifier(deps)?,
                nats.clone(),
                &deps.shutdown,
            )
            .await?;
        }
        deps.provide::<Arc<dyn RatingApi>>(rating);
        deps.provide(trip_ratings);
        Ok(started)
    }

    fn remote(&self, deps: &Deps) -> anyhow::Result<()> {
        let rpc = deps
            .rpc()
            .ok_or_else(|| anyhow::anyhow!("the rating service is remote only over NATS"))?;
        deps.provide::<Arc<dyn RatingApi>>(Arc::new(remote::RemoteRating::new(rpc.clone())));
        deps.provide::<Arc<dyn TripRatingApi>>(Arc::new(remote::RemoteTripRatings::new(rpc)));
        Ok(())
    }

    async fn migrate(&self, database_url: &str) -> anyhow::Result<()> {
        let store = PgRatingStore::connect(database_url, 1).await?;
        store.migrate().await?;
        store.pool().close().await;
        Ok(())
    }
}
