//! Composition: one path for every mode.
//!
//! [`MODULES`] lists every service in start order (a service comes after those it calls). For
//! each one this process runs, `start` builds it on the mode's [`Backends`] and provides its API to
//! the services after it; for each one it does not run, `remote` provides a client that calls it
//! where it runs (never in the embedded mode, which runs them all). So `rickshaw up` is
//! `rickshaw serve --services all` on embedded backends — SQLite files under the data directory and
//! the in-process bus — and `serve` differs only in PostgreSQL and NATS (JetStream for events,
//! request/reply for calls between processes). Adding a service is one crate with a `Module` and
//! one line in [`MODULES`].
//!
//! Every process serves `/healthz`, `/readyz` and `/metrics` on `listen`. Services' background
//! tasks start in [`System::run`], after every service is built.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use platform::bus::{InProcessBus, NatsBus, NatsBusConfig, NatsTls, SharedBus};
use platform::http::{Health, ops_router};
use platform::service::{Backends, Closer, Deps, ServiceModule, Task};
use platform::{Config, Shutdown, store, telemetry};
use tokio::net::TcpListener;

/// Every service, in start order: a service comes after the ones whose clients it takes.
/// Every config section the services own (for `Config::load`).
pub fn config_sections() -> Vec<platform::config::SectionSpec> {
    MODULES.iter().flat_map(|m| m.config_sections()).collect()
}

pub static MODULES: &[&dyn ServiceModule] = &[
    &identity::Module,
    &pricing::Module,
    &provider::Module,
    &payment::Module,
    &mail::Module,
    &supply::Module,
    &rider::Module,
    &trip::Module,
    &rating::Module,
    &matching::Module,
    &communication::Module,
    &operations::Module,
    &audit::Module,
    &gateway::Module,
];

fn known_names() -> String {
    MODULES
        .iter()
        .map(|m| m.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A non-empty set of services, parsed from `gateway,rider,…` or `all`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Services(BTreeSet<&'static str>);

impl Services {
    pub fn all() -> Self {
        Self(MODULES.iter().map(|m| m.name()).collect())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
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
            let module = MODULES.iter().find(|m| m.name() == name).ok_or_else(|| {
                format!(
                    "unknown service {name:?}; expected some of {} or \"all\"",
                    known_names()
                )
            })?;
            set.insert(module.name());
        }
        if set.is_empty() {
            return Err("name at least one service".to_owned());
        }
        Ok(Self(set))
    }
}

impl fmt::Display for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().copied().collect();
        f.write_str(&names.join(","))
    }
}

/// A built (listening, subscribed) but not yet serving process.
pub struct System {
    config: Config,
    listener: TcpListener,
    app: axum::Router,
    health: Health,
    shutdown: Shutdown,
    tasks: Vec<Task>,
    closers: Vec<Closer>,
    /// The services' clients, for an in-process driver of the system ([`System::client`]).
    deps: Deps,
}

impl System {
    /// `rickshaw up`: every service in this process, SQLite under the data directory, the
    /// in-process bus.
    pub async fn embedded(config: Config) -> anyhow::Result<Self> {
        Self::embedded_on(config, Arc::new(InProcessBus::new())).await
    }

    /// The embedded system on the given in-process `bus` (tests wrap one to make publishes fail).
    pub async fn embedded_on(config: Config, bus: SharedBus) -> anyhow::Result<Self> {
        let backends = Backends::Embedded {
            data_dir: config.data_dir.clone(),
        };
        Self::build(config, &Services::all(), bus, backends).await
    }

    /// `rickshaw serve`: the named services on NATS and PostgreSQL.
    pub async fn distributed(config: Config, services: &Services) -> anyhow::Result<Self> {
        let nats = NatsBus::connect(NatsBusConfig {
            url: config.nats.url.clone(),
            credentials: config.nats.user.clone().zip(config.nats.password.clone()),
            tls: config.nats.tls_ca_file.clone().map(|ca_file| NatsTls {
                ca_file,
                client: config
                    .nats
                    .tls_cert_file
                    .clone()
                    .zip(config.nats.tls_key_file.clone()),
            }),
            replicas: config.nats.replicas,
            stream_prefix: config.nats.stream_prefix.clone(),
            max_age: Duration::from_secs(config.nats.stream_max_age_s),
            max_bytes: config.nats.stream_max_bytes,
            ..NatsBusConfig::default()
        })
        .await?;
        let backends = Backends::Distributed {
            database_url: config.database.url.clone(),
            max_connections: config.database.max_connections,
            nats: nats.client(),
            jetstream: Box::new(nats.jetstream().clone()),
        };
        Self::build(config, services, Arc::new(nats), backends).await
    }

