//! The product API fuzzed from its own OpenAPI document by schemathesis (PyPI), as a rider, a
//! driver and an admin, a few thousand generated requests each: never a 5xx, every status one the
//! spec documents for the operation, every body the schema it documents. The seed is fixed, so a
//! failure reproduces (schemathesis prints the `curl` of each).

use std::process::Stdio;

use testkit::spawn_app;

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_nothing_undocumented() {
    let schemathesis = tokio::task::spawn_blocking(testkit::test_schemathesis)
        .await
        .expect("schemathesis");
    let app = spawn_app().await;
    let (rider, _) = app.account("rider").await;
    let (driver, _) = app.account("driver").await;
    let data_dir = app.config.data_dir.to_string_lossy().into_owned();
    let admin =
        crate::audit::admin_token(&app, "fuzz-admin@example.com", &["--data-dir", &data_dir]).await;
    let spec = app.url("/openapi.json");
    // schemathesis keeps a cache where it runs: a scratch directory, not the repository.
    let scratch = tempfile::tempdir().expect("scratch");
    for (role, token) in [("rider", rider), ("driver", driver), ("admin", admin)] {
        let output = tokio::process::Command::new(&schemathesis)
            .args(["run", &spec])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,response_schema_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "120",
                // One worker: with two threads, Hypothesis's lambda parsing trips CPython 3.11's
                // AST recursion check ("AST constructor recursion depth mismatch"), an error of
                // the tool, not of Rickshaw.
                "--workers",
                "1",
                "--seed",
                "20261129",
                "--no-color",
                "--header",
            ])
            .arg(format!("Authorization: Bearer {token}"))
            .current_dir(scratch.path())
            .stdin(Stdio::null())
            .output()
            .await
            .expect("schemathesis runs");
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "schemathesis as {role} found failures:\n{report}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // The summary line: "5605 generated, 5605 passed".
        let generated = report
            .lines()
            .filter_map(|l| l.trim().split_once(" generated,"))
            .find_map(|(n, _)| n.parse::<u32>().ok())
            .unwrap_or(0);
        assert!(
            generated >= 1_000,
            "as {role}: only {generated} cases generated:\n{report}"
        );
    }
    app.stop().await;
}
