"""Workloads on the real local node, driven with real kubectl: a Deployment's pods run, scale,
roll to a new template, roll back and are collected with it; a DaemonSet's pod lands on the
node and rolls; a Service gets a cluster IP and an EndpointSlice of the running pods' IPs, and
the cluster IP answers from the host and from a pod; a PodDisruptionBudget counts them."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import Any

import pytest

from kvd.local.apiserver.workloads.services import SERVICE_CIDR
from tests.local.node.conftest import KUBECTL, Cluster
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


SERVED = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      terminationGracePeriodSeconds: 2
      volumes: [{name: www, emptyDir: {}}]
      containers:
      - name: httpd
        image: busybox
        command:
        - sh
        - -c
        - echo "hello from $POD" > /www/index.html && exec busybox httpd -f -p 8080 -h /www
        env: [{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        ports: [{name: http, containerPort: 8080}]
        volumeMounts: [{name: www, mountPath: /www}]
---
apiVersion: v1
kind: Service
metadata: {name: hello}
spec:
  selector: {app: hello}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
"""


API_VERSION_SCRIPT = """
import os, ssl, urllib.request
ca = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
context = ssl.create_default_context(cafile=ca)
where = os.environ["KUBERNETES_SERVICE_HOST"] + ":" + os.environ["KUBERNETES_SERVICE_PORT"]
answer = urllib.request.urlopen(f"https://{where}/version", context=context, timeout=10)
print(answer.read().decode())
"""


def _fetch(*prefix: str, url: str) -> str:
    done = subprocess.run(
        [*prefix, "busybox", "wget", "-q", "-O", "-", url],  # (-T makes Debian's segfault)
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else f"failed: {done.stderr.strip()}"


def test_cluster_ips_reach_the_pods(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=SERVED)
    _rollout(cluster, "deploy/hello")
    cluster.wait_pod("client", lambda p: p["status"].get("phase") == "Running", what="running")
    ip = _get(cluster, "svc/hello")["spec"]["clusterIP"]
    names = {p["metadata"]["name"] for p in _running(cluster, "app=hello")}
    wanted = {f"hello from {n}" for n in names}
    url = f"http://{ip}/"

    # from the host: every answer comes from one of the pods, and both pods answer in time
    seen: set[str] = set()

    def host_sees_both() -> bool:
        answer = _fetch(url=url)
        assert answer in wanted or answer.startswith("failed"), answer
        seen.add(answer)
        return wanted <= seen

    wait_for("both pods to answer the cluster IP from the host", host_sees_both, timeout=60)
    # from a pod, through the bridge and back
    from_pod = _fetch(
        KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "exec", "client", "--", url=url
    )
    assert from_pod in wanted, from_pod
    # the API server, where the pod is told it is (the `kubernetes` Service), verified with the
    # CA the pod is given, as in-cluster clients do
    version = cluster.kubectl("exec", "client", "--", "python3", "-c", API_VERSION_SCRIPT)
    assert json.loads(version.stdout)["major"] == "1"

    cluster.kubectl("scale", "deploy/hello", "--replicas=0")
    wait_for("the rule to go with the endpoints", lambda: ip not in _table(cluster), timeout=60)
    cluster.kubectl("delete", "-f", "-", "--timeout=60s", stdin=SERVED, timeout=90)


def _table(cluster: Cluster) -> str:
    done = subprocess.run(
        ["nft", "list", "table", "ip", f"kvd-{cluster.bridge}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout
