//! The deployment files, checked statically (this machine kind has no container engine and no
//! Kubernetes): `compose.yaml` against the Compose specification's schema, the `Dockerfile` with
//! hadolint, and both kustomize overlays of `deploy/k8s` rendered by `kubectl kustomize` and
//! validated against the Kubernetes schemas, every service of `MODULES` in each with probes,
//! resources, a drain-covering grace period, a disruption budget and an autoscaler
//! (`tests/clients/check_deploy.py` says what it checks).

use std::path::Path;

#[test]
fn compose_the_dockerfile_and_the_kubernetes_overlays_are_valid_and_complete() {
    let python = testkit::test_deploy_tools();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let scratch = tempfile::tempdir().expect("scratch");
    let authorization = scratch.path().join("authorization.conf");
    std::fs::write(
        &authorization,
        rickshaw::nats_users::authorization(rickshaw::MODULES),
    )
    .expect("written");
    let services: Vec<&str> = rickshaw::MODULES.iter().map(|m| m.name()).collect();
    let grace_ms = platform::Config::default().shutdown.grace_ms.to_string();
    let output = std::process::Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/check_deploy.py"))
        .arg(&root)
        .arg(&authorization)
        .arg(&grace_ms)
        .args(&services)
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success() && stdout.contains("ALL CHECKS PASSED"),
        "the deployment files failed a check:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
