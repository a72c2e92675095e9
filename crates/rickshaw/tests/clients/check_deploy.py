"""Checks the deployment files statically (no container engine or cluster runs here):

  python check_deploy.py <repo root> <nats authorization file> <grace ms> <service> [<service> …]

- compose.yaml against the Compose specification's JSON schema (the one docker-compose 1.29.2
  ships), with a container for every service, each as its own NATS user, and
  deploy/compose/authorization.conf exactly what `rickshaw nats-users` prints;
- the Dockerfile with hadolint (no warning), a non-root user and a health check;
- deploy/k8s: generate.py's output current and its services the binary's; each overlay rendered
  by `kubectl kustomize` and valid against the Kubernetes schemas (kubernetes-validate, strict);
  every service with probes on /readyz and /healthz, requests and limits, a preStop pause and a
  grace period covering it and the drain, a PodDisruptionBudget and an autoscaler;
- deploy/prometheus: `promtool check rules` and `promtool test rules`, every alert tested firing
  and quiet; every metric the alerts and the Grafana dashboard (deploy/grafana) use is one the
  code records.

Prints one line per check; exits 1 at the first that fails.
"""
import json
import os
import re
import subprocess
import sys
from importlib import resources

import jsonschema
import yaml

root, authorization_file, grace_ms, *services = sys.argv[1:]
grace_s = int(grace_ms) / 1000
bin_dir = os.path.dirname(sys.executable)


def check(condition, message):
    if not condition:
        sys.exit(f"check failed: {message}")
    print(f"ok: {message}")


def run(*command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


# Compose.
schema = json.loads(resources.files("compose").joinpath("config/compose_spec.json").read_text())
compose = yaml.safe_load(open(os.path.join(root, "compose.yaml")))
errors = sorted(jsonschema.Draft201909Validator(schema).iter_errors(compose), key=str)
check(not errors, "compose.yaml follows the Compose specification" + "".join(f"\n  {e.message} at {list(e.path)}" for e in errors[:5]))
for name in services:
    container = compose["services"].get(name)
    check(container is not None and container["command"] == ["serve", "--services", name], f"compose runs {name} as `serve --services {name}`")
    check(container["environment"]["RICKSHAW_NATS__USER"] == name, f"compose: {name} is its own NATS user")
for dependency in ["nats-1", "nats-2", "nats-3", "postgres", "nginx"]:
    check(dependency in compose["services"], f"compose runs {dependency}")
expected = open(authorization_file).read()
check(open(os.path.join(root, "deploy/compose/authorization.conf")).read() == expected, "deploy/compose/authorization.conf is what `rickshaw nats-users` prints")

# The Dockerfile.
dockerfile = os.path.join(root, "Dockerfile")
lint = run(os.path.join(bin_dir, "hadolint"), "--failure-threshold", "warning", dockerfile)
check(lint.returncode == 0, f"hadolint finds nothing in the Dockerfile {lint.stdout}{lint.stderr}")
text = open(dockerfile).read()
check("\nUSER 10001" in text and "\nHEALTHCHECK" in text, "the image runs as a non-root user with a health check")

# Kubernetes.
generated = run(sys.executable, os.path.join(root, "deploy/k8s/generate.py"), "--check")
check(generated.returncode == 0, f"deploy/k8s/base/services.yaml is current {generated.stderr}")
check(sorted(generated.stdout.split()) == sorted(services), f"deploy/k8s has the binary's services: {generated.stdout.strip()}")
for overlay, replicas in [("small", 1), ("scaled", 3)]:
    rendered = run("kubectl", "kustomize", os.path.join(root, "deploy/k8s/overlays", overlay))
    check(rendered.returncode == 0, f"kubectl kustomize renders the {overlay} overlay {rendered.stderr}")
    path = os.path.join(root, "target", f"k8s-{overlay}.yaml")
    with open(path, "w") as f:
        f.write(rendered.stdout)
    valid = run(os.path.join(bin_dir, "kubernetes-validate"), "--strict", "--quiet", "--kubernetes-version", "1.30.0", path)
    check(valid.returncode == 0 and "ERROR" not in valid.stdout, f"the {overlay} overlay validates against the Kubernetes 1.30 schemas {valid.stdout[-2000:]}{valid.stderr[-2000:]}")
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    kinds = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for name in services:
        deployment = kinds.get(("Deployment", name))
        check(deployment is not None, f"{overlay}: a Deployment of {name}")
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        check(deployment["spec"]["replicas"] == replicas, f"{overlay}: {name} has {replicas} replicas")
        check(container["readinessProbe"]["httpGet"]["path"] == "/readyz" and container["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{overlay}: {name} is probed on /readyz and /healthz")
        check(all(k in container["resources"].get(side, {}) for side in ["requests", "limits"] for k in ["cpu", "memory"]), f"{overlay}: {name} has requests and limits")
        pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
        check(spec["terminationGracePeriodSeconds"] >= pause + grace_s + 5, f"{overlay}: {name}'s grace period ({spec['terminationGracePeriodSeconds']} s) covers the preStop pause ({pause} s) and the drain ({grace_s:g} s)")
        check(("PodDisruptionBudget", name) in kinds and ("HorizontalPodAutoscaler", name) in kinds and ("Service", name) in kinds, f"{overlay}: {name} has a Service, a PodDisruptionBudget and an autoscaler")
        check(spec["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"], f"{overlay}: {name} runs as non-root on a read-only root")
    check(("NetworkPolicy", "default-deny") in kinds, f"{overlay}: traffic is denied unless a policy allows it")
# Alerts and the dashboard.
prometheus = os.path.join(root, "deploy/prometheus")
for command in (["check", "rules", "alerts.yaml"], ["test", "rules", "alerts_test.yaml"]):
    promtool = run("promtool", *command, cwd=prometheus)
    check(promtool.returncode == 0, f"promtool {' '.join(command)} {promtool.stdout[-1500:]}{promtool.stderr[-1500:]}")
rules = [r for g in yaml.safe_load(open(os.path.join(prometheus, "alerts.yaml")))["groups"] for r in g["rules"]]
tests = yaml.safe_load(open(os.path.join(prometheus, "alerts_test.yaml")))["tests"]
for rule in rules:
    cases = [c for t in tests for c in t.get("alert_rule_test", []) if c["alertname"] == rule["alert"]]
    check(any(c["exp_alerts"] for c in cases) and any(not c["exp_alerts"] for c in cases), f"{rule['alert']} has a test where it fires and one where it does not")
dashboard = json.load(open(os.path.join(root, "deploy/grafana/rickshaw.json")))
exprs = [r["expr"] for r in rules] + [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
sources = ""
for directory, _, files in os.walk(os.path.join(root, "crates")):
    sources += "".join(open(os.path.join(directory, f)).read() for f in files if f.endswith(".rs"))
FUNCTIONS = {"histogram_quantile", "__rate_interval"}
for expr in exprs:
    for name in set(re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", expr)) - FUNCTIONS:
        metric = re.sub(r"_(bucket|count|sum)$", "", name)
        check(f'"{metric}"' in sources, f"{metric} (in `{expr.split(chr(10))[0].strip()}`…) is a metric the code records")
print("ALL CHECKS PASSED")
