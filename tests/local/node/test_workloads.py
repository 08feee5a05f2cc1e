"""Workloads on the real local node, driven with real kubectl: a Deployment's pods run, scale,
roll to a new template, roll back and are collected with it; a DaemonSet's pod lands on the
node and rolls; a Service gets a cluster IP and an EndpointSlice of the running pods' IPs; a
PodDisruptionBudget counts them."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from kvd.local.apiserver.workloads.services import SERVICE_CIDR
from tests.local.node.conftest import Cluster
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]  # a local cluster

Json = dict[str, Any]

MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: httpd
        image: busybox
        command: [busybox, httpd, -f, -p, "8080"]
        env: [{name: VERSION, value: "1"}]
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: web, port: 80, targetPort: http}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
"""

DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - {name: c, image: busybox, command: [sleep, "3600"], env: [{name: VERSION, value: "1"}]}
"""


def _get(cluster: Cluster, *what: str) -> Json:
    found: Json = json.loads(cluster.kubectl("get", *what, "-o", "json").stdout)
    return found


def _running(cluster: Cluster, label: str) -> list[Json]:
    pods = _get(cluster, "pods", "-l", label)["items"]
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"
    ]


def _versions(cluster: Cluster, label: str) -> list[str]:
    pods = [p for p in _get(cluster, "pods", "-l", label)["items"]]
    return sorted(p["spec"]["containers"][0]["env"][0]["value"] for p in pods)


def _rollout(cluster: Cluster, what: str) -> str:
    return cluster.kubectl("rollout", "status", what, "--timeout=120s", timeout=150).stdout


def test_deployment_service_and_budget(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=MANIFESTS)
    assert 'deployment "web" successfully rolled out' in _rollout(cluster, "deploy/web")
    pods = _running(cluster, "app=web")
    assert len(pods) == 2
    assert {p["spec"]["nodeName"] for p in pods} == {cluster.node_name}

    svc = _get(cluster, "svc/web")["spec"]
    assert ipaddress.ip_address(svc["clusterIP"]) in SERVICE_CIDR

    def endpoints() -> dict[str, bool]:
        slices = _get(cluster, "endpointslices", "-l", "kubernetes.io/service-name=web")["items"]
        return {
            e["addresses"][0]: e["conditions"]["ready"]
            for s in slices
            for e in s.get("endpoints") or []
        }

    wanted = {p["status"]["podIP"]: True for p in _running(cluster, "app=web")}
    wait_for("the slice to list the running pods", lambda: endpoints() == wanted, timeout=60)
    [web] = _get(cluster, "endpointslices", "-l", "kubernetes.io/service-name=web")["items"]
    assert web["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
    budget = wait_for(
        "the budget to count the pods",
        lambda: (
            (s := _get(cluster, "pdb/web").get("status") or {}).get("currentHealthy") == 2 and s
        ),
        timeout=60,
    )
    assert (budget["expectedPods"], budget["desiredHealthy"], budget["disruptionsAllowed"]) == (
        2,
        1,
        1,
    )

    cluster.kubectl("scale", "deploy/web", "--replicas=3")
    _rollout(cluster, "deploy/web")
    assert len(_running(cluster, "app=web")) == 3

    cluster.kubectl("set", "env", "deploy/web", "VERSION=2")
    _rollout(cluster, "deploy/web")
    wait_for("only new pods", lambda: _versions(cluster, "app=web") == ["2", "2", "2"], timeout=90)
    replicasets = _get(cluster, "rs", "-l", "app=web")["items"]
    assert sorted(rs["spec"]["replicas"] for rs in replicasets) == [0, 3]
    wanted = {p["status"]["podIP"]: True for p in _running(cluster, "app=web")}
    wait_for("the slice to follow the new pods", lambda: endpoints() == wanted, timeout=60)

    cluster.kubectl("rollout", "undo", "deploy/web")
    _rollout(cluster, "deploy/web")
    wait_for(
        "the old template back",
        lambda: _versions(cluster, "app=web") == ["1", "1", "1"],
        timeout=90,
    )

    cluster.kubectl("delete", "deploy/web", "--timeout=90s", timeout=120)
    wait_for(
        "the ReplicaSets and pods to go with it",
        lambda: not _get(cluster, "rs,pods", "-l", "app=web")["items"],
        timeout=90,
    )
    wait_for("the slice to empty", lambda: endpoints() == {}, timeout=60)


def test_daemonset_runs_on_the_node_and_rolls(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=DAEMONSET)
    assert 'daemon set "agent" successfully rolled out' in _rollout(cluster, "ds/agent")
    [pod] = _running(cluster, "app=agent")
    assert pod["spec"]["nodeName"] == cluster.node_name
    status = _get(cluster, "ds/agent")["status"]
    assert (status["desiredNumberScheduled"], status["numberReady"], status["numberAvailable"]) == (
        1,
        1,
        1,
    )

    cluster.kubectl("set", "env", "ds/agent", "VERSION=2")
    _rollout(cluster, "ds/agent")
    wait_for("the pod replaced", lambda: _versions(cluster, "app=agent") == ["2"], timeout=90)
    [pod] = _running(cluster, "app=agent")
    assert pod["spec"]["nodeName"] == cluster.node_name

    cluster.kubectl("delete", "ds/agent", "--timeout=90s", timeout=120)
    wait_for(
        "its pod to go", lambda: not _get(cluster, "pods", "-l", "app=agent")["items"], timeout=90
    )
