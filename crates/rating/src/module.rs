//! The rating service on the composition path: its store on the mode's database, the driver
//! directory (a task), `Arc<dyn RatingApi>` for the gateway; in the distributed mode it also
//! answers `rpc.rating.*`, and elsewhere the gateway calls it there.

use std::sync::Arc;

use async_trait::async_trait;
use platform::outbox::RelayPace;
use platform::service::{Deps, ServiceModule, Started};

use crate::{PgRatingStore, RatingApi, RatingService, RatingStore, SqliteRatingStore, remote};

pub struct Module;

#[async_trait]
impl ServiceModule for Module {
    fn name(&self) -> &'static str {
        "rating"
    }

    async fn start(&self, deps: &Deps) -> anyhow::Result<Started> {
        let mut started = Started::default();
        let store = deps
            .open_store(
                &mut started,
                "rating.db",
                async |pool| {
                    Ok(Arc::new(SqliteRatingStore::new(pool).await?) as Arc<dyn RatingStore>)
                },
                async |url, max_connections| {
                    let store = PgRatingStore::connect(url, max_connections).await?;
                    store.migrate().await?;
                    let pool = store.pool().clone();
                    Ok((Arc::new(store) as Arc<dyn RatingStore>, pool))
                },
            )
            .await?;
        let (rating, directory) = RatingService::build(store, deps.bus.clone()).await?;
        started = started
            .task(move |shutdown| directory.run(shutdown))
            .task(rating.outbox().clone().relay(RelayPace::default()));
        if let Some(nats) = deps.nats() {
            remote::serve(rating.clone(), nats.clone(), &deps.shutdown).await?;
        }
        deps.provide::<Arc<dyn RatingApi>>(rating);
        Ok(started)
    }

    fn remote(&self, deps: &Deps) -> anyhow::Result<()> {
        let rpc = deps
            .rpc()
            .ok_or_else(|| anyhow::anyhow!("the rating service is remote only over NATS"))?;
        deps.provide::<Arc<dyn RatingApi>>(Arc::new(remote::RemoteRating::new(rpc)));
        Ok(())
    }

    async fn migrate(&self, database_url: &str) -> anyhow::Result<()> {
        let store = PgRatingStore::connect(database_url, 1).await?;
        store.migrate().await?;
        store.pool().close().await;
        Ok(())
    }
}
