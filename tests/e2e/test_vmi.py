"""A user's VMI from `kubectl apply` to Running and back to nothing, on `kvd local up`."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import E2E, Json, vmi_manifest
from tests.local.node.conftest import processes_mentioning
from tests.support import metrics
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_demo_vmi_runs_shows_its_console_and_deletes_without_a_trace(e2e: E2E) -> None:
    marker = f"e2e-{secrets.token_hex(4)}"
    e2e.apply(vmi_manifest("demo", marker=marker))
    vmi = e2e.wait_vmi("demo", "Running")
    status = vmi["status"]
    ip = status["interfaces"][0]["ipAddress"]

    table = e2e.kubectl("get", "vmis").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "PHASE", "IP", "NODENAME", "READY"]
    name, _age, phase, shown_ip, node, _ready = table[1].split()
    assert (name, phase, shown_ip, node) == ("demo", "Running", ip, e2e.cluster.node_name)
    wait_for(
        "READY True",
        lambda: e2e.kubectl("get", "vmi", "demo").stdout.split()[-1] == "True",
        timeout=30,
    )

    [pod] = e2e.pods_of(vmi)
    pod_name, pod_uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    assert status["activePods"] == {pod_uid: e2e.cluster.node_name}
    assert vmi["metadata"]["labels"]["kubevirt.io/nodeName"] == e2e.cluster.node_name
    assert "kubevirt.io/foregroundDeleteVirtualMachine" in vmi["metadata"]["finalizers"]
    wait_for(
        f"{marker} in the guest console log",
        lambda: (
            marker in e2e.kubectl("logs", pod_name, "-c", "guest-console-log", check=False).stdout
        ),
        timeout=90,
    )
    events = e2e.kubectl("get", "events", "--field-selector", "involvedObject.name=demo").stdout
    assert "SuccessfulCreate" in events and "Started" in events

    samples = e2e.scrape("controller")
    assert metrics.by_label(samples, "kvd_controller_vmis", "phase")["Running"] == 1
    reconciles = "kvd_controller_reconcile_duration_seconds_count"
    assert metrics.by_label(samples, reconciles, "outcome")["ok"] >= 2

    run_dir = e2e.launcher_dir / pod_uid
    assert (run_dir / "launcher.sock").exists()
    assert processes_mentioning(pod_uid, "guest=default_demo")  # the check below can see them
    # QEMU runs unprivileged (the launcher pod's files name the pod uid on its command line)
    [qemu] = _qemu_pids(pod_uid)
    ps = subprocess.run(
        ["ps", "-o", "user=", "-p", str(qemu)], capture_output=True, text=True, check=True
    )
    assert ps.stdout.strip() == "libvirt-qemu", ps.stdout  # not root

    e2e.kubectl("delete", "vmi", "demo")  # waits for the finalizer: the controller's
    assert e2e.vmi("demo") is None
    assert e2e.kubectl("get", "pods", "-o", "name").stdout.strip() == ""
    wait_for(
        "launcher, libvirtd and QEMU gone",
        lambda: not processes_mentioning(pod_uid, "guest=default_demo"),
        timeout=10,
    )
    wait_for(f"{run_dir} removed", lambda: not run_dir.exists(), timeout=10)
    assert not (e2e.cluster.data_dir / "node" / "pods" / pod_uid).exists()


def test_v1alpha3_and_a_volume_without_a_disk(e2e: E2E) -> None:
    """Both defaulted as KubeVirt does: v1alpha3 is served from the same schema, and the
    cloud-init volume gets a disk of its own."""
    marker = f"alpha-{secrets.token_hex(4)}"
    manifest = vmi_manifest(
        "alpha", marker=marker, api_version="kubevirt.io/v1alpha3", cloud_init_disk=False
    )
    e2e.apply(manifest)
    vmi = e2e.wait_vmi("alpha", "Running")
    disks = [d["name"] for d in vmi["spec"]["domain"]["devices"]["disks"]]
    assert disks == ["containerdisk", "cloudinitdisk"]
    [pod] = e2e.pods_of(vmi)
    wait_for(
        f"{marker} in the guest console log",
        lambda: (
            marker
            in e2e.kubectl(
                "logs", pod["metadata"]["name"], "-c", "guest-console-log", check=False
            ).stdout
        ),
        timeout=90,
    )
    e2e.kubectl("delete", "-f", "-", stdin=manifest)
    assert e2e.vmi("alpha") is None
    assert e2e.pods_of(vmi) == []


def test_missing_image_is_a_condition_naming_it_and_delete_works(e2e: E2E) -> None:
    e2e.apply(vmi_manifest("noimage", marker="x", image="registry.example/nothere:1.0"))

    def synchronized() -> tuple[Json, list[Json]] | None:
        e2e.kubectl("get", "vmi", "noimage")  # a poll that also exercises the printer
        vmi = e2e.vmi("noimage") or {}
        conditions = (vmi.get("status") or {}).get("conditions") or []
        found = [c for c in conditions if c["type"] == "Synchronized"]
        return (vmi, found) if found else None

    vmi, [condition] = wait_for(
        "a Synchronized condition", synchronized, timeout=60, diagnose=lambda: e2e.vmi("noimage")
    )
    assert condition["status"] == "False"
    assert condition["reason"] == "ErrImagePull"
    assert "registry.example/nothere:1.0" in condition["message"]
    assert vmi["status"]["phase"] == "Scheduling"
    events = e2e.kubectl("get", "events", "--field-selector", "involvedObject.name=noimage")
    assert "ErrImagePull" in events.stdout

    e2e.kubectl("delete", "vmi", "noimage")
    assert e2e.vmi("noimage") is None
    assert e2e.pods_of(vmi) == []


def _qemu_pids(pod_uid: str) -> list[int]:
    """QEMU processes whose command line names this pod's run dir."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"qemu-system-x86_64") and any(pod_uid.encode() in a for a in argv):
            found.append(int(proc.name))
    return found
