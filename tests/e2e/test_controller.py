"""The controller under kill -9: one launcher pod per VMI whatever happens, and a standby replica
that takes over from a dead leader."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from kvd.api import kinds
from kvd.api.vmi import VirtualMachineInstance
from kvd.controller import render
from kvd.local import install
from tests.e2e.conftest import E2E, vmi_manifest
from tests.local.node.conftest import KVD, kill, processes_mentioning
from tests.support.waiting import holds_for, wait_for

pytestmark = pytest.mark.integration

VMIS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"
LEASE = f"/apis/coordination.k8s.io/v1/namespaces/{install.NAMESPACE}/leases/kvd-controller"


def controller_pid(e2e: E2E) -> int:
    return e2e.cluster.daemon_pid("controller")


def holder(e2e: E2E) -> str:
    return str(e2e.cluster.raw.get(LEASE)["spec"].get("holderIdentity") or "")


def stays_one_pod(e2e: E2E, name: str, *, seconds: float = 3.0) -> None:
    """The VMI keeps exactly one launcher pod. A controller that made a second one would do so
    as it reconciles the VMI, which every change to it or its pods triggers within moments;
    `seconds` covers that and the periodic requeue of a VMI whose expectations are unmet."""
    vmi = e2e.vmi(name) or {}
    holds_for(
        f"{name} has one launcher pod",
        lambda: len(e2e.pods_of(vmi)) == 1,
        seconds,
        interval=0.3,
        diagnose=lambda: json.dumps([p["metadata"] for p in e2e.pods_of(vmi)]),
    )


def test_controller_killed_after_creating_the_pod_still_makes_one(e2e: E2E) -> None:
    """Exactly the state a kill -9 between the pod's POST and the VMI's status write leaves: a
    VMI without status, and its launcher pod. The restarted controller adopts the pod."""
    killed = controller_pid(e2e)
    kill(killed)
    vmi = e2e.cluster.raw.create(VMIS, _manifest("adopted"))
    loaded = kinds.load({k: v for k, v in vmi.items() if k != "status"})
    assert isinstance(loaded, VirtualMachineInstance)
    pod = render.launcher_pod(loaded, render.RenderConfig(launcher_host_dir=str(e2e.launcher_dir)))
    e2e.cluster.create_pod(pod)
    e2e.cluster.wait_daemon("controller", not_pid=killed)  # the node restarts its container
    e2e.wait_vmi("adopted", "Running")
    stays_one_pod(e2e, "adopted")
    e2e.kubectl("delete", "vmi", "adopted")


def test_controller_killed_as_its_pod_appears_still_makes_one(e2e: E2E) -> None:
    e2e.cluster.raw.create(VMIS, _manifest("racing"))
    wait_for(  # no pause between looks: the kill must come as the pod appears
        "a launcher pod",
        lambda: e2e.cluster.raw.get(
            "/api/v1/namespaces/default/pods", {"labelSelector": "kubevirt.io=virt-launcher"}
        )["items"],
        interval=0,
    )
    killed = controller_pid(e2e)
    kill(killed)
    e2e.cluster.wait_daemon("controller", not_pid=killed)
    e2e.wait_vmi("racing", "Running")
    stays_one_pod(e2e, "racing")
    e2e.kubectl("delete", "vmi", "racing")


def test_delete_with_the_handler_down_still_ends_everything(e2e: E2E) -> None:
    """Nobody is stuck: the pod's deletion shuts the guest down, the controller ends the VMI,
    and the handler, back up, forgets the launcher it had driven."""
    e2e.apply(vmi_manifest("orphaned", marker="o"))
    vmi = e2e.wait_vmi("orphaned", "Running")
    [pod] = e2e.pods_of(vmi)
    # the handler down for good (a killed one would be restarted at once): its DaemonSet
    # selects no node, so its pod goes
    handler_ds = ("daemonset", "kvd-handler", "-n", install.NAMESPACE)
    away = '{"spec":{"template":{"spec":{"nodeSelector":{"kvd.test/no-node":"x"}}}}}'
    e2e.kubectl("patch", *handler_ds, "--type=merge", "-p", away)
    wait_for("the handler pod gone", lambda: not install.daemon_pods(e2e.cluster.raw, "handler"))
    e2e.kubectl("delete", "vmi", "orphaned")
    assert e2e.vmi("orphaned") is None
    assert e2e.pods_of(vmi) == []
    assert not processes_mentioning(pod["metadata"]["uid"], "guest=default_orphaned")
    events = e2e.kubectl("get", "events", "--field-selector", "involvedObject.name=orphaned")
    assert "no handler ended it" in events.stdout
    back = '{"spec":{"template":{"spec":{"nodeSelector":null}}}}'
    e2e.kubectl("patch", *handler_ds, "--type=merge", "-p", back)  # the handler again
    e2e.cluster.wait_daemon("handler")
    record = e2e.cluster.data_dir / "handler" / "vmis" / f"{vmi['metadata']['uid']}.json"
    wait_for("the handler's record forgotten", lambda: not record.exists(), timeout=30)
    assert not (e2e.launcher_dir / pod["metadata"]["uid"]).exists()


@pytest.fixture
def standby(e2e: E2E) -> Iterator[subprocess.Popen[str]]:
    log = (e2e.cluster.data_dir / "logs" / "standby.log").open("w")
    data = e2e.cluster.data_dir
    args = [
        KVD, "controller", "--kubeconfig", str(data / "kubeconfig"),
        "--namespace", install.NAMESPACE,
        "--launcher-dir", str(e2e.launcher_dir), "--identity", "standby",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("kvd controller: ready standby (standby)"), line
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()


def test_only_the_leader_acts_and_the_standby_takes_over(
    e2e: E2E, standby: subprocess.Popen[str]
) -> None:
    leader = holder(e2e)
    pod = e2e.cluster.daemon_pod("controller")
    assert pod is not None and leader == pod["metadata"]["name"]
    e2e.apply(vmi_manifest("before", marker="b"))
    e2e.wait_vmi("before", "Running")
    stays_one_pod(e2e, "before")

    # the leader's pod goes (SIGTERM): it releases the Lease, so the standby need not wait
    # out the lease duration (a kill -9 is tests/kube/test_leader.py's)
    deployment = ("deployment", "kvd-controller", "-n", install.NAMESPACE)
    e2e.kubectl("scale", *deployment, "--replicas=0")
    try:
        stopped = time.monotonic()
        wait_for(
            "the standby to take the lease",
            lambda: holder(e2e) == "standby",
            timeout=60,
            interval=0.2,
        )
        took = time.monotonic() - stopped
        print(f"standby leads {took:.1f}s after the leader's pod was told to stop")
        assert standby.poll() is None

        e2e.apply(vmi_manifest("after", marker="a"))
        e2e.wait_vmi("after", "Running")
        stays_one_pod(e2e, "after")
        stays_one_pod(e2e, "before", seconds=0.5)
        e2e.kubectl("delete", "vmi", "before", "after")
        assert e2e.kubectl("get", "pods", "-o", "name").stdout.strip() == ""
    finally:
        e2e.kubectl("scale", *deployment, "--replicas=1")
        standby.terminate()  # SIGTERM: it releases the Lease to the chart's controller again
        standby.wait(timeout=30)
    e2e.cluster.wait_daemon("controller")


def _manifest(name: str) -> dict[str, object]:
    import yaml  # noqa: PLC0415

    loaded: dict[str, object] = yaml.safe_load(vmi_manifest(name, marker=name))
    return loaded
