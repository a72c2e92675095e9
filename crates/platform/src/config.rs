//! The one config tree: defaults, then an optional TOML file, then `RICKSHAW_`-prefixed environment
//! variables (`__` separates levels: `RICKSHAW_MATCHING__TICK_MS=500`), then command-line flags.
//! Loaded and validated once in `main`, then passed down.
//!
//! The platform owns the sections every process needs (`listen`, `data_dir`, `log`, `http`,
//! `shutdown`, `nats`, `database`). Every other section belongs to a service: the service's crate
//! defines its type, defaults and rules (a [`Section`]) and reads it with [`Config::section`]; the
//! binary checks every declared section (and refuses unknown ones) when the config loads, so a
//! typo fails at start with the key's name, whichever services this process runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Where the public HTTP/WebSocket edge listens.
    pub listen: SocketAddr,
    /// Where the embedded mode keeps its SQLite file.
    pub data_dir: PathBuf,
    pub log: LogConfig,
    pub http: HttpConfig,
    pub shutdown: ShutdownConfig,
    /// The distributed mode's event bus and the calls between processes (request/reply).
    pub nats: NatsConfig,
    /// The distributed mode's database.
    pub database: DatabaseConfig,
    /// Traces (OpenTelemetry over OTLP), off unless an endpoint is set.
    pub telemetry: TelemetryConfig,
    /// The services' sections (`[trips]`, `[identity]`, …) as the sources gave them; each service
    /// reads its own, filled with its defaults and validated, with [`Config::section`].
    #[serde(flatten)]
    sections: BTreeMap<String, serde_json::Value>,
}

/// A service's section of the config tree: its type (every field defaulted, unknown keys
/// refused), its name, and the rules its values must follow.
pub trait Section: Serialize + DeserializeOwned + Default {
    /// The section's name: `[trips]` in the file, `RICKSHAW_TRIPS__…` in the environment.
    const NAME: &'static str;

    /// The rules beyond the types: on error, a message naming the key (`trips.shards = 0 must
    /// be 1 to 1024`).
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// A section a service declares, so the config can be checked before any service starts.
#[derive(Clone, Copy)]
pub struct SectionSpec {
    pub name: &'static str,
    check: fn(&Config) -> Result<(), ConfigError>,
}

impl SectionSpec {
    pub fn of<T: Section>() -> Self {
        Self {
            name: T::NAME,
            check: |config| config.section::<T>().map(drop),
        }
    }
}

impl std::fmt::Debug for SectionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URL(s), comma-separated.
    pub url: String,
    /// This process's NATS user and password, where the servers require them (the cluster gives
    /// each service its own user, allowed to publish only what it owns: `rickshaw nats-users`).
    pub user: Option<String>,
    pub password: Option<String>,
    /// TLS to the servers: the CA (PEM) their certificates must chain to. Set, plain connections
    /// are refused by this process.
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that verify their clients.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
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

impl std::fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConfig")
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("replicas", &self.replicas)
            .field("stream_prefix", &self.stream_prefix)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("stream_max_age_s", &self.stream_max_age_s)
            .field("stream_max_bytes", &self.stream_max_bytes)
            .finish()
    }
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            user: None,
            password: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
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

/// `[telemetry]`: where traces go.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// An OTLP/HTTP receiver (a collector, Jaeger, Tempo…), e.g. `http://127.0.0.1:4318`: spans
    /// are sent to `<endpoint>/v1/traces`. Unset: no traces (the default).
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of this process's spans; unset: `rickshaw` for `rickshaw up`, the
    /// services it runs for `rickshaw serve` (`trip`, `gateway+communication`).
    pub service_name: Option<String>,
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
    /// Once shutdown begins: how long connections already open are still served, each response
    /// closing its connection (`Connection: close`), before idle ones are closed. Behind a proxy
    /// that keeps connections alive, set it above the proxy's idle timeout for them (nginx's
    /// `keepalive_timeout` in the upstream block): the proxy then never sends a request on a
    /// connection just as this process closes it, a request it would not retry if it is a POST.
    /// 0: idle connections close at once. It ends early once every connection has closed.
    pub drain_ms: u64,
    /// A header the proxy in front sets to the client's address (`x-real-ip`); unset: the peer
    /// address of the connection is the client's. Only set it behind a proxy that overwrites it.
    pub client_address_header: Option<String>,
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
            shutdown: ShutdownConfig::default(),
            nats: NatsConfig::default(),
            database: DatabaseConfig::default(),
            telemetry: TelemetryConfig::default(),
            sections: BTreeMap::new(),
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
            drain_ms: 0,
            client_address_header: None,
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

