"""`kvd local up | status | down` as a whole: one line per component, nothing left behind, and a
second `up` on the same data dir finds what the first one left."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kvd import address_file
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
        listeners = _listeners(cluster, lines)
        status = _kvd("local", "status", "--data-dir", str(cluster.data_dir))
        assert status.returncode == 0
        assert [line.split()[0] for line in status.stdout.splitlines()[1:]] == [
            "apiserver",
            "node",
            "handler",
            "controller",
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
    assert cluster.leftovers() == []
    assert [p for p in listeners if p.exists()] == []  # each component took its own away
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
    finally:
        cluster.down()
    assert cluster.leftovers() == []
    shutil.rmtree(cluster.data_dir)


def _kvd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KVD, *args], capture_output=True, text=True, timeout=60, check=False)


def _listeners(cluster: Cluster, lines: list[str]) -> list[Path]:
    """The handler's and the controller's address files say, for tools, what their ready lines
    say for people, and are written by the processes `up` recorded."""
    pids = cluster.components()
    paths = []
    for index, name, expected in (
        (3, "handler", {"HandlerService": "handlerService", "metrics": "metrics"}),
        (
            4,
            "controller",
            {
                "ControllerService": "controllerService",
                "subresources.kubevirt.io": "subresources",
                "metrics": "metrics",
            },
        ),
    ):
        path = cluster.data_dir / name / "address.json"
        listening = address_file.read(path)
        assert listening.pid == pids[name], f"{path} is not from the running {name}"
        shown = dict(re.findall(r"\(([\w.]+) on port (\d+)\)", lines[index]))
        assert {expected[k]: f"127.0.0.1:{port}" for k, port in shown.items()} == dict(
            listening.addresses
        ), lines[index]
        assert set(shown) == set(expected), lines[index]
        paths.append(path)
    return paths
