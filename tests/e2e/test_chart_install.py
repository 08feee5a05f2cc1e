"""kvd as `kvd local up` installs it: the chart's Deployment and DaemonSet, run by the local node.
Their pods come and go as on a real cluster (deleted, rolled by `helm upgrade`, removed by
`helm uninstall`) while a running VM stays the same QEMU process and its console answers; a
data dir whose kvd objects helm does not own (an older `up` made them) still comes up."""

from __future__ import annotations

import json
import subprocess

import pytest

from kvd.local import install
from tests.e2e.conftest import E2E, vmi_manifest
from tests.e2e.test_console import Terminal
from tests.local.node.conftest import processes_mentioning
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

NS = install.NAMESPACE
VM = "steady"


def _helm(e2e: E2E, *args: str) -> str:
    done = subprocess.run(
        [install.helm_binary(), *args, "--namespace", NS],
        capture_output=True,
        text=True,
        env=install.helm_env(e2e.cluster.data_dir),
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _qemu(name: str) -> list[int]:
    return sorted(
        int(line.split(":", 1)[0])
        for line in processes_mentioning(f"guest=default_{name}")
        if "qemu-system" in line
    )


def _console_answers(e2e: E2E, *, booted: bool = True) -> None:
    terminal = Terminal(VM, "--data-dir", str(e2e.cluster.data_dir))
    try:
        terminal.expect(f"Successfully connected to {VM} console")
        if not booted:
            terminal.expect("KVD-READY", timeout=90)
        terminal.send(b"\r")
        terminal.expect("kvd-demo:/#")
        terminal.send(b"\x1d")
        assert terminal.proc.wait(timeout=10) == 0
    finally:
        terminal.close()


def _workloads(e2e: E2E) -> dict[str, bool]:
    """`kubectl get deploy,ds -n kvd-system`: name → Ready (every wanted replica ready)."""
    items = json.loads(e2e.kubectl("get", "deploy,ds", "-n", NS, "-o", "json").stdout)["items"]
    return {
        f"{o['kind']}/{o['metadata']['name']}": (
            o["status"].get("readyReplicas", 0) == o["spec"]["replicas"] > 0
            if o["kind"] == "Deployment"
            else o["status"].get("numberReady", 0) == o["status"]["desiredNumberScheduled"] > 0
        )
        for o in items
    }


@pytest.fixture(scope="module")
def running(e2e: E2E) -> list[int]:
    """A VM that runs through every test here; its QEMU pids."""
    e2e.apply(vmi_manifest(VM, marker="steady-booted"))
    e2e.wait_vmi(VM, "Running")
    _console_answers(e2e, booted=False)
    pids = _qemu(VM)
    assert len(pids) == 1, pids
    return pids


def test_the_daemons_are_the_charts_deployment_and_daemonset(e2e: E2E) -> None:
    assert _workloads(e2e) == {"Deployment/kvd-controller": True, "DaemonSet/kvd-handler": True}
    accounts = {
        p["spec"]["serviceAccountName"]
        for c in ("controller", "handler")
        for p in install.daemon_pods(e2e.cluster.raw, c)
    }
    assert accounts == {"kvd-controller", "kvd-handler"}


@pytest.mark.parametrize("component", ["controller", "handler"])
def test_a_deleted_daemon_pod_is_recreated_and_the_vm_untouched(
    e2e: E2E, running: list[int], component: str
) -> None:
    pod = e2e.cluster.daemon_pod(component)
    assert pod is not None
    old = pod["metadata"]["name"]
    e2e.kubectl("delete", "pod", "-n", NS, old, "--wait=false")
    wait_for(
        f"the {component} pod {old} replaced",
        lambda: (
            (e2e.cluster.daemon_pod(component) or {}).get("metadata", {}).get("name")
            not in (None, old)
        ),
        timeout=90,
    )
    new = e2e.cluster.wait_daemon(component)
    assert new["metadata"]["name"] != old
    assert _qemu(VM) == running  # the same QEMU: the VM never noticed
    _console_answers(e2e)  # through the new controller and handler
    assert (e2e.vmi(VM) or {})["status"]["phase"] == "Running"


def test_helm_upgrade_with_a_changed_value_rolls_the_controller_not_the_vm(
    e2e: E2E, running: list[int]
) -> None:
    before = e2e.cluster.daemon_pod("controller")
    assert before is not None
    _helm(
        e2e, "upgrade", install.RELEASE, str(install.chart_dir()), "--reuse-values",
        "--set", "controller.nodeHeartbeatTimeoutSeconds=301",
    )  # fmt: skip
    wait_for(
        "a new controller pod leading",
        lambda: (
            (e2e.cluster.daemon_pod("controller") or {}).get("metadata", {}).get("name")
            not in (None, before["metadata"]["name"])
        ),
        timeout=120,
        diagnose=lambda: e2e.kubectl("get", "pods", "-n", NS, "-o", "wide").stdout,
    )
    wait_for(
        "the old controller pod gone",
        lambda: (
            before["metadata"]["name"]
            not in {
                p["metadata"]["name"] for p in install.daemon_pods(e2e.cluster.raw, "controller")
            }
        ),
        timeout=90,
    )
    after = e2e.cluster.wait_daemon("controller")
    args = after["spec"]["containers"][0]["args"]
    assert "--node-heartbeat-timeout=301" in args
    assert _qemu(VM) == running
    _console_answers(e2e)


def test_helm_uninstall_removes_the_daemons_and_leaves_the_vms_data(
    e2e: E2E, running: list[int]
) -> None:
    vmi = e2e.vmi(VM)
    assert vmi is not None
    _helm(e2e, "uninstall", install.RELEASE)
    assert _workloads(e2e) == {}
    wait_for(
        "the daemons' pods gone",
        lambda: (
            not install.daemon_pods(e2e.cluster.raw, "controller")
            and not install.daemon_pods(e2e.cluster.raw, "handler")
        ),
        timeout=90,
    )
    kept = e2e.vmi(VM)
    assert kept is not None and kept["metadata"]["uid"] == vmi["metadata"]["uid"]
    assert e2e.pods_of(kept), "the VM's launcher pod went with kvd's daemons"
    assert _qemu(VM) == running  # nothing stopped it: only kvd's own pods went


def test_an_up_adopts_kvd_objects_helm_does_not_own(e2e: E2E) -> None:
    """What an older `up` left: kvd-config and the user roles, made without helm. The next `up`
    (no release any more) gives them to the release instead of failing on them."""
    e2e.kubectl("create", "configmap", "kvd-config", "-n", NS, "--from-literal=useEmulation=true")
    e2e.kubectl("create", "clusterrole", "kubevirt.io:view", "--verb=get", "--resource=pods")
    e2e.cluster.down()
    e2e.cluster.up()
    assert _workloads(e2e) == {"Deployment/kvd-controller": True, "DaemonSet/kvd-handler": True}
    for kind, name, namespace in (
        ("configmap", "kvd-config", NS),
        ("clusterrole", "kubevirt.io:view", ""),
    ):
        where = ["-n", namespace] if namespace else []
        meta = json.loads(e2e.kubectl("get", kind, name, *where, "-o", "json").stdout)["metadata"]
        assert meta["annotations"]["meta.helm.sh/release-name"] == install.RELEASE, meta
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm", meta
    e2e.kubectl("delete", "vmi", VM, "--wait=true", "--timeout=120s")
