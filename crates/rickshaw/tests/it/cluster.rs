//! `scripts/cluster.sh` end to end, two drills:
//! - course: a 3-node NATS cluster, PostgreSQL, nginx and two instances of every service; the bot
//!   through nginx while a matching and a communication instance are SIGKILLed and a NATS node
//!   restarts; then every acknowledged rating is in PostgreSQL and `stop` leaves nothing running;
//! - product: two dispatching trip instances sharing the shards; the product bot through nginx
//!   while one of them is SIGKILLed: no trip offered to two drivers at once, no driver holding two
//!   trips, and every searching trip offered again within 5 s.

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
    /// `cluster.sh start` with `env` (instance counts) added.
    async fn start(env: &[(&str, &str)]) -> Self {
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
                .envs(env.iter().copied())
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

    async fn pid(&self, service: &str, instance: &str) -> u32 {
        let processes = self.status().await;
        processes
            .iter()
            .find(|p| p.0 == service && p.1 == instance)
            .map(|p| p.2)
            .unwrap_or_else(|| panic!("no {service} {instance} in {processes:?}"))
    }

    /// With `RICKSHAW_KEEP_CLUSTER_LOGS=<dir>`, copies the processes' logs there (to read after a
    /// failed drill: the state directory goes with the test).
    fn keep_logs_if_asked(&self) {
        if let Some(to) = std::env::var_os("RICKSHAW_KEEP_CLUSTER_LOGS") {
            let _ = std::process::Command::new("cp")
                .arg("-r")
                .arg(self.dir.path().join("logs"))
                .arg(to)
                .status();
        }
    }

    /// After a failed drill (the test is panicking): the processes' warnings and errors on stderr,
    /// so a failure in CI, whose state directory is gone, says what the services saw. nginx's
    /// refused connects are left out: a stopped instance refuses by design.
    fn print_trouble_if_failed(&self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("logs")) else {
            return;
        };
        let mut shown = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            for line in text.lines() {
                let trouble = line.contains(r#""level":"ERROR""#)
                    || line.contains(r#""level":"WARN""#)
                    || ((line.contains("[error]") || line.contains("[crit]"))
                        && !line.contains("connect() failed (111"));
                if trouble && shown < 300 {
                    eprintln!("{name}: {line}");
                    shown += 1;
                }
            }
        }
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
        self.keep_logs_if_asked();
        self.print_trouble_if_failed();
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

/// The value of the metric line starting with `name ` on the process at `port` (0 if absent).
async fn metric(port: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn websocket_clients(port: &str) -> f64 {
    metric(
        port,
        r#"communication_connected_clients{transport="websocket"}"#,
    )
    .await
}

/// Sixteen processes and a 25 s run: on a 2-core machine it must not share the cores with other
/// tests, so `scripts/test.sh` runs it on its own (`-- --ignored`) after the parallel suite.
#[tokio::test]
#[ignore = "run alone: scripts/test.sh runs it after the parallel suite"]
async fn the_cluster_survives_killed_instances_and_a_nats_restart() {
    // The drill runs course traffic: one instance of each product service keeps the two cores
    // for what is under test.
    let cluster = Cluster::start(&[("RICKSHAW_PRODUCT_INSTANCES", "1")]).await;
    // Let the matching instances settle: the second joins after one hold time, then they split
    // the shards.
    testkit::until_shard_owners(
        &cluster.env["RICKSHAW_NATS_URL"],
        testkit::MATCHING_LEASES,
        2,
    )
    .await;
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
    // The communication instance holding the bot's socket, and a matching instance.
    let mut holder = "1";
    for instance in ["1", "2"] {
        if websocket_clients(&cluster.state(&format!("cmd/communication-{instance}.port"))).await
            >= 1.0
        {
            holder = instance;
        }
    }
    kill9(cluster.pid("communication", holder).await);
    kill9(cluster.pid("matching", "1").await);

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

/// Product dispatch on two trip instances (one of everything else, to spare the cores), the
/// product bot through nginx, one trip instance SIGKILLed mid-run: its shards pass to the other.
#[tokio::test]
#[ignore = "run alone: scripts/test.sh runs it after the parallel suite"]
async fn product_dispatch_survives_a_killed_trip_instance() {
    let cluster = Cluster::start(&[
        ("RICKSHAW_INSTANCES", "1"),
        ("RICKSHAW_PRODUCT_INSTANCES", "2"),
    ])
    .await;
    testkit::until_shard_owners(
        &cluster.env["RICKSHAW_NATS_URL"],
        testkit::DISPATCH_LEASES,
        2,
    )
    .await;
    // Twice as many drivers as riders: a searching trip always has a free driver in reach, so
    // any wait for an offer is the dispatcher's.
    let bot = tokio::spawn(bot::run_product(
        bot::ProductBotConfig {
            target: cluster.url().to_owned(),
            riders: 12,
            drivers: 24,
            duration: Some(Duration::from_secs(24)),
            step_delay: Duration::from_millis(400),
            drain: Duration::from_secs(15),
            progress_every: None,
            ..bot::ProductBotConfig::default()
        },
        tokio_util::sync::CancellationToken::new(),
    ));
    // Setup (sign-ups, logins) takes a few seconds; then trips run for 24 s.
    tokio::time::sleep(Duration::from_secs(14)).await;
    // Both instances were dispatching the bot's trips (their shards hold some of its area).
    for instance in ["1", "2"] {
        let offers = metric(
            &cluster.state(&format!("cmd/trip-{instance}.port")),
            "trip_offers_total",
        )
        .await;
        assert!(
            offers >= 1.0,
            "trip {instance} offered no trip before the kill"
        );
    }
    kill9(cluster.pid("trip", "1").await);
    let summary = tokio::time::timeout(Duration::from_secs(180), bot)
        .await
        .expect("the product bot ends within 3 minutes")
        .expect("bot task")
        .expect("the product bot runs");
    eprintln!("{summary}");
    assert_eq!(
        (summary.riders_ready, summary.drivers_ready),
        (12, 24),
        "{summary}"
    );
    assert!(summary.invariants_hold(), "{summary}");
    assert_eq!(summary.checks.double_offers, 0, "{summary}");
    assert_eq!(summary.checks.overlapping_assignments, 0, "{summary}");
    let c = &summary.counts;
    assert!(c.trips_completed >= 20, "{summary}");
    // A trip whose shard nobody took over would search until the rider gave up.
    assert_eq!(
        (c.abandoned, c.no_drivers_found, c.cancelled),
        (0, 0, 0),
        "{summary}"
    );
    assert!(
        summary.offer_wait_max_ms.is_some_and(|ms| ms < 5_000.0),
        "every searching trip was offered again within 5 s: {summary}"
    );
    // Calls in flight to the killed instance may fail (503, retried by the bot); nothing else.
    assert!(summary.server_errors <= 10, "{summary}");

    // Every completed trip was captured exactly once (through nginx to the provider), and the
    // ledger balances.
    let pool = platform::store::open_postgres(&cluster.env["RICKSHAW_DATABASE_URL"], "payment", 1)
        .await
        .expect("database");
    let mut captured = 0;
    for _ in 0..100 {
        captured = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*)::BIGINT FROM payments WHERE status = 'captured' AND charge_kind = 'fare'",
        )
        .fetch_one(&pool)
        .await
        .expect("count");
        if captured >= i64::try_from(c.trips_completed).unwrap_or(i64::MAX) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        captured,
        i64::try_from(c.trips_completed).unwrap_or(i64::MAX),
        "one capture per completed trip: {summary}"
    );
    let sum: Option<i64> =
        sqlx::query_scalar("SELECT CAST(SUM(amount) AS BIGINT) FROM ledger_entries")
            .fetch_one(&pool)
            .await
            .expect("sum");
    assert_eq!(sum, Some(0), "the ledger balances");
    pool.close().await;

    // A receipt per paid trip (no SMTP server in the cluster: .eml files in its state directory).
    let completed = usize::try_from(c.trips_completed).unwrap_or(usize::MAX);
    let mut receipts = 0;
    for _ in 0..100 {
        receipts = std::fs::read_dir(cluster.dir.path().join("mail"))
            .map(|entries| entries.count())
            .unwrap_or(0);
        if receipts >= completed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        receipts, completed,
        "one receipt per completed trip: {summary}"
    );
}

/// A rolling restart under load: two instances of every service, the course bot and the product
/// bot through nginx, while `cluster.sh roll` restarts every instance of every service in turn
/// (SIGTERM: readiness false, drain, exit; then start and ready). Nothing may be lost: no failed
/// request, no notice that never reached its socket (replay after a reconnect fills any gap), no
/// broken invariant.
#[tokio::test]
#[ignore = "run alone: scripts/test.sh runs it after the parallel suite"]
async fn a_rolling_restart_drops_nothing() {
    let cluster = Cluster::start(&[]).await;
    testkit::until_shard_owners(
        &cluster.env["RICKSHAW_NATS_URL"],
        testkit::MATCHING_LEASES,
        2,
    )
    .await;
    testkit::until_shard_owners(
        &cluster.env["RICKSHAW_NATS_URL"],
        testkit::DISPATCH_LEASES,
        2,
    )
    .await;
    let stop = tokio_util::sync::CancellationToken::new();
    // The course bot in 20 s runs, back to back until the roll is over: each run drains (its last
    // riders matched and fared) before it is summarised.
    let course = tokio::spawn({
        let (url, stop) = (cluster.url().to_owned(), stop.clone());
        async move {
            let mut summaries = Vec::new();
            while !stop.is_cancelled() {
                let config = bot::BotConfig {
                    target: url.clone(),
                    riders_per_sec: 4,
                    drivers_per_sec: 5,
                    duration: Some(Duration::from_secs(20)),
                    progress_every: None,
                    ..bot::BotConfig::default()
                };
                let summary = bot::run(config, tokio_util::sync::CancellationToken::new())
                    .await
                    .expect("the course bot runs");
                summaries.push(summary);
            }
            summaries
        }
    });
    // Twice as many drivers as riders: every trip finds a driver, so any trip not completed is
    // the roll's doing.
    let product = tokio::spawn(bot::run_product(
        bot::ProductBotConfig {
            target: cluster.url().to_owned(),
            riders: 8,
            drivers: 16,
            duration: None,
            end_booking: stop.clone(),
            step_delay: Duration::from_millis(400),
            progress_every: None,
            ..bot::ProductBotConfig::default()
        },
        tokio_util::sync::CancellationToken::new(),
    ));
    // Sign-ups and logins first, then a few trips before the roll begins.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let rolled = tokio::time::timeout(
        Duration::from_secs(600),
        Command::new(script())
            .arg("roll")
            .env("RICKSHAW_CLUSTER_DIR", cluster.dir.path())
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("the roll ends within 10 minutes")
    .expect("cluster.sh runs");
    let roll_log = String::from_utf8_lossy(&rolled.stdout).into_owned();
    assert!(
        rolled.status.success(),
        "cluster.sh roll failed:\n{roll_log}\n{}",
        String::from_utf8_lossy(&rolled.stderr)
    );
    eprintln!("{roll_log}");
    // Trips booked during the last restarts run to their end.
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.cancel();
    let course = course.await.expect("course bot task");
    let product = tokio::time::timeout(Duration::from_secs(120), product)
        .await
        .expect("the product bot ends within 2 minutes")
        .expect("product bot task")
        .expect("the product bot runs");
    for summary in &course {
        eprintln!("{summary}");
    }
    eprintln!("{product}");

    // Every service instance was restarted (two of each).
    let restarted = roll_log
        .lines()
        .filter(|l| l.ends_with("restarted and ready"))
        .count();
    assert!(restarted >= 28, "{roll_log}");
    // The course: every request answered, every rider matched and fared, every rating stored.
    assert!(course.len() >= 3, "the roll outlasted three course runs");
    for summary in &course {
        let c = &summary.counts;
        assert!(summary.invariants_hold(), "{summary}");
        assert_eq!(summary.checks.request_errors, 0, "{summary}");
        assert!(
            c.riders_sent >= 60 && c.riders_accepted == c.riders_sent,
            "{summary}"
        );
        assert!(summary.matched_pct >= 99.0, "{summary}");
        assert!(
            c.ratings_stored == c.ratings_sent && c.ratings_sent > 0,
            "{summary}"
        );
    }
    // The product: no failed request, no notice lost, every trip completed.
    let p = &product.counts;
    assert_eq!(
        (product.riders_ready, product.drivers_ready),
        (8, 16),
        "{product}"
    );
    assert!(product.invariants_hold(), "{product}");
    assert_eq!(product.server_errors, 0, "{product}");
    assert_eq!(product.checks.missed_notices, 0, "{product}");
    assert!(p.trips_completed >= 40, "{product}");
    assert_eq!((p.abandoned, p.no_drivers_found), (0, 0), "{product}");
}
