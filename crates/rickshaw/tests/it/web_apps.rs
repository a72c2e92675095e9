//! The web apps in a real browser: headless Chromium (Debian's `chromium`) driven by
//! playwright-core (npm, pinned) runs `tests/clients/web_apps.mjs` against `rickshaw up` while the
//! product bot drives its own riders and drivers, and the course bot its requests. A rider and a driver complete a trip through the
//! pages alone, every form shows the API's message beside the field it names, the operations map
//! agrees with the API, and no page logs an error. Screenshots land in
//! `target/web-screenshots/` for review.

use std::path::Path;
use std::time::Duration;

use testkit::spawn_app;

const BOT_DRIVERS: u32 = 4;

#[tokio::test]
async fn a_rider_and_a_driver_complete_a_trip_in_the_browser_and_the_operations_map_agrees() {
    let node_dir = tokio::task::spawn_blocking(testkit::test_node_dir)
        .await
        .expect("npm");
    let app = spawn_app().await;
    let data_dir = app.config.data_dir.to_string_lossy().into_owned();
    let admin_email = "web-admin@example.com";
    crate::audit::admin_token(&app, admin_email, &["--data-dir", &data_dir]).await;

    // The bot's riders book cars; the test's trip is a premium one, so no bot driver takes it.
    let stop = tokio_util::sync::CancellationToken::new();
    let bot = tokio::spawn(bot::run_product(
        bot::ProductBotConfig {
            target: app.base_url.clone(),
            riders: 2,
            drivers: BOT_DRIVERS,
            duration: Some(Duration::from_secs(600)),
            step_delay: Duration::from_millis(300),
            drain: Duration::from_secs(1),
            progress_every: None,
            packages: vec!["car".to_owned()],
            ..bot::ProductBotConfig::default()
        },
        stop.clone(),
    ));

    // And the course bot, for the map's course panel.
    let course = tokio::spawn(bot::run(
        bot::BotConfig {
            target: app.base_url.clone(),
            riders_per_sec: 5,
            drivers_per_sec: 5,
            duration: None,
            drain: Duration::from_millis(100),
            progress_every: None,
            ..bot::BotConfig::default()
        },
        stop.clone(),
    ));

    let script = node_dir.join("web_apps.mjs");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/web_apps.mjs"),
        &script,
    )
    .expect("the script copied beside its node_modules");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/web-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let run = tokio::time::timeout(
        Duration::from_secs(240),
        tokio::process::Command::new("node")
            .arg(&script)
            .arg(&app.base_url)
            .arg(admin_email)
            .arg(crate::audit::PASSWORD)
            .arg(BOT_DRIVERS.to_string())
            .arg(&shots)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser test ends within 4 minutes")
    .expect("node runs");
    stop.cancel();
    let _ = bot.await;
    let _ = course.await;
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(
        run.status.success() && stdout.contains("ALL CHECKS PASSED"),
        "the browser test failed:\n{stdout}"
    );
    for page in ["home", "docs", "rider", "rider-phone", "driver", "ops"] {
        let shot = shots.join(format!("{page}.png"));
        let size = std::fs::metadata(&shot).map_or(0, |m| m.len());
        assert!(size > 10_000, "a screenshot of {page}: {}", shot.display());
    }
}
