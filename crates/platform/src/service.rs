//! The one shape every service has, and what the composition hands it.
//!
//! A service crate exposes a [`ServiceModule`]: its name, `start` (run it in this process: its
//! HTTP routes, its answers to calls from other processes, its background tasks, and its API as a
//! local client for the services started after it), `remote` (where it runs elsewhere: register a client that calls
//! it there) and `migrate` (its PostgreSQL schema). The binary walks one ordered list of modules
//! (`rickshaw::system`), starting the enabled ones and registering remotes for the others, on
//! the backends the mode chose — so `rickshaw up` and `rickshaw serve --services all` differ only
//! in [`Backends`], and adding a service is one crate and one line in that list.
//!
//! `start` builds and subscribes but spawns nothing: its tasks run when the process starts
//! serving ([`Started::tasks`]), after every service is built.

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use axum::Router;

use crate::bus::SharedBus;
use crate::{Config, Shutdown};

/// Where a service keeps its state and how processes reach each other: the only thing that
/// differs between the modes.
#[derive(Clone)]
pub enum Backends {
    /// `rickshaw up`: SQLite files under the data directory, the in-process bus; every service
    /// in this process (nothing is remote).
    Embedded { data_dir: PathBuf },
    /// `rickshaw serve`: PostgreSQL, NATS JetStream for events, NATS request/reply for the calls
    /// between processes.
    Distributed {
        database_url: String,
        max_connections: u32,
        nats: async_nats::Client,
        jetstream: Box<async_nats::jetstream::Context>,
    },
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded { data_dir } => f
                .debug_struct("Embedded")
                .field("data_dir", data_dir)
                .finish(),
            Self::Distributed {
                max_connections, ..
            } => f
                .debug_struct("Distributed")
                .field("max_connections", max_connections)
                .finish_non_exhaustive(),
        }
    }
}

/// What every service is started with.
pub struct Deps {
    pub config: Config,
    /// Where this process's HTTP listener is bound (known before any service starts: a service
    /// that calls another over HTTP in the same process, as payment calls the provider in the
    /// embedded mode, uses it).
    pub local_addr: std::net::SocketAddr,
    pub bus: SharedBus,
    pub backends: Backends,
    pub shutdown: Shutdown,
    /// The process's readiness: a service that must warm up before it takes work holds it
    /// back ([`crate::http::Health::warming`]).
    pub health: crate::http::Health,
    /// The clients of the services this process knows so far, by type (for example
    /// `Arc<dyn TripApi>`): local when the service was started here, remote otherwise.
    clients: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
    /// The process's one client for calls to other processes (distributed mode): its clones
    /// share one subscription for their replies.
    rpc: Option<crate::rpc::RpcClient>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("backends", &self.backends)
            .finish_non_exhaustive()
    }
}

impl Deps {
    pub fn new(
        config: Config,
        local_addr: std::net::SocketAddr,
        bus: SharedBus,
        backends: Backends,
        shutdown: Shutdown,
        health: crate::http::Health,
    ) -> Self {
        let rpc = match &backends {
            Backends::Distributed { nats, .. } => Some(crate::rpc::RpcClient::new(
                nats.clone(),
                std::time::Duration::from_millis(config.nats.request_timeout_ms),
            )),
            Backends::Embedded { .. } => None,
        };
        Self {
            config,
            local_addr,
            bus,
            backends,
            shutdown,
            health,
            clients: Mutex::default(),
            rpc,
        }
    }

