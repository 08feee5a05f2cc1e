"""`kvd local up | status | down` as a whole: one line per component, nothing left behind, and a
second `up` on the same data dir finds what the first one left."""

from __future__ import annotations

import shutil
import subprocess

from tests.local.node.conftest import KVD, new_cluster


def test_up_status_down_leaves_nothing_and_up_again_finds_the_objects() -> None:
    cluster = new_cluster()
    out = cluster.up().stdout
    lines = out.splitlines()
    assert lines[0].startswith("apiserver  ready")
    assert lines[1].startswith("crds       ready")
    assert lines[2].startswith("node       ready")
    assert lines[3].startswith("handler    ready")
    assert lines[4].startswith("controller ready") and "(leading)" in lines[4]
    assert f"export KUBECONFIG={cluster.kubeconfig}" in out
    try:
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
