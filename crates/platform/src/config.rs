//! The one config tree: defaults, then an optional TOML file, then `RICKSHAW_`-prefixed environment
//! variables (`__` separates levels: `RICKSHAW_MATCHING__TICK_MS=500`), then command-line flags.
//! Loaded and validated once in `main`, then passed down.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use domain::matching::Strategy;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the public HTTP/WebSocket edge listens.
    pub listen: SocketAddr,
    /// Where the embedded mode keeps its SQLite file.
    pub data_dir: PathBuf,
    pub log: LogConfig,
    pub http: HttpConfig,
    pub matching: MatchingConfig,
    pub shutdown: ShutdownConfig,
    /// The distributed mode's event bus and the calls between processes (request/reply).
    pub nats: NatsConfig,
    /// The distributed mode's database.
    pub database: DatabaseConfig,
    pub identity: IdentityConfig,
    pub pricing: PricingConfig,
    pub trips: TripsConfig,
    pub gateway: GatewayConfig,
    pub sockets: SocketsConfig,
    pub supply: SupplyConfig,
}

/// Accounts and tokens.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// The HS256 key signing access tokens (at least 32 bytes). Required in the distributed mode
    /// (every gateway and service instance must share it); the embedded mode generates one under
    /// the data directory when unset. Never logged.
    pub signing_key: Option<String>,
    /// Lifetime of an access token.
    pub access_ttl_s: u64,
    /// Lifetime of a refresh token.
    pub refresh_ttl_s: u64,
    /// Failed logins an email may have before each further attempt waits (0: no limit). Past
    /// it, the wait doubles with every failure, from `login_backoff_ms` up to
    /// `login_backoff_max_ms`; failures older than `login_window_s` are forgotten.
    pub login_free_failures: u32,
    pub login_backoff_ms: u64,
    pub login_backoff_max_ms: u64,
    pub login_window_s: u64,
    /// Password hashes (Argon2id, ~19 MiB and ~150 ms each) computed at once; 0: one per core.
    pub hash_workers: usize,
    /// Hashes allowed to wait for a worker; more are refused at once with 503 and Retry-After.
    pub hash_queue: usize,
    /// How long a hash may wait for a worker before it is refused with 503 and Retry-After.
    pub hash_queue_timeout_ms: u64,
}

impl std::fmt::Debug for IdentityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityConfig")
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "<redacted>"),
            )
            .field("access_ttl_s", &self.access_ttl_s)
            .field("refresh_ttl_s", &self.refresh_ttl_s)
            .field("login_free_failures", &self.login_free_failures)
            .field("login_backoff_ms", &self.login_backoff_ms)
            .field("login_backoff_max_ms", &self.login_backoff_max_ms)
            .field("login_window_s", &self.login_window_s)
            .field("hash_workers", &self.hash_workers)
            .field("hash_queue", &self.hash_queue)
            .field("hash_queue_timeout_ms", &self.hash_queue_timeout_ms)
            .finish()
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            signing_key: None,
            access_ttl_s: 900,
            refresh_ttl_s: 30 * 24 * 3600,
            login_free_failures: 5,
            login_backoff_ms: 1_000,
            login_backoff_max_ms: 5 * 60_000,
            login_window_s: 15 * 60,
            hash_workers: 0,
            hash_queue: 64,
            hash_queue_timeout_ms: 2_000,
        }
    }
}

/// Trip previews and quotes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PricingConfig {
    /// An OSRM-compatible routing server (`http://host:5000`); unset: great-circle distance ×
    /// `detour_factor` at `speed_kmh`.
    pub osrm_url: Option<String>,
    pub detour_factor: f64,
    pub speed_kmh: f64,
    /// How long a quote can be booked.
    pub quote_ttl_s: u64,
}

impl Default for PricingConfig {
    fn default() -> Self {
        Self {
            osrm_url: None,
            detour_factor: 1.35,
            speed_kmh: 20.0,
            quote_ttl_s: 300,
        }
    }
}

