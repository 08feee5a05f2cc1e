"""`kubectl apply --prune -l` (the label-selected prune, with kubectl's default allowlist) against
the local server: every kind of that allowlist is served, so the prune resolves and runs."""

from __future__ import annotations

import pytest
import yaml

from tests.local.apiserver.conftest import Server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]  # each starts an API server

# kubectl 1.37's default prune allowlist (staging/src/k8s.io/kubectl/pkg/cmd/apply/prune.go)
DEFAULT_ALLOWLIST = [
    "configmaps",
    "endpoints",
    "persistentvolumeclaims",
    "pods",
    "replicationcontrollers",
    "secrets",
    "services",
    "jobs.batch",
    "cronjobs.batch",
    "ingresses.networking.k8s.io",
    "daemonsets.apps",
    "deployments.apps",
    "replicasets.apps",
    "statefulsets.apps",
    "namespaces",
    "persistentvolumes",
]


def _configmap(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "demo"}},
        "data": {"k": name},
    }


def test_apply_prune_by_label_deletes_what_is_no_longer_applied(server: Server) -> None:
    both = yaml.safe_dump_all([_configmap("kept"), _configmap("dropped")])
    server.kubectl("apply", "-f", "-", stdin=both)
    server.kubectl("create", "configmap", "unlabelled")

    out = server.kubectl(
        "apply", "--prune", "-l", "app=demo", "-f", "-", stdin=yaml.safe_dump(_configmap("kept"))
    ).stdout

    assert "configmap/dropped pruned" in out
    names = server.kubectl("get", "configmaps", "-o", "name").stdout.split()
    assert "configmap/kept" in names and "configmap/unlabelled" in names
    assert "configmap/dropped" not in names


def test_every_kind_kubectl_prunes_by_default_is_served(server: Server) -> None:
    listed = server.kubectl("get", ",".join(DEFAULT_ALLOWLIST), "-A", "-o", "name").stdout
    assert "namespace/default" in listed
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "10.88.0.5"}], "ports": [{"port": 80}]}],
    }
    server.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(endpoints))
    got = yaml.safe_load(server.kubectl("get", "endpoints", "web", "-o", "yaml").stdout)
    assert got["subsets"] == endpoints["subsets"]
