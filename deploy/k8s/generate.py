#!/usr/bin/env python3
"""Writes deploy/k8s/base/services.yaml: for every Rickshaw service a Deployment (the one image,
`rickshaw serve --services NAME`), a Service, a PodDisruptionBudget and a HorizontalPodAutoscaler,
all alike but for the name and the resources. Kustomize cannot loop, so this small generator
does, and its output is committed; the test command runs `generate.py --check` (the file is
current) and checks the list is the binary's own (`rickshaw::MODULES`).

usage: deploy/k8s/generate.py [--check]
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "base", "services.yaml")

# name: (cpu request, memory request, memory limit, why). Identity hashes passwords (Argon2id,
# ~19 MiB and ~150 ms of a core each); matching and trip solve batches; the rest mostly wait.
SERVICES = {
    "identity": ("500m", "256Mi", "768Mi", "password hashing"),
    "pricing": ("100m", "64Mi", "256Mi", ""),
    "provider": ("100m", "64Mi", "256Mi", ""),
    "payment": ("100m", "96Mi", "384Mi", ""),
    "mail": ("50m", "64Mi", "256Mi", ""),
    "supply": ("200m", "96Mi", "384Mi", "every position of every driver"),
    "rider": ("100m", "64Mi", "256Mi", ""),
    "trip": ("500m", "192Mi", "768Mi", "dispatch rounds, the fleet mirror"),
    "rating": ("100m", "64Mi", "256Mi", ""),
    "matching": ("500m", "256Mi", "1Gi", "the geo index and batched assignment"),
    "communication": ("250m", "256Mi", "1Gi", "every socket"),
    "operations": ("200m", "128Mi", "512Mi", "the live city view"),
    "audit": ("100m", "96Mi", "384Mi", ""),
    "gateway": ("250m", "128Mi", "512Mi", "the public edge"),
}

# The drain: a preStop pause while endpoints drop the pod, then SIGTERM and shutdown.grace_ms
# (10 s) for in-flight work; the grace period covers both with room to spare.
PRE_STOP_S = 5
GRACE_S = 30


def labels(name):
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "rickshaw"}


def deployment(name, cpu, memory, memory_limit):
    probe = lambda path, period, failures: {  # noqa: E731
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": labels(name),
                    "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "/metrics"},
                },
                "spec": {
                    "terminationGracePeriodSeconds": GRACE_S,
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": name,
                            "image": "rickshaw",
                            "args": ["serve", "--services", name],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "envFrom": [{"configMapRef": {"name": "rickshaw-config"}}],
                            "env": [
                                {"name": "RICKSHAW_NATS__USER", "value": name},
                                {"name": "RICKSHAW_NATS__PASSWORD", "valueFrom": {"secretKeyRef": {"name": "rickshaw-nats", "key": name}}},
                                {"name": "RICKSHAW_DATABASE__URL", "valueFrom": {"secretKeyRef": {"name": "rickshaw-secrets", "key": "database-url"}}},
                                {"name": "RICKSHAW_IDENTITY__SIGNING_KEY", "valueFrom": {"secretKeyRef": {"name": "rickshaw-secrets", "key": "signing-key"}}},
                            ],
                            "startupProbe": probe("/healthz", 2, 30),
                            "readinessProbe": probe("/readyz", 2, 2),
                            "livenessProbe": probe("/healthz", 10, 3),
                            "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_S)]}}},
                            "resources": {
                                "requests": {"cpu": cpu, "memory": memory},
                                "limits": {"cpu": "2", "memory": memory_limit},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/rickshaw"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
        },
    }


def service(name):
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {"selector": {"app.kubernetes.io/name": name}, "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]},
    }


def budget(name):
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": name}}},
    }


def autoscaler(name):
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 2,
            "maxReplicas": 6,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
        },
    }


def yaml(value, indent=0):
    """A small YAML emitter for dicts, lists and scalars (scalars as JSON, which YAML reads)."""
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(yaml(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {json.dumps(item)}")
    else:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = yaml(item, indent + 1)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines.extend(inner[1:])
            else:
                lines.append(f"{pad}- {json.dumps(item)}")
    return lines


def render():
    docs = ["# Generated by deploy/k8s/generate.py: edit it, not this file."]
    for name, (cpu, memory, memory_limit, _why) in SERVICES.items():
        for doc in (deployment(name, cpu, memory, memory_limit), service(name), budget(name), autoscaler(name)):
            docs.append("---\n" + "\n".join(yaml(doc)))
    return "\n".join(docs) + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        current = open(OUT).read() if os.path.exists(OUT) else ""
        if current != text:
            sys.exit(f"{OUT} is not what deploy/k8s/generate.py writes; run it")
        print(" ".join(SERVICES))
    else:
        with open(OUT, "w") as f:
            f.write(text)