/// The trip lifecycle: dispatch, timeouts and fees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TripsConfig {
    /// How often searching trips are offered to free drivers (one batch per instance).
    pub dispatch_ms: u64,
    /// Geographic shards of dispatch: the H3 cells of `shard_resolution` containing pickups are
    /// spread over `shards` shards, which the instances share by leases.
    pub shards: u32,
    pub shard_resolution: u8,
    /// How long a dispatch shard's lease lasts without renewal (the distributed mode): a killed
    /// instance's shards are taken over about this long after its last renewal.
    pub lease_ttl_ms: u64,
    /// A driver is offered trips whose pickup is at most this far (metres).
    pub max_pickup_m: f64,
    /// A driver whose last position is older than this is not offered trips.
    pub position_ttl_ms: u64,
    pub offer_timeout_ms: u64,
    pub search_timeout_ms: u64,
    pub free_cancel_window_ms: u64,
    pub late_cancel_fee: u64,
    pub no_show_after_ms: u64,
    pub no_show_fee: u64,
}

impl Default for TripsConfig {
    fn default() -> Self {
        let policy = domain::trip::TripPolicy::default();
        Self {
            dispatch_ms: 1_000,
            shards: 16,
            shard_resolution: 7,
            lease_ttl_ms: 2_000,
            max_pickup_m: 5_000.0,
            position_ttl_ms: 60_000,
            offer_timeout_ms: policy.offer_timeout_ms,
            search_timeout_ms: policy.search_timeout_ms,
            free_cancel_window_ms: policy.free_cancel_window_ms,
            late_cancel_fee: policy.late_cancel_fee,
            no_show_after_ms: policy.no_show_after_ms,
            no_show_fee: policy.no_show_fee,
        }
    }
}