    /// The one composition: starts `services` in [`MODULES`] order, registers remote clients for
    /// the others, and binds the listener.
    async fn build(
        config: Config,
        services: &Services,
        bus: SharedBus,
        backends: Backends,
    ) -> anyhow::Result<Self> {
        // Bound first: a port in use fails the start before any database is touched, and the
        // services know the process's address.
        let listener = platform::http::bind(config.listen).with_context(|| {
            format!(
                "cannot listen on {}; is another Rickshaw running? pick another --listen",
                config.listen
            )
        })?;
        let local_addr = listener.local_addr().unwrap_or(config.listen);
        let shutdown = Shutdown::new();
        let health = Health::default();
        let deps = Deps::new(
            config.clone(),
            local_addr,
            bus,
            backends,
            shutdown.clone(),
            health.clone(),
        );
        let mut http = ops_router(health.clone(), telemetry::metrics_handle());
        let mut wraps = Vec::new();
        let (mut tasks, mut closers) = (Vec::new(), Vec::new());
        for module in MODULES {
            if !services.contains(module.name()) {
                if !deps.is_embedded() {
                    module.remote(&deps).with_context(|| {
                        format!("cannot set up the client of the {} service", module.name())
                    })?;
                }
                continue;
            }
            let started = module
                .start(&deps)
                .await
                .with_context(|| format!("cannot start the {} service", module.name()))?;
            if let Some(routes) = started.http {
                http = http.merge(routes);
            }
            wraps.extend(started.wrap);
            tasks.extend(started.tasks);
            closers.extend(started.closers);
        }
        let mut app = platform::http::finish(http, &config.http);
        for wrap in wraps {
            app = wrap(app);
        }
        Ok(Self {
            config,
            listener,
            app,
            health,
            shutdown,
            tasks,
            closers,
            deps,
        })
    }

    /// The client of type `T` this process's services use (for example `Arc<dyn TripApi>`): a
    /// bench drives the system through them in-process, as the gateway does, with callers it
    /// vouches for.
    pub fn client<T: Clone + Send + Sync + 'static>(&self) -> anyhow::Result<T> {
        self.deps.get()
    }

    /// The bus this process's services publish and subscribe on.
    pub fn bus(&self) -> SharedBus {
        self.deps.bus.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// Starts the services' tasks and serves until `stop` resolves, then drains: readiness goes
    /// false, the listener stops accepting, in-flight requests finish, tasks stop, databases are
    /// closed.
    pub async fn run(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            config,
            listener,
            app,
            health,
            shutdown,
            tasks,
            closers,
            deps: _,
        } = self;
        for task in tasks {
            task(&shutdown);
        }
        let server = shutdown.spawn(platform::http::serve(
            listener,
            app,
            shutdown.token(),
            (&config.http).into(),
        ));
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
        for close in closers {
            close.await;
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
    for module in MODULES {
        module
            .migrate(&config.database.url)
            .await
            .with_context(|| format!("cannot migrate the {} service", module.name()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_lists_parse_and_unknown_names_are_named() {
        let parsed: Services = "gateway, rating".parse().expect("valid");
        assert!(parsed.contains("gateway") && parsed.contains("rating"));
        assert!(!parsed.contains("matching"));
        assert_eq!(parsed.to_string(), "gateway,rating");
        assert_eq!("all".parse::<Services>(), Ok(Services::all()));
        let err = "gateway,billing".parse::<Services>().expect_err("unknown");
        assert!(
            err.contains("billing") && err.contains("communication"),
            "{err}"
        );
        assert!("".parse::<Services>().is_err());
    }
}
