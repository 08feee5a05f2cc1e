"""More VMs than the node's CPUs hold, on `kvd local up`: the cluster's cpuAllocationRatio sizes
each launcher pod's CPU request, the VM whose pod does not fit says why where the user looks
(`kubectl get vm`: ErrorUnschedulable; the VMI: the scheduler's PodScheduled condition), and it
runs once room frees. (The request arithmetic on its own: tests/controller/test_render.py; the
VM's printableStatus rules: tests/controller/test_vmstatus.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from kvd.api.quantity import Quantity
from kvd.controller import config as clusterconfig
from kvd.local.node import scheduler
from tests.e2e import vms
from tests.e2e.conftest import E2E, Json
from tests.e2e.test_vm import vm_manifest
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

CONSOLE_LOG_MILLIS = 5  # the guest-console-log container's request, as KubeVirt's


def _config_namespace(e2e: E2E) -> str:
    done = e2e.kubectl(
        "get", "configmap", "-A", "--field-selector", f"metadata.name={clusterconfig.NAME}",
        "-o", "json",
    )  # fmt: skip
    (found,) = json.loads(done.stdout)["items"]
    return str(found["metadata"]["namespace"])


def _set_ratio(e2e: E2E, namespace: str, ratio: str | None) -> None:
    value = "null" if ratio is None else json.dumps(ratio)
    e2e.kubectl(
        "-n", namespace, "patch", "configmap", clusterconfig.NAME, "--type", "merge",
        "-p", f'{{"data":{{"cpuAllocationRatio":{value}}}}}',
    )  # fmt: skip


@pytest.fixture
def ratio_one(e2e: E2E) -> Iterator[str]:
    """A CPU per vCPU (KubeVirt's ratio 1) for this test; the cluster's own value after."""
    namespace = _config_namespace(e2e)
    data = json.loads(
        e2e.kubectl("-n", namespace, "get", "configmap", clusterconfig.NAME, "-o", "json").stdout
    )["data"]
    _set_ratio(e2e, namespace, "1")
    try:
        yield namespace
    finally:
        _set_ratio(e2e, namespace, data.get("cpuAllocationRatio"))


def _free_cpu_millis(e2e: E2E) -> int:
    """The node's allocatable CPU less what the pods bound to it request, as the scheduler
    counts it."""
    (node,) = json.loads(e2e.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    pods = json.loads(e2e.kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]
    used = sum(
        scheduler.requests(p).cpu_millis
        for p in pods
        if (p.get("spec") or {}).get("nodeName") == node["metadata"]["name"]
        and (p.get("status") or {}).get("phase") not in scheduler.TERMINAL_PHASES
    )
    return Quantity.parse(node["status"]["allocatable"]["cpu"]).millis() - used


def _vm(name: str, vcpus: int) -> str:
    manifest = yaml.safe_load(vm_manifest(name, running=True))
    manifest["spec"]["template"]["spec"]["domain"]["cpu"] = {"cores": vcpus}
    return yaml.safe_dump(manifest)


def _pod_scheduled(vmi: Json | None) -> Json:
    conditions = ((vmi or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "PodScheduled"), {})


def test_the_vm_that_does_not_fit_is_error_unschedulable_until_room_frees(
    e2e: E2E, ratio_one: str
) -> None:
    # At ratio 1 a pod requests 1000m per vCPU (+5m): as many vCPUs as leave room for one such
    # VM and not two, whatever this machine's cores
    vcpus = (_free_cpu_millis(e2e) - CONSOLE_LOG_MILLIS) // 1000
    assert vcpus >= 1, "the node has less than one free CPU"
    e2e.apply(_vm("fits", vcpus))
    first = vms.running_vmi(e2e, "fits")
    (pod,) = e2e.pods_of(first)
    assert pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] == f"{vcpus * 1000}m"

    e2e.apply(_vm("waits", vcpus))
    status = vms.wait_shows(e2e, "waits", "ErrorUnschedulable")
    waiting = e2e.vmi("waits")
    assert (waiting or {})["status"]["phase"] == "Scheduling"
    condition = _pod_scheduled(waiting)
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "False",
        "Unschedulable",
        "0/1 nodes are available: 1 Insufficient cpu.",
    )
    # the VM carries the VMI's condition, as KubeVirt copies it
    copied = next(c for c in status["conditions"] if c["type"] == "PodScheduled")
    assert copied["message"] == condition["message"]
    listed = e2e.kubectl("get", "vm", "waits").stdout
    assert "ErrorUnschedulable" in listed, listed

    e2e.kubectl("delete", "vm", "fits")  # its pod goes, and with it the CPU it held
    started = vms.running_vmi(e2e, "waits")
    assert vms.wait_shows(e2e, "waits", "Running")["printableStatus"] == "Running"
    assert _pod_scheduled(started) == {}  # the trouble is over: the condition went
    e2e.kubectl("delete", "vm", "waits")
    wait_for(
        "no VM, VMI or launcher pod left",
        lambda: e2e.kubectl("get", "vms,vmis,pods", "-o", "name").stdout.strip() == "",
        timeout=120,
    )