/// The platform's own top-level keys.
const PLATFORM_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "log",
    "http",
    "shutdown",
    "nats",
    "database",
    "telemetry",
];

/// Whether the environment variable named `key` (prefix stripped, levels split by `.`, in the
/// variable's own case: `TRIPS.SHARDS`) sets one of the `known` top-level keys.
fn is_config_key(key: &str, known: &[&str]) -> bool {
    let top = key.split('.').next().unwrap_or_default();
    known.iter().any(|k| k.eq_ignore_ascii_case(top))
}

impl Config {
    /// Defaults ← `file` ← `RICKSHAW_*` env ← `overrides` (typically the CLI flags, as a partial
    /// tree: only the keys present override), checked: the platform's keys, then every one of
    /// `sections` (the services' own); a section nobody declares is refused.
    pub fn load(
        file: Option<&Path>,
        overrides: impl Serialize,
        sections: &[SectionSpec],
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::MissingFile(path.to_owned()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // Only the config's own top-level keys: other `RICKSHAW_*` variables (the test scripts'
        // own, say) are not config.
        let known: Vec<&str> = PLATFORM_KEYS
            .iter()
            .copied()
            .chain(sections.iter().map(|s| s.name))
            .collect();
        let env = Env::prefixed("RICKSHAW_")
            .split("__")
            .filter(move |key| is_config_key(key.as_str(), &known));
        let config: Config = figment
            .merge(env)
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        if let Some(unknown) = config
            .sections
            .keys()
            .find(|key| !sections.iter().any(|s| s.name == key.as_str()))
        {
            let mut names: Vec<&str> = PLATFORM_KEYS.to_vec();
            names.extend(sections.iter().map(|s| s.name));
            return Err(ConfigError::Invalid(format!(
                "unknown key {unknown:?}; the config's keys are {}",
                names.join(", ")
            )));
        }
        for section in sections {
            (section.check)(&config)?;
        }
        Ok(config)
    }

    /// The service section `T`: its defaults, overridden by what the sources gave, validated.
    pub fn section<T: Section>(&self) -> Result<T, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(T::default()));
        if let Some(given) = self.sections.get(T::NAME) {
            figment = figment.merge(Serialized::defaults(given));
        }
        let section: T = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(format!("[{}] {e}", T::NAME)))?;
        section.validate().map_err(ConfigError::Invalid)?;
        Ok(section)
    }

    /// Replaces the section `T` (tests, and programs that build their config in code).
    pub fn set_section<T: Section>(&mut self, section: &T) {
        let value = serde_json::to_value(section).unwrap_or(serde_json::Value::Null);
        self.sections.insert(T::NAME.to_owned(), value);
    }

    /// Changes some keys of the section `T`, the others keeping their values (tests).
    pub fn edit_section<T: Section>(&mut self, edit: impl FnOnce(&mut T)) {
        let mut section = self.section::<T>().unwrap_or_default();
        edit(&mut section);
        self.set_section(&section);
    }

    /// The platform's own keys; each service's section is checked by `Config::section`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        if self.http.body_limit_bytes < 1024 {
            return invalid(format!(
                "http.body_limit_bytes = {} is below 1024",
                self.http.body_limit_bytes
            ));
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return invalid(format!(
                "telemetry.otlp_endpoint = {endpoint:?} must be an http(s) URL, e.g. http://127.0.0.1:4318"
            ));
        }
        if self.nats.tls_cert_file.is_some() != self.nats.tls_key_file.is_some() {
            return invalid(
                "nats.tls_cert_file and nats.tls_key_file go together: set both or neither"
                    .to_owned(),
            );
        }
        if self.nats.tls_cert_file.is_some() && self.nats.tls_ca_file.is_none() {
            return invalid("a NATS client certificate needs nats.tls_ca_file".to_owned());
        }
        if self.nats.user.is_some() != self.nats.password.is_some() {
            return invalid(
                "nats.user and nats.password go together: set both or neither".to_owned(),
            );
        }
        if self.nats.replicas == 0 || self.nats.replicas > 5 {
            return invalid(format!(
                "nats.replicas = {} must be 1 to 5",
                self.nats.replicas
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
        if h.drain_ms >= self.shutdown.grace_ms {
            return invalid(format!(
                "http.drain_ms = {} must be below shutdown.grace_ms = {}: the drain is part of the grace",
                h.drain_ms, self.shutdown.grace_ms
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

    /// A service's section, as a service crate would declare it.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Ticks {
        tick_ms: u64,
        strategy: String,
    }

    impl Default for Ticks {
        fn default() -> Self {
            Self {
                tick_ms: 1_000,
                strategy: "optimal".to_owned(),
            }
        }
    }

    impl Section for Ticks {
        const NAME: &'static str = "ticks";

        fn validate(&self) -> Result<(), String> {
            if self.tick_ms < 10 {
                return Err(format!("ticks.tick_ms = {} is below 10", self.tick_ms));
            }
            Ok(())
        }
    }

    fn load(file: Option<&Path>, overrides: serde_json::Value) -> Result<Config, ConfigError> {
        Config::load(file, overrides, &[SectionSpec::of::<Ticks>()])
    }

    #[test]
    fn environment_variables_are_matched_whatever_their_case() {
        // Figment hands the filter `RICKSHAW_TRIPS__SHARDS` as `TRIPS.SHARDS` and lowercases it
        // only afterwards: comparing it as is ignored every variable.
        let known = ["trips", "http"];
        assert!(is_config_key("TRIPS.SHARDS", &known));
        assert!(is_config_key("http.body_limit_bytes", &known));
        assert!(!is_config_key("TEST_DATABASE_URL", &known));
        assert!(!is_config_key("TRIPSX.SHARDS", &known));
    }

    #[test]
    fn defaults_are_valid() {
        let config = load(None, serde_json::json!({})).expect("defaults load");
        assert_eq!(config.section::<Ticks>().expect("section").tick_ms, 1_000);
        assert_eq!(config.http.body_limit_bytes, 65_536);
    }

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rickshaw.toml");
        std::fs::write(
            &path,
            "[ticks]\ntick_ms = 250\nstrategy = \"nearest\"\n[http]\nbody_limit_bytes = 2048\n",
        )
        .expect("write");
        let config =
            load(Some(&path), serde_json::json!({"ticks": {"tick_ms": 100}})).expect("loads");
        let ticks: Ticks = config.section().expect("section");
        assert_eq!(ticks.tick_ms, 100, "overrides win over the file");
        assert_eq!(ticks.strategy, "nearest", "file wins over defaults");
        assert_eq!(config.http.body_limit_bytes, 2048);
        let mut edited = config.clone();
        edited.edit_section(|t: &mut Ticks| t.tick_ms = 500);
        assert_eq!(
            edited.section::<Ticks>().expect("section"),
            Ticks {
                tick_ms: 500,
                strategy: "nearest".to_owned()
            }
        );
    }

    #[test]
    fn invalid_and_unknown_values_are_named() {
        let err = load(None, serde_json::json!({"ticks": {"tick_ms": 1}})).expect_err("rejects");
        assert!(err.to_string().contains("ticks.tick_ms"), "{err}");
        let err = load(None, serde_json::json!({"ticks": {"tick": 1}})).expect_err("rejects");
        assert!(
            err.to_string().contains("[ticks]") && err.to_string().contains("tick"),
            "{err}"
        );
        let err = load(None, serde_json::json!({"tricks": {"tick_ms": 100}})).expect_err("rejects");
        assert!(
            err.to_string().contains("tricks") && err.to_string().contains("ticks"),
            "{err}"
        );
        let err =
            load(None, serde_json::json!({"http": {"body_limit_bytes": 10}})).expect_err("rejects");
        assert!(err.to_string().contains("http.body_limit_bytes"), "{err}");
        let err = load(
            Some(Path::new("/nonexistent/rickshaw.toml")),
            serde_json::json!({}),
        )
        .expect_err("rejects");
        assert!(matches!(err, ConfigError::MissingFile(_)));
    }
}
