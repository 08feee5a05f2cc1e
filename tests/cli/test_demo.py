"""`kvd demo`: from no cluster to a booted demo VM in one command, reusing what is there when run
again, and booting afresh a VM that has shut down. Its cluster has names of its own
(`new_cluster()`), so a developer's `kvd local up` is never touched."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import kvd.cli
from tests.local.node.conftest import KVD, Cluster, new_cluster
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]


def _demo(cluster: Cluster) -> subprocess.CompletedProcess[str]:
    args = [KVD, "demo", "--data-dir", str(cluster.data_dir), "--port", "0"]
    return subprocess.run(
        [*args, *cluster.node_args()], capture_output=True, text=True, timeout=300, check=False
    )


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"kvd demo failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _launcher_pod(out: str) -> str:
    found = re.search(r"logs -f (virt-launcher-demo-\w+) -c guest-console-log", out)
    assert found, f"no `kubectl logs -f` hint in:\n{out}"
    return found[1]


def _assert_shows_the_running_demo(out: str, cluster: Cluster) -> None:
    assert re.search(r"^  Running +\d+\.\ds$", out, re.MULTILINE), out
    table = out.split("$ kubectl get vmis\n", 1)[1].splitlines()
    assert table[0].split() == ["NAME", "AGE", "PHASE", "IP", "NODENAME", "READY"]
    name, _age, phase, _ip, node, _ready = table[1].split()
    assert (name, phase, node) == ("demo", "Running", cluster.node_name)
    assert "\n  hello-from-userdata\n" in out  # the cloud-init script's output, on the console
    assert "\x1b" not in out  # the guest shell's terminal queries are not passed on
    assert f"export KUBECONFIG={cluster.kubeconfig}\n" in out
    assert "kubectl delete vmi demo\n" in out
    assert f"kvd local down --data-dir {cluster.data_dir}\n" in out
    assert f"kvdctl console demo --data-dir {cluster.data_dir}\n" in out


def test_demo_boots_the_vm_reuses_it_and_leaves_nothing_after_down() -> None:
    cluster = new_cluster()
    try:
        out = _ok(_demo(cluster))
        assert out.splitlines()[0].startswith("apiserver  ready")
        assert "controller ready" in out
        assert "vmi default/demo created\n" in out
        _assert_shows_the_running_demo(out, cluster)
        pod = _launcher_pod(out)
        components = cluster.components()

        again = _ok(_demo(cluster))
        assert f"local cluster in {cluster.data_dir} is up" in again and "reusing it" in again
        assert "vmi default/demo exists (Running): reusing it\n" in again
        _assert_shows_the_running_demo(again, cluster)
        assert _launcher_pod(again) == pod
        assert cluster.components() == components  # the same processes

        # A VM that shut down is booted afresh, in a new launcher pod.
        cluster.kubectl("exec", pod, "-c", "compute", "--", "virsh", "shutdown", "default_demo")
        _wait_phase(cluster, "demo", "Succeeded")
        fresh = _ok(_demo(cluster))
        assert "vmi default/demo is Succeeded: deleting it to boot it afresh\n" in fresh
        assert "vmi default/demo created\n" in fresh
        _assert_shows_the_running_demo(fresh, cluster)
        assert _launcher_pod(fresh) != pod
    finally:
        cluster.down()
        leftovers = cluster.leftovers()
        shutil.rmtree(cluster.data_dir, ignore_errors=True)
    assert leftovers == []


def test_a_manifest_that_is_not_a_vmi_is_refused_before_anything_starts(tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n")
    data = Path(tempfile.mkdtemp(prefix="kvt"))
    try:
        done = subprocess.run(
            [KVD, "demo", "--data-dir", str(data), "--manifest", str(manifest)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1
        assert "not a single VirtualMachineInstance manifest" in done.stderr
        assert list(data.iterdir()) == []  # no cluster was started
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_the_example_is_the_manifest_kvd_demo_applies() -> None:
    packaged = Path(kvd.cli.__file__).parent / "demo-vmi.yaml"
    assert (REPO / "examples" / "vmi-demo.yaml").resolve() == packaged.resolve()


def _wait_phase(cluster: Cluster, name: str, phase: str, *, timeout: float = 60) -> None:
    def current() -> str:
        done = cluster.kubectl("get", "vmi", name, "-o", "jsonpath={.status.phase}", check=False)
        return done.stdout.strip()

    wait_for(
        f"vmi {name} to be {phase}",
        lambda: current() == phase,
        timeout=timeout,
        interval=0.2,
        diagnose=lambda: f"vmi {name} is {current()!r}",
    )
