//! `rickshaw up`: every service in one process, the in-process bus, one SQLite file per
//! stateful service under the data directory.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use communication::Communication;
use matching::MatchingService;
use platform::bus::{InProcessBus, SharedBus};
use platform::http::{Health, ops_router};
use platform::{Config, Shutdown, store, telemetry};
use rating::{RatingService, SqliteRatingStore};
use rider::RiderService;
use supply::SupplyService;
use tokio::net::TcpListener;

/// A built (listening, subscribed) but not yet serving system.
pub struct Embedded {
    config: Config,
    listener: TcpListener,
    app: axum::Router,
    health: Health,
    shutdown: Shutdown,
    rating_db: store::SqlitePool,
}

impl Embedded {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let shutdown = Shutdown::new();
        let bus: SharedBus = Arc::new(InProcessBus::new());

        let rating_path = config.data_dir.join("rating.db");
        let rating_db = store::open_sqlite(&rating_path).await.with_context(|| {
            format!("cannot open the rating database {}", rating_path.display())
        })?;
        let rating_store = Arc::new(SqliteRatingStore::new(rating_db.clone()).await?);
        let (rating, directory) = RatingService::build(rating_store, bus.clone()).await?;
        directory.run(&shutdown);

        MatchingService::build(bus.clone(), config.matching.clone())
            .await?
            .run(&shutdown);

        let communication = Communication::build(bus.clone(), &shutdown).await?;
        let services = gateway::Services {
            rider: Arc::new(RiderService::new(bus.clone())),
            supply: Arc::new(SupplyService::new(bus.clone())),
            rating,
        };
        let health = Health::default();
        let router = gateway::course_router(services)
            .merge(communication.routes())
            .merge(ops_router(health.clone(), telemetry::metrics_handle()));
        let app = communication.serve_socketio(platform::http::finish(router, &config.http));
        communication.run(&shutdown);

        let listener = TcpListener::bind(config.listen).await.with_context(|| {
            format!(
                "cannot listen on {}; is another Rickshaw running? pick another --listen",
                config.listen
            )
        })?;
        Ok(Self {
            config,
            listener,
            app,
            health,
            shutdown,
            rating_db,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// Serves until `stop` resolves, then drains: readiness goes false, the listener stops
    /// accepting, in-flight requests finish, consumers stop, the database is closed.
    pub async fn run(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            config,
            listener,
            app,
            health,
            shutdown,
            rating_db,
        } = self;
        let server = shutdown.spawn(platform::http::serve(listener, app, shutdown.token()));
        health.set_ready(true);
        tokio::select! {
            () = stop => {}
            () = shutdown.triggered() => {}
        }
        health.set_ready(false);
        let grace = Duration::from_millis(config.shutdown.grace_ms);
        let clean = shutdown.complete(grace).await;
        if clean {
            if let Ok(Err(e)) = server.await {
                tracing::error!(error = %e, "the HTTP server failed");
            }
        } else {
            tracing::warn!(
                grace_ms = config.shutdown.grace_ms,
                "some tasks did not finish within the grace period"
            );
            server.abort();
        }
        rating_db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}
