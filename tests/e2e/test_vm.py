"""VirtualMachines on `kvd local up` with real guests: what each run strategy does when QEMU is
killed from outside or the guest powers itself off, the crash-loop back-off, and deleting a VM
in the states a user meets. (KubeVirt's own VM and VMIRS examples: test_kubevirt_examples.py;
every rule on its own, without guests: tests/controller/test_vm_controller.py.)"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import yaml

from kvd import timestamps
from tests.e2e import vms
from tests.e2e.conftest import E2E, Json
from tests.support import metrics
from tests.support.waiting import holds_for, wait_for

pytestmark = pytest.mark.integration

FAIL_FAST = "kubevirt.io/func-test-virt-launcher-fail-fast"


def vm_manifest(
    name: str,
    *,
    image: str = "kvd-demo",
    annotations: dict[str, str] | None = None,
    claim: str | None = None,
    **spec: Any,
) -> str:
    """A VM of the demo guest (grace period 0: these tests stop guests, they do not time it)."""
    volumes: list[Json] = [{"name": "containerdisk", "containerDisk": {"image": image}}]
    if claim is not None:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": claim}})
    template: Json = {
        "metadata": {"labels": {"kubevirt.io/vm": name}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}},
            "volumes": volumes,
        },
    }
    if annotations:
        template["metadata"]["annotations"] = annotations
    manifest = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {**spec, "template": template},
    }
    return yaml.safe_dump(manifest)


def uid(vmi: Json) -> str:
    return str(vmi["metadata"]["uid"])


def nothing_left(e2e: E2E) -> None:
    assert e2e.kubectl("get", "vms,vmis,pods", "-o", "name").stdout.strip() == ""


def test_rerun_on_failure_restarts_a_crash_not_a_poweroff_and_once_neither(e2e: E2E) -> None:
    e2e.apply(vm_manifest("rerun", runStrategy="RerunOnFailure"))
    e2e.apply(vm_manifest("once", runStrategy="Once"))
    first, once = vms.running_vmi(e2e, "rerun"), vms.running_vmi(e2e, "once")
    vms.kill_qemu("rerun")
    vms.kill_qemu("once")
    second = vms.running_vmi(e2e, "rerun", not_uid=uid(first))  # a new VMI runs
    assert e2e.vmi("rerun") is not None and vms.status(e2e, "rerun")["printableStatus"] in (
        "Starting",
        "Running",
    )
    ended = e2e.vmi("once") or {}
    assert (uid(ended), ended["status"]["phase"]) == (uid(once), "Failed")  # kept, not rerun
    assert vms.wait_shows(e2e, "once", "Stopped")["created"] is True

    vms.guest_poweroff(e2e, "rerun")
    done = vms.wait_stopped(e2e, "rerun")
    assert done["runStrategy"] == "RerunOnFailure" and "startFailure" not in done
    holds_for("no new VMI after the poweroff", lambda: e2e.vmi("rerun") is None, 3.0)
    assert uid(second) != uid(first)
    e2e.kubectl("delete", "vm", "rerun", "once")  # waits for the VMs' finalizers
    nothing_left(e2e)


def test_always_restarts_a_crash_and_a_poweroff_and_follows_halted(e2e: E2E) -> None:
    e2e.apply(vm_manifest("always", runStrategy="Always"))
    watch = vms.StatusWatch(e2e, "always")
    try:
        first = vms.running_vmi(e2e, "always")
        vms.kill_qemu("always")
        second = vms.running_vmi(e2e, "always", not_uid=uid(first))
        vms.guest_poweroff(e2e, "always")
        third = vms.running_vmi(e2e, "always", not_uid=uid(second))
        assert len({uid(first), uid(second), uid(third)}) == 3

        e2e.kubectl(
            "patch", "vm", "always", "--type=merge", "-p", '{"spec":{"runStrategy":"Halted"}}'
        )
        vms.wait_stopped(e2e, "always")
        e2e.kubectl(
            "patch", "vm", "always", "--type=merge", "-p", '{"spec":{"runStrategy":"Always"}}'
        )
        vms.running_vmi(e2e, "always", not_uid=uid(third))
        wait_for(
            "kubectl get vm: Running, ready",
            lambda: vms.table(e2e, "vm", "always")[1][2:] == ["Running", "True"],
            timeout=60,
        )
        header, row = vms.table(e2e, "vm", "always")
        assert header == ["NAME", "AGE", "STATUS", "READY"] and row[0] == "always"
        samples = e2e.scrape("controller")
        shown = metrics.by_label(samples, "kvd_controller_vms", "printable_status")
        assert (shown["Running"], shown["Stopped"]) == (1, 0)

        e2e.kubectl("delete", "vm", "always")  # while it runs: the VMI, then the VM
        nothing_left(e2e)
        wait_for(
            "the watch to show Terminating",
            lambda: watch.saw(
                "Running", "Stopping", "Stopped", "Starting", "Running", "Terminating"
            ),
            timeout=10,
            diagnose=watch.shown,
        )
        assert watch.saw("Running", "Starting", "Running", "Starting", "Running"), watch.shown()
    finally:
        watch.close()


def test_a_launcher_that_keeps_crashing_backs_off_longer_each_time(e2e: E2E) -> None:
    """KubeVirt's fail-fast annotation makes each launcher exit at once: each VMI fails before
    it runs, the VM shows CrashLoopBackOff, and the wait before the next VMI grows (10-15 s,
    then 40-60 s). Deleting it in CrashLoopBackOff leaves nothing."""
    e2e.apply(vm_manifest("crashy", runStrategy="Always", annotations={FAIL_FAST: "true"}))
    gaps = []
    seen: set[str] = set()
    for count in (1, 2):
        vmi: Json = wait_for(
            f"VMI number {count}",
            lambda: (v := e2e.vmi("crashy")) is not None and uid(v) not in seen and v,
            timeout=60,
            interval=0.2,
        )
        seen.add(uid(vmi))
        failure = wait_for(
            f"start failure {count}",
            lambda c=count: (
                (f := vms.status(e2e, "crashy").get("startFailure") or {}).get(
                    "consecutiveFailCount"
                )
                == c
                and f
            ),
            timeout=60,
            interval=0.2,
            diagnose=lambda: f"VMI: {e2e.vmi('crashy')}\nVM: {vms.status(e2e, 'crashy')}",
        )
        assert failure["lastFailedVMIUID"] == uid(vmi)
        created = timestamps.parse(vmi["metadata"]["creationTimestamp"])
        retry = timestamps.parse(failure["retryAfterTimestamp"])
        assert created is not None and retry is not None
        gaps.append((retry - created).total_seconds())
        assert vms.wait_shows(e2e, "crashy", "CrashLoopBackOff", timeout=30)
    assert gaps[1] > gaps[0], (
        gaps
    )  # 40-60 s of back-off after the second failure, 10-15 s after the first
    events = e2e.kubectl("get", "events", "--field-selector", "involvedObject.kind=VirtualMachine")
    assert events.stdout.count("SuccessfulCreate") >= 2
    e2e.kubectl("delete", "vm", "crashy")
    nothing_left(e2e)


def test_deleting_a_vm_that_is_starting_or_cannot_start_leaves_nothing(e2e: E2E) -> None:
    e2e.apply(vm_manifest("noimage", image="registry.example/nothere:1.0", running=True))
    e2e.apply(vm_manifest("noclaim", claim=f"nothere-{secrets.token_hex(2)}", running=True))
    e2e.apply(vm_manifest("starting", running=True))
    vms.wait_shows(e2e, "starting", "Starting", timeout=30)
    e2e.kubectl("delete", "vm", "starting")  # its launcher is coming up
    vms.wait_shows(e2e, "noimage", "ErrImagePull", timeout=60)
    vms.wait_shows(e2e, "noclaim", "ErrorPvcNotFound", timeout=30)
    e2e.kubectl("delete", "vm", "noimage", "noclaim")
    nothing_left(e2e)