impl TripsConfig {
    pub fn policy(&self) -> domain::trip::TripPolicy {
        domain::trip::TripPolicy {
            offer_timeout_ms: self.offer_timeout_ms,
            search_timeout_ms: self.search_timeout_ms,
            free_cancel_window_ms: self.free_cancel_window_ms,
            late_cancel_fee: self.late_cancel_fee,
            no_show_after_ms: self.no_show_after_ms,
            no_show_fee: self.no_show_fee,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// Replicas of each JetStream stream: 1 for one server, 3 for a 3-node cluster.
    pub replicas: usize,
    pub stream_prefix: String,
    /// How long a call to another service (request/reply over NATS) may take before the caller
    /// answers 503.
    pub request_timeout_ms: u64,
    /// Every stream keeps messages at most this long, and at most this many bytes (the oldest
    /// go first).
    pub stream_max_age_s: u64,
    pub stream_max_bytes: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A PostgreSQL URL. Each service keeps its tables in its own schema of this database.
    pub url: String,
    pub max_connections: u32,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            replicas: 1,
            stream_prefix: "RICKSHAW".to_owned(),
            request_timeout_ms: 5_000,
            stream_max_age_s: 24 * 3600,
            stream_max_bytes: 1 << 30,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/rickshaw".to_owned(),
            max_connections: 8,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info,matching=debug`. `RUST_LOG` wins when set.
    pub filter: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Request bodies above this are refused with 413.
    pub body_limit_bytes: usize,
    /// A request taking longer is answered 503.
    pub request_timeout_ms: u64,
    /// A connection that has not sent a whole request head this long after it opened, or after
    /// its previous response (an idle keep-alive connection), is closed.
    pub header_read_timeout_ms: u64,
    /// Request heads (request line and headers) above this are answered 431.
    pub max_header_bytes: usize,
    /// Open connections (WebSocket sessions included); past it new ones are closed at once.
    pub max_connections: usize,
    /// Open connections from one client address (0: no limit). Behind a proxy every connection
    /// comes from the proxy: turn it off there and let the proxy limit its clients.
    pub max_connections_per_address: usize,
    /// A header the proxy in front sets to the client's address (`x-real-ip`); unset: the peer
    /// address of the connection is the client's. Only set it behind a proxy that overwrites it.
    pub client_address_header: Option<String>,
}

/// Limits of the public edge that are not HTTP's own: how hard one client address may push the
/// password checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Sign-ups and logins one client address may have in flight at once (0: no limit).
    pub auth_in_flight_per_address: usize,
    /// Failed logins one client address may have before each further login waits (0: no
    /// limit); the wait doubles with every failure from `login_backoff_ms` to
    /// `login_backoff_max_ms`; failures older than `login_window_s` are forgotten.
    pub login_free_failures_per_address: u32,
    pub login_backoff_ms: u64,
    pub login_backoff_max_ms: u64,
    pub login_window_s: u64,
    /// Client addresses remembered at once; past it the ones with the oldest activity go.
    pub tracked_addresses: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            auth_in_flight_per_address: 8,
            login_free_failures_per_address: 20,
            login_backoff_ms: 1_000,
            login_backoff_max_ms: 5 * 60_000,
            login_window_s: 15 * 60,
            tracked_addresses: 100_000,
        }
    }
}

/// Limits of every socket (course WebSocket, socket.io, `/v1/ws`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketsConfig {
    /// The largest frame and the largest message a client may send (a larger one closes the
    /// session with 1009 before it is buffered).
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
    /// How often the server pings a silent client.
    pub ping_interval_ms: u64,
    /// A session the client has sent nothing on (not even a pong) for this long is closed.
    pub idle_timeout_ms: u64,
    /// `/v1/ws` sessions one account may hold at once; one more is refused with 429.
    pub per_account: usize,
}

impl Default for SocketsConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 16 * 1024,
            max_message_bytes: 64 * 1024,
            ping_interval_ms: 20_000,
            idle_timeout_ms: 60_000,
            per_account: 5,
        }
    }
}

/// Driver availability and positions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupplyConfig {
    /// At most one position per driver is published in this interval; the positions sent in
    /// between are coalesced to the latest, published when the interval ends (0: no limit).
    pub location_interval_ms: u64,
}

impl Default for SupplyConfig {
    fn default() -> Self {
        Self {
            location_interval_ms: 1_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchingConfig {
    /// How often waiting riders are paired with free drivers.
    pub tick_ms: u64,
    /// How long an unmatched rider request or driver report is kept (seed 002: at least 5 s).
    pub hold_ms: u64,
    pub strategy: Strategy,
    /// `optimal`: how many nearest drivers each rider is a candidate for.
    pub candidates: usize,
    /// `optimal`: rounds of pricing after the first solve (0: none; each one brings the result
    /// closer to the exact optimum at the cost of a range query per rider).
    pub pricing_rounds: usize,
    /// No rider is paired with a driver farther than this (units of the coordinates); unset means
    /// no limit.
    pub max_pickup: Option<f64>,
    /// Side of the cells of the matcher's geo index of free drivers (units of the coordinates);
    /// about one to a few drivers a cell answers nearest-driver queries fastest.
    pub index_cell: f64,
    /// Geographic shards: the plane is cut into square cells of `shard_cell` units, each cell
    /// belongs to one of `shards` shards, and riders are paired with drivers of their shard only.
    pub shards: u32,
    pub shard_cell: f64,
    /// In the distributed mode, how long a matching instance's lease on a shard lasts unrenewed;
    /// a dead instance's shards are taken over after about this long.
    pub lease_ttl_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long in-flight work may take to finish after SIGINT/SIGTERM.
    pub grace_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            log: LogConfig::default(),
            http: HttpConfig::default(),
            matching: MatchingConfig::default(),
            shutdown: ShutdownConfig::default(),
            nats: NatsConfig::default(),
            database: DatabaseConfig::default(),
            identity: IdentityConfig::default(),
            pricing: PricingConfig::default(),
            trips: TripsConfig::default(),
            gateway: GatewayConfig::default(),
            sockets: SocketsConfig::default(),
            supply: SupplyConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            filter: "info".to_owned(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            header_read_timeout_ms: 10_000,
            max_header_bytes: 16 * 1024,
            max_connections: 10_000,
            max_connections_per_address: 4_096,
            client_address_header: None,
        }
    }
}

impl Default for MatchingConfig {
    fn default() -> Self {
        Self {
            tick_ms: 1_000,
            hold_ms: 5_000,
            strategy: Strategy::Optimal,
            candidates: 8,
            pricing_rounds: 0,
            max_pickup: None,
            index_cell: 10.0,
            shards: 1,
            shard_cell: 50.0,
            lease_ttl_ms: 2_000,
        }
    }
}

impl MatchingConfig {
    /// How far the matcher's search for a rider's driver goes.
    pub fn limits(&self) -> domain::matching::Limits {
        domain::matching::Limits {
            candidates: self.candidates,
            max_pickup: self.max_pickup.unwrap_or(f64::INFINITY),
            pricing_rounds: self.pricing_rounds,
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { grace_ms: 10_000 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The top-level keys environment variables may set; other `RICKSHAW_*` variables (the test
/// scripts' own, say) are not config.
const ENV_KEYS: &[&str] = &[
    "listen", "data_dir", "log", "http", "matching", "shutdown", "nats", "database", "identity",
    "pricing", "trips", "gateway", "sockets", "supply",
];

impl Config {
    /// Defaults ← `file` ← `RICKSHAW_*` env ← `overrides` (typically the CLI flags, as a partial
    /// tree: only the keys present override).
    pub fn load(file: Option<&Path>, overrides: impl Serialize) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = Env::prefixed("RICKSHAW_").split("__").filter(|key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            ENV_KEYS.contains(&top)
        });
        let config: Config = figment
            .merge(env)
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        if self.matching.tick_ms < 10 {
            return invalid(format!(
                "matching.tick_ms = {} is below the 10 ms minimum",
                self.matching.tick_ms
            ));
        }
        if self.matching.hold_ms < self.matching.tick_ms {
            return invalid(format!(
                "matching.hold_ms = {} must be at least matching.tick_ms = {}: a request must live through one tick",
                self.matching.hold_ms, self.matching.tick_ms
            ));
        }
        let m = &self.matching;
        if m.shards == 0 || m.shards > 1024 {
            return invalid(format!("matching.shards = {} must be 1 to 1024", m.shards));
        }
        if !(m.shard_cell.is_finite() && m.shard_cell > 0.0) {
            return invalid(format!(
                "matching.shard_cell = {} must be a positive number",
                m.shard_cell
            ));
        }
        if m.candidates == 0 || m.candidates > 64 {
            return invalid(format!(
                "matching.candidates = {} must be 1 to 64",
                m.candidates
            ));
        }
        if m.pricing_rounds > 100 {
            return invalid(format!(
                "matching.pricing_rounds = {} must be at most 100",
                m.pricing_rounds
            ));
        }
        if m.max_pickup.is_some_and(|d| !(d.is_finite() && d > 0.0)) {
            return invalid(format!(
                "matching.max_pickup = {:?} must be a positive number (or unset for no limit)",
                m.max_pickup
            ));
        }
        if !(m.index_cell.is_finite() && m.index_cell >= domain::matching::index::MIN_CELL_SIZE) {
            return invalid(format!(
                "matching.index_cell = {} must be a number of at least {}",
                m.index_cell,
                domain::matching::index::MIN_CELL_SIZE
            ));
        }
        if m.lease_ttl_ms < 400 {
            return invalid(format!(
                "matching.lease_ttl_ms = {} is below the 400 ms minimum",
                m.lease_ttl_ms
            ));
        }
        if self.http.body_limit_bytes < 1024 {
            return invalid(format!(
                "http.body_limit_bytes = {} is below 1024",
                self.http.body_limit_bytes
            ));
        }
        if self.nats.replicas == 0 || self.nats.replicas > 5 {
            return invalid(format!(
                "nats.replicas = {} must be 1 to 5",
                self.nats.replicas
            ));
        }
        if let Some(key) = &self.identity.signing_key
            && key.len() < 32
        {
            return invalid(format!(
                "identity.signing_key is {} bytes; use at least 32 random bytes",
                key.len()
            ));
        }
        if self.identity.access_ttl_s == 0 || self.identity.refresh_ttl_s == 0 {
            return invalid(
                "identity.access_ttl_s and identity.refresh_ttl_s must be positive".into(),
            );
        }
        let p = &self.pricing;
        if !(p.detour_factor.is_finite() && (1.0..=3.0).contains(&p.detour_factor)) {
            return invalid(format!(
                "pricing.detour_factor = {} must be 1 to 3",
                p.detour_factor
            ));
        }
        if !(p.speed_kmh.is_finite() && (1.0..=200.0).contains(&p.speed_kmh)) {
            return invalid(format!(
                "pricing.speed_kmh = {} must be 1 to 200",
                p.speed_kmh
            ));
        }
        if p.quote_ttl_s == 0 {
            return invalid("pricing.quote_ttl_s must be positive".into());
        }
        let t = &self.trips;
        if t.dispatch_ms < 10 || t.offer_timeout_ms < t.dispatch_ms {
            return invalid(format!(
                "trips.dispatch_ms = {} must be at least 10 and at most trips.offer_timeout_ms = {}",
                t.dispatch_ms, t.offer_timeout_ms
            ));
        }
        if !(t.max_pickup_m.is_finite() && t.max_pickup_m > 0.0) {
            return invalid(format!(
                "trips.max_pickup_m = {} must be a positive number",
                t.max_pickup_m
            ));
        }
        if t.shards == 0 || t.shards > 1024 || t.shard_resolution > 15 {
            return invalid(format!(
                "trips.shards = {} must be 1 to 1024 and trips.shard_resolution = {} an H3 resolution, 0 to 15",
                t.shards, t.shard_resolution
            ));
        }
        if t.lease_ttl_ms < 400 {
            return invalid(format!(
                "trips.lease_ttl_ms = {} is below the 400 ms minimum",
                t.lease_ttl_ms
            ));
        }
        let h = &self.http;
        if h.header_read_timeout_ms == 0 || h.max_connections == 0 || h.max_header_bytes < 1024 {
            return invalid(
                "http.header_read_timeout_ms and http.max_connections must be positive, http.max_header_bytes at least 1024".into(),
            );
        }
        if let Some(header) = &h.client_address_header
            && axum::http::HeaderName::try_from(header.as_str()).is_err()
        {
            return invalid(format!(
                "http.client_address_header = {header:?} is not a header name"
            ));
        }
        let i = &self.identity;
        if i.hash_queue_timeout_ms == 0 || i.login_window_s == 0 || i.login_backoff_ms == 0 {
            return invalid(
                "identity.hash_queue_timeout_ms, identity.login_window_s and identity.login_backoff_ms must be positive".into(),
            );
        }
        if i.login_backoff_max_ms < i.login_backoff_ms {
            return invalid(format!(
                "identity.login_backoff_max_ms = {} must be at least identity.login_backoff_ms = {}",
                i.login_backoff_max_ms, i.login_backoff_ms
            ));
        }
        let gw = &self.gateway;
        if gw.login_window_s == 0
            || gw.login_backoff_ms == 0
            || gw.login_backoff_max_ms < gw.login_backoff_ms
            || gw.tracked_addresses == 0
        {
            return invalid(
                "gateway.login_window_s, gateway.login_backoff_ms and gateway.tracked_addresses must be positive, gateway.login_backoff_max_ms at least gateway.login_backoff_ms".into(),
            );
        }
        let so = &self.sockets;
        if so.max_frame_bytes < 1024
            || so.max_message_bytes < so.max_frame_bytes
            || so.ping_interval_ms == 0
            || so.idle_timeout_ms <= so.ping_interval_ms
            || so.per_account == 0
        {
            return invalid(format!(
                "sockets: max_frame_bytes = {} must be at least 1024 and at most max_message_bytes = {}; ping_interval_ms = {} positive and below idle_timeout_ms = {}; per_account positive",
                so.max_frame_bytes, so.max_message_bytes, so.ping_interval_ms, so.idle_timeout_ms
            ));
        }
        if self.nats.stream_max_age_s < 120 || self.nats.stream_max_bytes < 1 << 20 {
            return invalid(format!(
                "nats.stream_max_age_s = {} must be at least 120 (the deduplication window) and nats.stream_max_bytes = {} at least 1 MiB",
                self.nats.stream_max_age_s, self.nats.stream_max_bytes
            ));
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections must be positive".into());
        }
        if self.http.request_timeout_ms == 0
            || self.shutdown.grace_ms == 0
            || self.nats.request_timeout_ms == 0
        {
            return invalid(
                "http.request_timeout_ms, nats.request_timeout_ms and shutdown.grace_ms must be positive".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = Config::load(None, serde_json::json!({})).expect("defaults load");
        assert_eq!(config.matching.hold_ms, 5_000);
        assert_eq!(config.http.body_limit_bytes, 65_536);
    }

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rickshaw.toml");
        std::fs::write(&path, "[matching]\ntick_ms = 250\nstrategy = \"nearest\"\n")
            .expect("write");
        let config = Config::load(
            Some(&path),
            serde_json::json!({"matching": {"tick_ms": 100}}),
        )
        .expect("loads");
        assert_eq!(config.matching.tick_ms, 100, "overrides win over the file");
        assert_eq!(
            config.matching.strategy,
            Strategy::Nearest,
            "file wins over defaults"
        );
    }

    #[test]
    fn invalid_values_are_named() {
        let err = Config::load(None, serde_json::json!({"matching": {"tick_ms": 1}}))
            .expect_err("rejects");
        assert!(err.to_string().contains("matching.tick_ms"), "{err}");
        let err = Config::load(
            None,
            serde_json::json!({"matching": {"strategy": "random"}}),
        )
        .expect_err("rejects");
        assert!(err.to_string().contains("random"), "{err}");
        let err = Config::load(
            Some(Path::new("/nonexistent/rickshaw.toml")),
            serde_json::json!({}),
        )
        .expect_err("rejects");
        assert!(matches!(err, ConfigError::MissingFile(_)));
    }
}
