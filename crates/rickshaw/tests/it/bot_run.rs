//! The README's run command and the bot, as separate processes of the real binary: 20 s of
//! traffic, the course invariants, then SIGINT, a restart, and every acknowledged rating still
//! there. And the product bot (`bot::run_product`) driving whole trips through `/v1` of the
//! embedded system.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use sqlx::Row;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_rickshaw");

struct Up {
    child: Child,
    url: String,
}

async fn up(data_dir: &std::path::Path) -> Up {
    let mut child = Command::new(BIN)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("rickshaw up starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("stderr readable") {
            if let Some(rest) = line.split("Rickshaw is up at ").nth(1) {
                return rest.split_whitespace().next().expect("a URL").to_owned();
            }
        }
        panic!("rickshaw up exited before announcing its address");
    })
    .await
    .expect("rickshaw up announces its address within 30 s");
    // Keep draining its logs so the pipe never blocks it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Up { child, url }
}

async fn interrupt(mut up: Up) {
    let pid = up.child.id().expect("running").to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(20), up.child.wait())
        .await
        .expect("rickshaw stops within 20 s of SIGINT")
        .expect("exit status");
    assert!(exit.success(), "rickshaw exited with {exit} after SIGINT");
}

#[tokio::test]
async fn twenty_seconds_of_bot_traffic_keep_every_invariant_and_every_rating() {
    let dir = tempfile::tempdir().expect("tempdir");
    let system = up(dir.path()).await;
    let output = Command::new(BIN)
        .args([
            "bot",
            "--target",
            &system.url,
            "--duration",
            "20s",
            "--riders-per-sec",
            "10",
            "--drivers-per-sec",
            "10",
            "--json",
            "--min-matched-pct",
            "95",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("the bot runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "bot printed no JSON summary; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(output.status.success(), "bot failed its checks: {summary}");
    let n = |key: &str| {
        summary[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {summary}"))
    };
    assert!(n("riders_accepted") >= 190.0, "{summary}");
    assert!(n("matched_pct") >= 95.0, "{summary}");
    assert_eq!(
        n("fare_mismatches"),
        0.0,
        "every fare is 2 × the trip distance"
    );
    assert_eq!(n("drivers_twice_in_a_tick"), 0.0);
    assert_eq!(n("riders_matched_twice"), 0.0);
    assert_eq!(n("request_errors"), 0.0, "{summary}");
    let stored = n("ratings_stored");
    assert!(stored > 0.0);
    assert_eq!(stored, n("ratings_sent"), "every rating got a 2xx");

    interrupt(system).await;
    let system = up(dir.path()).await;
    let run_id = summary["run_id"].as_str().expect("run id");
    let pool = platform::store::open_sqlite(&dir.path().join("rating.db"))
        .await
        .expect("opens");
    let pattern = format!("driver-{run_id}-%");
    let row = sqlx::query("SELECT COUNT(*) AS n FROM ratings WHERE driver_name LIKE ?")
        .bind(&pattern)
        .fetch_one(&pool)
        .await
        .expect("counts");
    assert_eq!(
        row.get::<i64, _>("n") as f64,
        stored,
        "every acknowledged rating survived the restart"
    );
    let row = sqlx::query("SELECT driver_name, COUNT(*) AS n FROM ratings WHERE driver_name LIKE ? GROUP BY driver_name LIMIT 1")
        .bind(&pattern)
        .fetch_one(&pool)
        .await
        .expect("a rated driver");
    let driver: String = row.get("driver_name");
    pool.close().await;
    let reply: Value = reqwest::get(format!("{}/ratings/{driver}", system.url))
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        reply["count"].as_i64(),
        Some(row.get::<i64, _>("n")),
        "{reply}"
    );
    interrupt(system).await;
}

#[tokio::test]
async fn the_product_bot_completes_trips_and_keeps_every_invariant() {
    let app = testkit::spawn_app().await;
    let config = bot::ProductBotConfig {
        target: app.base_url.clone(),
        riders: 4,
        drivers: 4,
        duration: Some(Duration::from_secs(6)),
        step_delay: Duration::from_millis(100),
        drain: Duration::from_secs(10),
        progress_every: None,
        ..bot::ProductBotConfig::default()
    };
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        bot::run_product(config, tokio_util::sync::CancellationToken::new()),
    )
    .await
    .expect("the product bot ends within 60 s")
    .expect("the product bot runs");
    eprintln!("{summary}");
    assert_eq!(
        (summary.riders_ready, summary.drivers_ready),
        (4, 4),
        "{summary}"
    );
    let c = &summary.counts;
    assert!(c.trips_completed > 0, "{summary}");
    assert!(summary.completed_per_sec > 0.0, "{summary}");
    assert!(c.trips_booked >= c.trips_completed, "{summary}");
    assert!(
        c.offers_received >= c.offers_accepted + c.offers_declined,
        "{summary}"
    );
    assert!(summary.invariants_hold(), "{summary}");
    assert_eq!(summary.checks.fare_mismatches, 0, "{summary}");
    // Every completed trip was captured once for its fare and earned its driver their share;
    // both sides rated it.
    assert_eq!(
        (summary.checks.payments_wrong, summary.checks.earnings_wrong),
        (0, 0),
        "{summary}"
    );
    assert!(c.ratings_given >= c.trips_completed, "{summary}");
    assert_eq!(summary.checks.overlapping_assignments, 0, "{summary}");
    assert_eq!(summary.server_errors, 0, "no 5xx: {summary}");
    assert_eq!(c.transport_errors, 0, "{summary}");
    assert!(summary.completed_p50_ms.is_some(), "{summary}");
    app.stop().await;
}
