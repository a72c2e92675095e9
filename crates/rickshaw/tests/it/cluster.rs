//! `scripts/cluster.sh` end to end: a 3-node NATS cluster, PostgreSQL, nginx and two instances
//! of every service; the bot through nginx while a matching and a communication instance are
//! SIGKILLed and a NATS node restarts; then every acknowledged rating is in PostgreSQL and `stop`
//! leaves nothing running.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sqlx::Row;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rickshaw");

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/cluster.sh")
}

/// Runs `cluster.sh stop` when dropped, so a failing test leaves no cluster behind.
struct Cluster {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl Cluster {
    async fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("rickshaw-cluster-")
            .tempdir()
            .expect("tempdir");
        let output = tokio::time::timeout(
            Duration::from_secs(300),
            Command::new(script())
                .arg("start")
                .env("RICKSHAW_BIN", BIN)
                .env("RICKSHAW_CLUSTER_DIR", dir.path())
                // The drill runs course traffic: one instance of each product service keeps the
                // two cores for what is under test.
                .env("RICKSHAW_PRODUCT_INSTANCES", "1")
                .stdin(Stdio::null())
                .output(),
        )
        .await
        .expect("the cluster starts within 5 minutes (nginx may be installed first)")
        .expect("cluster.sh runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let cluster = Self {
            dir,
            env: stdout
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        assert!(
            output.status.success(),
            "cluster.sh start failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let last = stdout.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("RICKSHAW_URL=http://127.0.0.1:"),
            "last line: {last}"
        );
        cluster
    }

    fn url(&self) -> &str {
        &self.env["RICKSHAW_URL"]
    }

    fn state(&self, relative: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(relative))
            .unwrap_or_else(|e| panic!("{relative}: {e}"))
            .trim()
            .to_owned()
    }

    /// `service instance pid state` lines.
    async fn status(&self) -> Vec<(String, String, u32, String)> {
        let output = Command::new(script())
            .arg("status")
            .env("RICKSHAW_CLUSTER_DIR", self.dir.path())
            .output()
            .await
            .expect("status runs");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                Some((
                    f.first()?.to_string(),
                    f.get(1)?.to_string(),
                    f.get(2)?.parse().ok()?,
                    f.get(3)?.to_string(),
                ))
            })
            .collect()
    }

    async fn run(&self, args: &[&str]) {
        let status = Command::new(script())
            .args(args)
            .env("RICKSHAW_CLUSTER_DIR", self.dir.path())
            .stdout(Stdio::null())
            .status()
            .await
            .expect("cluster.sh runs");
        assert!(status.success(), "cluster.sh {args:?} failed");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script())
            .arg("stop")
            .env("RICKSHAW_CLUSTER_DIR", self.dir.path())
            .stdout(Stdio::null())
            .status();
    }
}

fn kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -9 {pid}");
}

async fn websocket_clients(port: &str) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(r#"communication_connected_clients{transport="websocket"} "#))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Sixteen processes and a 25 s run: on a 2-core machine it must not share the cores with other
/// tests, so `scripts/test.sh` runs it on its own (`-- --ignored`) after the parallel suite.
#[tokio::test]
#[ignore = "run alone: scripts/test.sh runs it after the parallel suite"]
async fn the_cluster_survives_killed_instances_and_a_nats_restart() {
    let cluster = Cluster::start().await;
    // Let the matching instances settle: the second joins after one hold time, then they split
    // the shards.
    testkit::until_shard_owners(&cluster.env["RICKSHAW_NATS_URL"], 2).await;
    let bot = tokio::spawn(bot::run(
        bot::BotConfig {
            target: cluster.url().to_owned(),
            riders_per_sec: 10,
            drivers_per_sec: 12,
            duration: Some(Duration::from_secs(25)),
            progress_every: None,
            ..bot::BotConfig::default()
        },
        tokio_util::sync::CancellationToken::new(),
    ));

    tokio::time::sleep(Duration::from_secs(6)).await;
    let processes = cluster.status().await;
    let pid = |service: &str, instance: &str| {
        processes
            .iter()
            .find(|p| p.0 == service && p.1 == instance)
            .map(|p| p.2)
            .unwrap_or_else(|| panic!("no {service} {instance} in {processes:?}"))
    };
    // The communication instance holding the bot's socket, and a matching instance.
    let mut holder = "1";
    for instance in ["1", "2"] {
        if websocket_clients(&cluster.state(&format!("cmd/communication-{instance}.port"))).await
            >= 1.0
        {
            holder = instance;
        }
    }
    kill9(pid("communication", holder));
    kill9(pid("matching", "1"));

    tokio::time::sleep(Duration::from_secs(6)).await;
    cluster.run(&["restart", "nats", "2"]).await;

    let summary = bot.await.expect("bot task").expect("the bot runs");
    assert!(summary.invariants_hold(), "{summary}");
    assert!(summary.matched_pct >= 95.0, "{summary}");
    let c = &summary.counts;
    assert!(
        c.riders_sent >= 240 && c.riders_accepted as f64 >= 0.95 * c.riders_sent as f64,
        "{summary}"
    );
    assert!(
        summary.counts.reconnects >= 1,
        "the bot's socket was on the killed instance: {summary}"
    );
    assert!(
        summary.latency_p99_ms.is_some_and(|ms| ms < 5_000.0),
        "matching resumed within 5 s of the kill: {summary}"
    );
    let stored = summary.counts.ratings_stored;
    assert!(
        stored as f64 >= 0.98 * summary.counts.ratings_sent as f64 && stored > 0,
        "{summary}"
    );

    // Every rating the bot got a 2xx for is in PostgreSQL.
    let pool = platform::store::open_postgres(&cluster.env["RICKSHAW_DATABASE_URL"], "rating", 1)
        .await
        .expect("database");
    let row = sqlx::query("SELECT COUNT(*)::BIGINT AS n FROM ratings WHERE driver_name LIKE $1")
        .bind(format!("driver-{}-%", summary.run_id))
        .fetch_one(&pool)
        .await
        .expect("count");
    // At least: a retried rating whose first reply was lost may be stored twice (no idempotency
    // key yet), but none acknowledged is missing.
    let in_database = row.get::<i64, _>("n");
    assert!(
        in_database >= i64::try_from(stored).unwrap_or(i64::MAX),
        "{in_database} rows for {stored} acknowledged ratings"
    );
    pool.close().await;

    // stop leaves no process of the cluster running.
    let pids: Vec<u32> = cluster.status().await.iter().map(|p| p.2).collect();
    assert!(pids.len() >= 16, "{pids:?}");
    cluster.run(&["stop"]).await;
    for pid in pids {
        let alive = std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(!alive, "process {pid} still runs after stop");
    }
}
