//! The project's own benchmarks as the binary runs them, where they start processes of their own.

use serde_json::Value;

/// `bench dispatch --provider-apart`: the card provider in a `rickshaw up` of its own, the bench's
/// payment service holding fares and capturing them over loopback, the provider's webhooks coming
/// back to it, and each process's CPU counted.
#[tokio::test]
async fn the_dispatch_bench_runs_the_card_provider_in_a_process_of_its_own() {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_rickshaw"))
        .args(
            "bench dispatch --provider-apart --format json --drivers 150 --riders 200 --rate 40 \
             --duration 4s --step 50ms --dispatch-every 200ms --position-every 1s"
                .split_whitespace(),
        )
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(180), run)
        .await
        .expect("the bench ends within 3 minutes")
        .expect("the bench runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    let count = |field: &str| {
        report[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field}: {report}"))
    };
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    assert!(count("booked") >= 100, "{report}");
    assert!(count("completed") > 0, "{report}");
    // Every booking's hold was asked of the other process, and its webhooks reached this one…
    assert!(count("authorizations") >= count("booked"), "{report}");
    assert!(count("webhooks") > 0, "{report}");
    // …and not by this process's own provider, whose database took only its idle polling.
    let here = report["group_commits"]["provider-db"]["transactions"]
        .as_u64()
        .unwrap_or(0);
    assert!(here < count("booked"), "{report}");
    if cfg!(target_os = "linux") {
        let provider = report["provider_cpu_secs"]
            .as_f64()
            .expect("the provider's CPU");
        let here = report["cpu_secs"].as_f64().expect("this process's CPU");
        assert!(provider > 0.0 && here > 0.0, "{report}");
    }
}
