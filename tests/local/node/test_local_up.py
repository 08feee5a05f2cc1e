"""`kvd local up | status | down` as a whole: one line per component (kvd's daemons as the chart's
pods), nothing left behind, and a second `up` on the same data dir finds what the first one left
(the helm release with it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kvd.local import install
from tests.local.node.conftest import KVD, Cluster, new_cluster

pytestmark = pytest.mark.integration  # starts kvd local up


def test_up_status_down_leaves_nothing_and_up_again_finds_the_objects() -> None:
    cluster = new_cluster()
    out = cluster.up().stdout
    lines = out.splitlines()
    try:  # every check inside: a failing one must still bring the cluster down
        assert lines[0].startswith("apiserver  ready")
        assert lines[1].startswith("crds       ready")
        assert lines[2].startswith("node       ready")
        assert lines[3].startswith("handler    ready")
        assert lines[4].startswith("controller ready") and "(leading)" in lines[4]
        assert lines[5].startswith("apiservice v1.subresources.kubevirt.io Available")
        assert f"export KUBECONFIG={cluster.kubeconfig}" in out
        _daemons_are_the_charts(cluster, lines)
        status = _kvd("local", "status", "--data-dir", str(cluster.data_dir))
        assert status.returncode == 0, status.stdout
        processes, daemons = status.stdout.split("\n\n")
        assert [line.split()[0] for line in processes.splitlines()[1:]] == ["apiserver", "node"]
        rows = [line.split() for line in daemons.splitlines()[1:]]
        handler = install.handler_pod(cluster.raw, cluster.node_name)
        controller = install.leader(cluster.raw)
        assert handler is not None
        assert rows == [
            ["handler", "yes", "Running", handler["metadata"]["name"]],
            ["controller", "yes", "Running", controller, "(leading)"],
        ]
        cluster.raw.create(
            "/api/v1/namespaces/default/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "kept"},
                "data": {"k": "v"},
            },
        )
        cluster.create_pod(
            {
                "metadata": {"name": "long"},
                "spec": {
                    "containers": [
                        {"name": "main", "image": "busybox", "command": ["sleep", "1000"]}
                    ],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                },
            }
        )
        first = cluster.wait_phase("long", "Running")
        started = first["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
        assert cluster.leftovers()  # the check below can see a running pod's traces
    finally:
        down = cluster.down()
    assert "stopped" in down.stdout
    assert cluster.leftovers() == []  # the daemons' pods too: the node ran them
    status = _kvd("local", "status", "--data-dir", str(cluster.data_dir))
    assert status.returncode == 3 and "not running" in status.stdout

    cluster.up()
    try:
        assert cluster.kubectl("get", "configmap", "kept", "-o", "jsonpath={.data.k}").stdout == "v"
        # the pod's processes went with `down`; the node runs it again (restartPolicy Always)
        cluster.wait_pod(
            "long",
            lambda p: (
                (p["status"]["containerStatuses"][0]["state"].get("running") or {}).get(
                    "startedAt", started
                )
                != started
            ),
            what="running again",
        )
        assert cluster.kubectl("exec", "long", "--", "true").returncode == 0
        assert cluster.kubectl("get", "crd", "virtualmachineinstances.kubevirt.io").returncode == 0
        # the release was reused, not installed again: one revision
        releases = cluster.kubectl(
            "get", "secrets", "-n", install.NAMESPACE, "-l", "owner=helm,name=kvd", "-o", "name"
        ).stdout.split()
        assert releases == ["secret/sh.helm.release.v1.kvd.v1"], releases
        _ready(cluster)
    finally:
        cluster.down()
    assert cluster.leftovers() == []
    shutil.rmtree(cluster.data_dir)


def _kvd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KVD, *args], capture_output=True, text=True, timeout=60, check=False)


def _ready(cluster: Cluster) -> None:
    """What `kubectl get deploy,ds -n kvd-system` shows: the controller and handler Ready."""
    got = json.loads(
        cluster.kubectl("get", "deploy,ds", "-n", install.NAMESPACE, "-o", "json").stdout
    )["items"]
    ready = {
        (o["kind"], o["metadata"]["name"]): (
            o["status"].get("readyReplicas", 0) == o["spec"]["replicas"] > 0
            if o["kind"] == "Deployment"
            else o["status"].get("numberReady", 0) == o["status"]["desiredNumberScheduled"] > 0
        )
        for o in got
    }
    assert ready == {("Deployment", "kvd-controller"): True, ("DaemonSet", "kvd-handler"): True}


def _daemons_are_the_charts(cluster: Cluster, lines: list[str]) -> None:
    """The handler and controller lines name the chart's Ready pods, where they listen; the
    controller runs as the chart's non-root user with a read-only root filesystem."""
    _ready(cluster)
    for index, component in ((3, "handler"), (4, "controller")):
        pod = cluster.daemon_pod(component)
        assert pod is not None, f"no Ready {component} pod"
        assert f"{install.NAMESPACE}/{pod['metadata']['name']}" in lines[index], lines[index]
        assert f"on {pod['status']['podIP']} " in lines[index], lines[index]
        ports = dict(re.findall(r"\(([\w.]+) on port (\d+)\)", lines[index]))
        assert {int(p) for p in ports.values()} <= set(install.ports(pod).values()), lines[index]
    pid = cluster.daemon_pid("controller")
    assert Path(f"/proc/{pid}").stat().st_uid == 1001
    done = cluster.kubectl(
        "exec", "-n", install.NAMESPACE, cluster.daemon_pod("controller")["metadata"]["name"],
        "--", "sh", "-c", "touch /not-here", check=False,
    )  # fmt: skip
    assert "Read-only file system" in done.stderr, done.stdout + done.stderr
