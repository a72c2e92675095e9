//! Composition: which services run in this process, on which adapters.
//!
//! - `System::embedded` (`rickshaw up`): every service, the in-process bus, SQLite files under the
//!   data directory, the gateway calling services directly.
//! - `System::distributed` (`rickshaw serve --services …`): the named services, the NATS JetStream
//!   bus, PostgreSQL, and the gateway calling services over NATS request/reply.
//!
//! Every process serves `/healthz`, `/readyz` and `/metrics` on `listen`; the gateway adds the
//! course API, communication adds `/communication` and `/socket.io/`.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use communication::{Communication, Realtime, RealtimeDeps};
use domain::pricing::StraightLineRouting;
use gateway::ProductServices;
use identity::{IdentityService, PgAccountStore, SigningKey, SqliteAccountStore, TokenVerifier};
use matching::{AllShards, KvLeases, LeaseConfig, MatchingService};
use platform::bus::{InProcessBus, NatsBus, NatsBusConfig, SharedBus};
use platform::http::{Health, ops_router};
use platform::rpc::RpcClient;
use platform::{Config, Shutdown, store, telemetry};
use pricing::{PricingService, QuoteBook, Router};
use rating::{PgRatingStore, RatingService, SqliteRatingStore};
use rider::RiderService;
use supply::SupplyApi;
use supply::SupplyService;
use tokio::net::TcpListener;
use tonic::service::{Routes, RoutesBuilder};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use trip::{Dispatcher, PgTripStore, SqliteTripStore, TripApi, TripService, TripStore};

/// The services one process can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    Gateway,
    Rider,
    Supply,
    Matching,
    Rating,
    Communication,
    Identity,
    Pricing,
    Trip,
}

impl Service {
    pub const ALL: [Service; 9] = [
        Service::Gateway,
        Service::Rider,
        Service::Supply,
        Service::Matching,
        Service::Rating,
        Service::Communication,
        Service::Identity,
        Service::Pricing,
        Service::Trip,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Rider => "rider",
            Self::Supply => "supply",
            Self::Matching => "matching",
            Self::Rating => "rating",
            Self::Communication => "communication",
            Self::Identity => "identity",
            Self::Pricing => "pricing",
            Self::Trip => "trip",
        }
    }
}

/// A non-empty set of services, parsed from `gateway,rider,…` or `all`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Services(BTreeSet<Service>);

impl Services {
    pub fn all() -> Self {
        Self(Service::ALL.into_iter().collect())
    }

    pub fn contains(&self, service: Service) -> bool {
        self.0.contains(&service)
    }
}

impl FromStr for Services {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "all" {
            return Ok(Self::all());
        }
        let mut set = BTreeSet::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let service = Service::ALL
                .into_iter()
                .find(|svc| svc.name() == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = Service::ALL.iter().map(|s| s.name()).collect();
                    format!(
                        "unknown service {name:?}; expected some of {} or \"all\"",
                        known.join(", ")
                    )
                })?;
            set.insert(service);
        }
        if set.is_empty() {
            return Err("name at least one service".to_owned());
        }
        Ok(Self(set))
    }
}

impl fmt::Display for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|s| s.name()).collect();
        f.write_str(&names.join(","))
    }
}

/// Connections closed last, after every task has stopped.
enum Pool {
    Sqlite(store::SqlitePool),
    Postgres(store::PgPool),
}

/// A built (listening, subscribed) but not yet serving process.
pub struct System {
    config: Config,
    listener: TcpListener,
    app: axum::Router,
    /// The gRPC listener and services of identity, pricing and trip (distributed mode).
    grpc: Option<(TcpListener, Routes)>,
    health: Health,
    shutdown: Shutdown,
    pools: Vec<Pool>,
}

/// A channel balanced over a service's instances, connecting lazily (an instance that is down
/// now is used once it is up).
fn balanced(endpoints: &[String], timeout: Duration) -> anyhow::Result<Channel> {
    let endpoints = endpoints
        .iter()
        .map(|url| {
            Endpoint::from_shared(url.clone())
                .map(|e| e.timeout(timeout).connect_timeout(Duration::from_secs(2)))
                .with_context(|| format!("invalid gRPC endpoint {url:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Channel::balance_list(endpoints.into_iter()))
}

/// Where the gateway's calls go and what the HTTP edge serves.
struct Edge {
    gateway: Option<gateway::Services>,
    product: Option<ProductServices>,
    communication: Option<Communication>,
    realtime: Option<Realtime>,
}

async fn open_sqlite(config: &Config, file: &str) -> anyhow::Result<store::SqlitePool> {
    let path = config.data_dir.join(file);
    store::open_sqlite(&path)
        .await
        .with_context(|| format!("cannot open the database {}", path.display()))
}

/// The trip service on `store`, with its dispatcher running.
async fn start_trips(
    store: Arc<dyn TripStore>,
    bus: &SharedBus,
    key: &SigningKey,
    config: &Config,
    shutdown: &Shutdown,
) -> anyhow::Result<TripService> {
    let trips = TripService::new(
        store,
        bus.clone(),
        QuoteBook::new(key.bytes()),
        config.trips.policy(),
    );
    Dispatcher::build(trips.clone(), bus, config.trips.clone())
        .await?
        .run(shutdown);
    Ok(trips)
}

/// The supply service as configured.
fn supply_service(bus: &SharedBus, config: &Config) -> SupplyService {
    SupplyService::new(bus.clone())
        .with_location_interval(Duration::from_millis(config.supply.location_interval_ms))
}

/// The pricing service as configured: OSRM when `pricing.osrm_url` is set, else straight lines.
fn pricing_service(config: &Config, key: &SigningKey) -> PricingService {
    let fallback = StraightLineRouting {
        detour_factor: config.pricing.detour_factor,
        speed_kmh: config.pricing.speed_kmh,
    };
    let router = match &config.pricing.osrm_url {
        Some(url) => Router::osrm(url, Duration::from_secs(2), fallback),
        None => Router::straight_line(fallback),
    };
    PricingService::new(
        router,
        QuoteBook::new(key.bytes()),
        config.pricing.quote_ttl_s,
    )
}

impl System {
    /// `rickshaw up`: everything in this process.
    pub async fn embedded(config: Config) -> anyhow::Result<Self> {
        let shutdown = Shutdown::new();
        let bus: SharedBus = Arc::new(InProcessBus::new());

        let rating_db = open_sqlite(&config, "rating.db").await?;
        let rating_store = Arc::new(SqliteRatingStore::new(rating_db.clone()).await?);
        let (rating, directory) = RatingService::build(rating_store, bus.clone()).await?;
        directory.run(&shutdown);

        MatchingService::build(bus.clone(), config.matching.clone())
            .await?
            .run(&shutdown, Arc::new(AllShards(config.matching.shards)));
        let communication =
            Communication::build(bus.clone(), &shutdown, (&config.sockets).into()).await?;

        // The product API.
        let key = SigningKey::embedded(&config.identity, &config.data_dir).with_context(|| {
            format!(
                "cannot read or create the signing key in {}",
                config.data_dir.display()
            )
        })?;
        let identity_db = open_sqlite(&config, "identity.db").await?;
        let accounts = SqliteAccountStore::new(identity_db.clone()).await?;
        let identity = Arc::new(IdentityService::new(
            Arc::new(accounts),
            key.clone(),
            &config.identity,
        ));
        let trip_db = open_sqlite(&config, "trip.db").await?;
        let trip_store = Arc::new(SqliteTripStore::new(trip_db.clone()).await?);
        let trips = start_trips(trip_store, &bus, &key, &config, &shutdown).await?;
        let supply = Arc::new(supply_service(&bus, &config));
        let trips: Arc<dyn TripApi> = Arc::new(trips);
        let verifier = TokenVerifier::new(&key);
        let realtime = Realtime::build(
            &bus,
            RealtimeDeps {
                trips: trips.clone(),
                supply: supply.clone(),
                verifier: verifier.clone(),
            },
            &shutdown,
            (&config.sockets).into(),
        )
        .await?;
        let edge = Edge {
            gateway: Some(gateway::Services {
                rider: Arc::new(RiderService::new(bus.clone())),
                supply: supply.clone(),
                rating,
            }),
            product: Some(ProductServices {
                identity,
                pricing: Arc::new(pricing_service(&config, &key)),
                trips,
                supply,
                verifier,
                auth_limits: gateway::AuthLimits::new(&config.gateway, &config.http),
            }),
            communication: Some(communication),
            realtime: Some(realtime),
        };
        let pools = vec![
            Pool::Sqlite(rating_db),
            Pool::Sqlite(identity_db),
            Pool::Sqlite(trip_db),
        ];
        Self::listen(config, shutdown, edge, pools).await
    }

    /// `rickshaw serve`: the named services on NATS and PostgreSQL.
    pub async fn distributed(config: Config, services: &Services) -> anyhow::Result<Self> {
        let shutdown = Shutdown::new();
        let nats = NatsBus::connect(NatsBusConfig {
            url: config.nats.url.clone(),
            replicas: config.nats.replicas,
            stream_prefix: config.nats.stream_prefix.clone(),
            max_age: Duration::from_secs(config.nats.stream_max_age_s),
            max_bytes: config.nats.stream_max_bytes,
            ..NatsBusConfig::default()
        })
        .await?;
        let client = nats.client();
        let jetstream = nats.jetstream().clone();
        let bus: SharedBus = Arc::new(nats);
        let mut pools = Vec::new();

        if services.contains(Service::Rider) {
            rider::remote::serve(RiderService::new(bus.clone()), client.clone(), &shutdown).await?;
        }
        if services.contains(Service::Supply) {
            supply::remote::serve(supply_service(&bus, &config), client.clone(), &shutdown).await?;
        }
        if services.contains(Service::Rating) {
            let store =
                PgRatingStore::connect(&config.database.url, config.database.max_connections)
                    .await?;
            store.migrate().await?;
            pools.push(Pool::Postgres(store.pool().clone()));
            let (rating, directory) = RatingService::build(Arc::new(store), bus.clone()).await?;
            directory.run(&shutdown);
            rating::remote::serve(rating, client.clone(), &shutdown).await?;
        }
        if services.contains(Service::Matching) {
            // Subscribe first, so the mirror fills while the leases warm up.
            let matching = MatchingService::build(bus.clone(), config.matching.clone()).await?;
            let lease_config = LeaseConfig {
                shards: config.matching.shards,
                ttl: Duration::from_millis(config.matching.lease_ttl_ms),
                bucket: format!("{}_matching_leases", config.nats.stream_prefix),
                replicas: config.nats.replicas,
                instance: uuid::Uuid::now_v7().simple().to_string(),
                warmup: Duration::from_millis(config.matching.hold_ms),
            };
            let leases = KvLeases::start(&jetstream, lease_config, &shutdown).await?;
            matching.run(&shutdown, leases);
        }
        let communication = if services.contains(Service::Communication) {
            Some(Communication::build(bus.clone(), &shutdown, (&config.sockets).into()).await?)
        } else {
            None
        };
        let rpc = RpcClient::new(
            client,
            Duration::from_millis(config.nats.request_timeout_ms),
        );
        let supply: Arc<dyn SupplyApi> = Arc::new(supply::remote::RemoteSupply::new(rpc.clone()));
        let gateway = services
            .contains(Service::Gateway)
            .then(|| gateway::Services {
                rider: Arc::new(rider::remote::RemoteRider::new(rpc.clone())),
                supply: supply.clone(),
                rating: Arc::new(rating::remote::RemoteRating::new(rpc)),
            });

        // The product: identity, pricing and trip serve gRPC; the gateway and communication call
        // them. All of them need the shared signing key.
        let product = [
            Service::Gateway,
            Service::Communication,
            Service::Identity,
            Service::Pricing,
            Service::Trip,
        ];
        let key = if product.iter().any(|s| services.contains(*s)) {
            Some(SigningKey::required(&config.identity).map_err(|e| anyhow::anyhow!("{e}"))?)
        } else {
            None
        };
        let mut grpc = None;
        let mut edge = Edge {
            gateway,
            product: None,
            communication,
            realtime: None,
        };
        if let Some(key) = key {
            let verifier = TokenVerifier::new(&key);
            let authenticate = identity::grpc::authenticate(verifier.clone());
            let mut routes = RoutesBuilder::default();
            let serves_grpc = [Service::Identity, Service::Pricing, Service::Trip]
                .iter()
                .any(|s| services.contains(*s));
            if services.contains(Service::Identity) {
                let store =
                    PgAccountStore::connect(&config.database.url, config.database.max_connections)
                        .await?;
                store.migrate().await?;
                pools.push(Pool::Postgres(store.pool().clone()));
                let identity = IdentityService::new(Arc::new(store), key.clone(), &config.identity);
                routes.add_service(identity::grpc::service(
                    Arc::new(identity),
                    authenticate.clone(),
                ));
            }
            if services.contains(Service::Pricing) {
                let pricing = pricing_service(&config, &key);
                routes.add_service(pricing::grpc::service(
                    Arc::new(pricing),
                    authenticate.clone(),
                ));
            }
            if services.contains(Service::Trip) {
                let store =
                    PgTripStore::connect(&config.database.url, config.database.max_connections)
                        .await?;
                store.migrate().await?;
                pools.push(Pool::Postgres(store.pool().clone()));
                let trips = start_trips(Arc::new(store), &bus, &key, &config, &shutdown).await?;
                routes.add_service(trip::grpc::service(Arc::new(trips), authenticate));
            }
            if serves_grpc {
                let listener = TcpListener::bind(config.grpc.listen)
                    .await
                    .with_context(|| {
                        format!(
                            "cannot listen for gRPC on {}; pick another --grpc-listen",
                            config.grpc.listen
                        )
                    })?;
                grpc = Some((listener, routes.routes()));
            }
            let timeout = Duration::from_millis(config.grpc.timeout_ms);
            let channel = |endpoints: &[String]| balanced(endpoints, timeout);
            let needs_trip =
                services.contains(Service::Gateway) || services.contains(Service::Communication);
            let trips: Option<Arc<dyn TripApi>> = if needs_trip {
                Some(Arc::new(trip::grpc::GrpcTrip::new(channel(
                    &config.grpc.trip,
                )?)))
            } else {
                None
            };
            if services.contains(Service::Gateway)
                && let Some(trips) = &trips
            {
                edge.product = Some(ProductServices {
                    identity: Arc::new(identity::grpc::GrpcIdentity::new(channel(
                        &config.grpc.identity,
                    )?)),
                    pricing: Arc::new(pricing::grpc::GrpcPricing::new(channel(
                        &config.grpc.pricing,
                    )?)),
                    trips: trips.clone(),
                    supply: supply.clone(),
                    verifier: verifier.clone(),
                    auth_limits: gateway::AuthLimits::new(&config.gateway, &config.http),
                });
            }
            if services.contains(Service::Communication)
                && let Some(trips) = trips
            {
                let deps = RealtimeDeps {
                    trips,
                    supply,
                    verifier,
                };
                edge.realtime =
                    Some(Realtime::build(&bus, deps, &shutdown, (&config.sockets).into()).await?);
            }
        }
        let mut system = Self::listen(config, shutdown, edge, pools).await?;
        system.grpc = grpc;
        Ok(system)
    }

    async fn listen(
        config: Config,
        shutdown: Shutdown,
        edge: Edge,
        pools: Vec<Pool>,
    ) -> anyhow::Result<Self> {
        let health = Health::default();
        let mut router = ops_router(health.clone(), telemetry::metrics_handle());
        if let Some(services) = edge.gateway {
            router = router.merge(gateway::course_router(services));
        }
        if let Some(product) = edge.product {
            router = router.merge(gateway::product_router(product));
        }
        if let Some(communication) = &edge.communication {
            router = router.merge(communication.routes());
        }
        if let Some(realtime) = edge.realtime {
            router = router.merge(realtime.routes());
            realtime.run(&shutdown);
        }
        let mut app = platform::http::finish(router, &config.http);
        if let Some(communication) = edge.communication {
            app = communication.serve_socketio(app);
            communication.run(&shutdown);
        }
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
            grpc: None,
            health,
            shutdown,
            pools,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// Where this process serves gRPC, if it runs identity, pricing or trip.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Serves until `stop` resolves, then drains: readiness goes false, the listener stops
    /// accepting, in-flight requests finish, consumers stop, databases are closed.
    pub async fn run(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            config,
            listener,
            app,
            grpc,
            health,
            shutdown,
            pools,
        } = self;
        let server = shutdown.spawn(platform::http::serve(
            listener,
            app,
            shutdown.token(),
            (&config.http).into(),
        ));
        if let Some((listener, routes)) = grpc {
            let token = shutdown.token();
            shutdown.spawn(async move {
                let served = tonic::transport::Server::builder()
                    .add_routes(routes)
                    .serve_with_incoming_shutdown(TcpIncoming::from(listener), token.cancelled())
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the gRPC server failed");
                }
            });
        }
        health.set_ready(true);
        tokio::select! {
            () = stop => {}
            () = shutdown.triggered() => {}
        }
        health.set_ready(false);
        let grace = Duration::from_millis(config.shutdown.grace_ms);
        if shutdown.complete(grace).await {
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
        for pool in pools {
            match pool {
                Pool::Sqlite(pool) => pool.close().await,
                Pool::Postgres(pool) => pool.close().await,
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// `rickshaw migrate`: applies every service's pending PostgreSQL migrations.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    store::ensure_postgres_database(&config.database.url)
        .await
        .context("cannot reach or create the database")?;
    let rating = PgRatingStore::connect(&config.database.url, 1).await?;
    rating.migrate().await?;
    rating.pool().close().await;
    let identity = PgAccountStore::connect(&config.database.url, 1).await?;
    identity.migrate().await?;
    identity.pool().close().await;
    let trips = PgTripStore::connect(&config.database.url, 1).await?;
    trips.migrate().await?;
    trips.pool().close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_lists_parse_and_unknown_names_are_named() {
        let parsed: Services = "gateway, rating".parse().expect("valid");
        assert!(parsed.contains(Service::Gateway) && parsed.contains(Service::Rating));
        assert!(!parsed.contains(Service::Matching));
        assert_eq!(parsed.to_string(), "gateway,rating");
        assert_eq!("all".parse::<Services>(), Ok(Services::all()));
        let err = "gateway,billing".parse::<Services>().expect_err("unknown");
        assert!(err.contains("billing"), "{err}");
        assert!("".parse::<Services>().is_err());
    }
}