    /// Makes `client` the one every later service gets for its type (replacing any earlier).
    pub fn provide<T: Clone + Send + Sync + 'static>(&self, client: T) {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(TypeId::of::<T>(), Box::new(client));
    }

    /// The client of type `T` a service started (or registered as remote) before this one.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> anyhow::Result<T> {
        self.clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&TypeId::of::<T>())
            .and_then(|client| client.downcast_ref::<T>())
            .cloned()
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no {} yet: the service that provides it must come earlier in the composition",
                    type_name::<T>()
                )
            })
    }

    /// The NATS connection of the distributed mode, if this is it.
    pub fn nats(&self) -> Option<&async_nats::Client> {
        match &self.backends {
            Backends::Distributed { nats, .. } => Some(nats),
            Backends::Embedded { .. } => None,
        }
    }

    /// The client for calls to services in other processes (distributed mode), with the
    /// configured deadline (`nats.request_timeout_ms`); every service of the process gets a
    /// clone of the same one, so their replies come to one subscription.
    pub fn rpc(&self) -> Option<crate::rpc::RpcClient> {
        self.rpc.clone()
    }

    pub fn is_embedded(&self) -> bool {
        matches!(self.backends, Backends::Embedded { .. })
    }

    /// A service's store on the mode's database: `embedded` on the SQLite file `file` under the
    /// data directory, or `distributed` on PostgreSQL (`url`, `max_connections`; it returns the
    /// store and its pool). The pool is closed when the process stops (`started`'s closers).
    pub async fn open_store<S>(
        &self,
        started: &mut Started,
        file: &str,
        embedded: impl AsyncFnOnce(crate::store::SqlitePool) -> anyhow::Result<S>,
        distributed: impl AsyncFnOnce(&str, u32) -> anyhow::Result<(S, crate::store::PgPool)>,
    ) -> anyhow::Result<S> {
        match &self.backends {
            Backends::Embedded { .. } => {
                let pool = self.sqlite(file).await?;
                let store = embedded(pool.clone()).await?;
                started
                    .closers
                    .push(Box::pin(async move { pool.close().await }));
                Ok(store)
            }
            Backends::Distributed {
                database_url,
                max_connections,
                ..
            } => {
                let (store, pool) = distributed(database_url, *max_connections).await?;
                started
                    .closers
                    .push(Box::pin(async move { pool.close().await }));
                Ok(store)
            }
        }
    }

    /// The embedded mode's SQLite database `file` under the data directory.
    pub async fn sqlite(&self, file: &str) -> anyhow::Result<crate::store::SqlitePool> {
        let Backends::Embedded { data_dir } = &self.backends else {
            anyhow::bail!("{file}: SQLite is the embedded mode's store");
        };
        let path = data_dir.join(file);
        crate::store::open_sqlite(&path)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database {}: {e}", path.display()))
    }
}

/// A task a started service runs once the process serves.
pub type Task = Box<dyn FnOnce(&Shutdown) + Send>;
/// Work done after every task has stopped (closing a database pool).
pub type Closer = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A layer around the finished public router (socket.io sits outside the request timeout).
pub type Wrap = Box<dyn FnOnce(Router) -> Router + Send>;

/// What a service started in this process contributes.
#[derive(Default)]
pub struct Started {
    /// Routes of the public HTTP edge, merged under the common middleware.
    pub http: Option<Router>,
    /// Wraps the finished public router, outside the common middleware.
    pub wrap: Option<Wrap>,
    pub tasks: Vec<Task>,
    pub closers: Vec<Closer>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started")
            .field("http", &self.http.is_some())
            .field("wrap", &self.wrap.is_some())
            .field("tasks", &self.tasks.len())
            .field("closers", &self.closers.len())
            .finish()
    }
}

impl Started {
    pub fn task(mut self, task: impl FnOnce(&Shutdown) + Send + 'static) -> Self {
        self.tasks.push(Box::new(task));
        self
    }

    pub fn closer(mut self, closer: impl Future<Output = ()> + Send + 'static) -> Self {
        self.closers.push(Box::pin(closer));
        self
    }
}

/// What a service does on NATS, from which its NATS user's permissions are made (`rickshaw
/// nats-users`): a service publishes only the events it owns and calls only the services it
/// uses, so no other process can forge its events or make its calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusContract {
    /// Event subjects it publishes (`supply.>`).
    pub publishes: &'static [&'static str],
    /// The services whose `rpc.<service>.*` it calls.
    pub calls: &'static [&'static str],
    /// Whether it answers `rpc.<its name>.*`.
    pub serves: bool,
    /// Whether it keeps leases in a JetStream key-value bucket (`$KV.>`).
    pub leases: bool,
}

/// A service, as the composition sees it.
#[async_trait]
pub trait ServiceModule: Send + Sync {
    /// The name `--services` knows it by.
    fn name(&self) -> &'static str;

    /// The config sections the service owns (`SectionSpec::of::<TripsConfig>()`), checked when
    /// the config loads whichever services a process runs.
    fn config_sections(&self) -> Vec<crate::config::SectionSpec> {
        Vec::new()
    }

    /// Runs the service in this process and provides its client to the services after it.
    async fn start(&self, deps: &Deps) -> anyhow::Result<Started>;

    /// The service runs in another process: provide a client that calls it there, if any other
    /// service calls it. Never called in the embedded mode.
    fn remote(&self, _deps: &Deps) -> anyhow::Result<()> {
        Ok(())
    }

    /// Applies the service's pending PostgreSQL migrations.
    async fn migrate(&self, _database_url: &str) -> anyhow::Result<()> {
        Ok(())
    }

    /// What the service publishes and calls on NATS (its NATS user's permissions).
    fn bus_contract(&self) -> BusContract {
        BusContract::default()
    }
}
