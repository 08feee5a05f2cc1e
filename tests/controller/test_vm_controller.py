"""The VM controller in a real `kvd controller` against a real API server, with no node: the test
plays the handler (it moves the VMI's phase and conditions as the handler would), so each rule
of the run strategies, the status and deletion is seen in a second or two. With real guests:
tests/e2e/test_vm.py."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from kvd import timestamps
from kvd.api import phases
from kvd.kube import client
from tests.controller.conftest import VMIS, Env, Json
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration  # starts a kvd local apiserver and kvd controller processes

VMS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines"
FINALIZER = "kubevirt.io/virtualMachineControllerFinalize"
TEMPLATE: Json = {
    "metadata": {"labels": {"kubevirt.io/vm": "x"}},
    "spec": {
        "domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}},
        "terminationGracePeriodSeconds": 0,
    },
}


def create_vm(env: Env, name: str, **spec: Any) -> Json:
    body = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {"template": copy.deepcopy(TEMPLATE), **spec},
    }
    created: Json = env.raw.create(VMS, body)
    return created


def get_vm(env: Env, name: str) -> Json:
    found: Json = env.raw.get(f"{VMS}/{name}")
    return found


def vmi_or_none(env: Env, name: str) -> Json | None:
    try:
        return env.vmi(name)
    except client.ApiError as exc:
        if exc.not_found:
            return None
        raise


def status_of(env: Env, name: str) -> Json:
    return get_vm(env, name).get("status") or {}


def shows(env: Env, name: str, printable: str, *, timeout: float = 15) -> Json:
    """Waits until the VM's printableStatus is `printable`; its status then."""
    wait_for(
        f"VM {name} {printable}",
        lambda: status_of(env, name).get("printableStatus") == printable,
        timeout=timeout,
        diagnose=lambda: f"status: {status_of(env, name)}\nVMI: {vmi_or_none(env, name)}",
    )
    return status_of(env, name)


def stopped(env: Env, name: str) -> Json:
    """Waits until the VM is Stopped with no VMI left (Stopped shows as soon as the VMI ends,
    before it is gone); its status then."""
    wait_for(
        f"VM {name} Stopped without a VMI",
        lambda: (
            gone(env, name)
            and (s := status_of(env, name)).get("printableStatus") == "Stopped"
            and "created" not in s
        ),
        timeout=15,
        diagnose=lambda: f"status: {status_of(env, name)}\nVMI: {vmi_or_none(env, name)}",
    )
    return status_of(env, name)


def the_vmi(env: Env, name: str, *, not_uid: str = "") -> Json:
    """Waits for the VM's VMI (another than `not_uid`, when given)."""

    def found() -> Json | None:
        vmi = vmi_or_none(env, name)
        if vmi is None or vmi["metadata"]["uid"] == not_uid:
            return None
        return vmi

    vmi: Json = wait_for(f"VMI {name}", found, timeout=15)
    return vmi


def play(env: Env, name: str, phase: str, *, conditions: list[Json] | None = None) -> None:
    """What the handler would write: the phase (with its transition timestamp) and its
    conditions."""
    vmi = vmi_or_none(env, name)
    if vmi is None:
        return  # the VMI controller ended a deleted one first
    patch: Json = dict(phases.move(vmi.get("status") or {}, phase, now=timestamps.now()))
    if conditions is not None:
        patch["conditions"] = conditions
    env.raw.merge_patch(f"{VMIS}/{name}", {"status": patch})


def ready(ok: bool = True) -> Json:
    return {
        "type": "Ready",
        "status": "True" if ok else "False",
        "lastTransitionTime": timestamps.now(),
    }


def gone(env: Env, name: str) -> bool:
    return vmi_or_none(env, name) is None


def vm_events(env: Env, name: str) -> list[str]:
    return [
        e["reason"] for e in env.events(name) if e["involvedObject"]["kind"] == "VirtualMachine"
    ]


def delete_vm(env: Env, name: str) -> None:
    env.raw.delete(f"{VMS}/{name}")

    def vm_gone() -> bool:
        try:
            get_vm(env, name)
        except client.ApiError as exc:
            return exc.not_found
        return False

    wait_for(f"VM {name} and its VMI gone", lambda: vm_gone() and gone(env, name), timeout=20)


def test_vm_cirros_flow_stopped_starting_running_stopping_stopped(env: Env) -> None:
    create_vm(env, "flow", running=False)
    first = shows(env, "flow", "Stopped")
    assert get_vm(env, "flow")["metadata"]["finalizers"] == [FINALIZER]
    assert "created" not in first and "ready" not in first
    assert vmi_or_none(env, "flow") is None

    env.raw.merge_patch(f"{VMS}/flow", {"spec": {"running": True}})
    vmi = the_vmi(env, "flow")
    vm = get_vm(env, "flow")
    meta = vmi["metadata"]
    assert meta["labels"]["kubevirt.io/vm"] == "x"
    assert meta["annotations"]["kubevirt.io/vm-generation"] == str(vm["metadata"]["generation"])
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "name": "flow",
            "uid": vm["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert FINALIZER in meta["finalizers"]
    assert vmi["spec"]["domain"]["firmware"]["uuid"]
    status = shows(env, "flow", "Starting")
    assert status["created"] is True and "ready" not in status
    assert "SuccessfulCreate" in vm_events(env, "flow")

    play(env, "flow", "Running", conditions=[ready()])
    status = shows(env, "flow", "Running")
    assert status["ready"] is True and status["runStrategy"] == "Always"
    assert (
        status["observedGeneration"] == status["desiredGeneration"] == vm["metadata"]["generation"]
    )
    assert [c["status"] for c in status["conditions"] if c["type"] == "Ready"] == ["True"]

    # Stopping lasts as long as the guest's shutdown: here (no node, no launcher) the VMI
    # controller ends the deleted VMI at once; tests/e2e sees Stopping with a real guest.
    env.raw.merge_patch(f"{VMS}/flow", {"spec": {"running": False}})
    status = stopped(env, "flow")
    assert status["runStrategy"] == "Halted" and "ready" not in status
    assert "SuccessfulDelete" in vm_events(env, "flow")
    delete_vm(env, "flow")


def test_rerun_on_failure_restarts_a_failure_not_a_clean_end(env: Env) -> None:
    create_vm(env, "rerun", runStrategy="RerunOnFailure")
    first = the_vmi(env, "rerun")
    play(env, "rerun", "Running", conditions=[ready()])
    shows(env, "rerun", "Running")
    play(env, "rerun", "Failed", conditions=[ready(False)])  # QEMU killed
    second = the_vmi(env, "rerun", not_uid=first["metadata"]["uid"])
    wait_for(
        "the start request acted on", lambda: "stateChangeRequests" not in status_of(env, "rerun")
    )
    play(env, "rerun", "Running", conditions=[ready()])
    shows(env, "rerun", "Running")
    play(env, "rerun", "Succeeded", conditions=[ready(False)])  # a guest poweroff
    status = stopped(env, "rerun")
    assert "startFailure" not in status  # both had run
    assert vmi_or_none(env, "rerun") is None, "no new VMI after a clean end"
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    delete_vm(env, "rerun")


def test_always_restarts_both_and_once_neither(env: Env) -> None:
    create_vm(env, "always", runStrategy="Always")
    create_vm(env, "once", runStrategy="Once")
    for name in ("always", "once"):
        uid = the_vmi(env, name)["metadata"]["uid"]
        play(env, name, "Running", conditions=[ready()])
        shows(env, name, "Running")
        play(env, name, "Succeeded", conditions=[ready(False)])
        if name == "always":
            the_vmi(env, name, not_uid=uid)
            shows(env, name, "Starting")
        else:
            status = shows(env, name, "Stopped")
            vmi = env.vmi(name)  # kept, ended, and released by the VM controller
            assert vmi["metadata"]["uid"] == uid and FINALIZER not in vmi["metadata"]["finalizers"]
            assert "ready" not in status and status["created"] is True
    for name in ("always", "once"):
        delete_vm(env, name)


def test_halted_and_always_by_patch(env: Env) -> None:
    create_vm(env, "toggle", runStrategy="Halted")
    shows(env, "toggle", "Stopped")
    env.raw.merge_patch(f"{VMS}/toggle", {"spec": {"runStrategy": "Always"}})
    the_vmi(env, "toggle")
    env.raw.merge_patch(f"{VMS}/toggle", {"spec": {"runStrategy": "Halted"}})
    stopped(env, "toggle")
    delete_vm(env, "toggle")


def test_manual_acts_on_start_and_stop_requests(env: Env) -> None:
    create_vm(env, "manual", runStrategy="Manual")
    shows(env, "manual", "Stopped")
    env.raw.merge_patch(
        f"{VMS}/manual/status", {"status": {"stateChangeRequests": [{"action": "Start"}]}}
    )
    vmi = the_vmi(env, "manual")
    wait_for(
        "the start request acted on", lambda: "stateChangeRequests" not in status_of(env, "manual")
    )
    uid = vmi["metadata"]["uid"]
    env.raw.merge_patch(
        f"{VMS}/manual/status",
        {"status": {"stateChangeRequests": [{"action": "Stop", "uid": uid}]}},
    )
    status = stopped(env, "manual")
    assert "stateChangeRequests" not in status
    assert vmi_or_none(env, "manual") is None  # Manual: nothing starts by itself
    delete_vm(env, "manual")


def test_an_early_failure_backs_off_as_crash_loop(env: Env) -> None:
    create_vm(env, "crashy", runStrategy="Always")
    first = the_vmi(env, "crashy")
    failed_at = datetime.now(UTC)
    play(env, "crashy", "Failed")  # before it ever ran
    status = shows(env, "crashy", "CrashLoopBackOff")
    failure = status["startFailure"]
    assert failure["consecutiveFailCount"] == 1
    assert failure["lastFailedVMIUID"] == first["metadata"]["uid"]
    retry = timestamps.parse(failure["retryAfterTimestamp"])
    assert retry is not None
    assert 9 <= (retry - failed_at).total_seconds() <= 17  # 10 s, plus up to 5 s of jitter
    wait_for("the failed VMI gone", lambda: gone(env, "crashy"))
    assert status_of(env, "crashy")["printableStatus"] == "CrashLoopBackOff"
    delete_vm(env, "crashy")  # deleting a VM in CrashLoopBackOff leaves nothing


def test_a_template_change_to_a_running_vm_asks_for_a_restart(env: Env) -> None:
    create_vm(env, "edit", runStrategy="Always")
    the_vmi(env, "edit")
    play(env, "edit", "Running", conditions=[ready()])
    status = shows(env, "edit", "Running")
    generation = status["desiredGeneration"]
    assert not [c for c in status["conditions"] if c["type"] == "RestartRequired"]

    # a spec change that is no template change: the VMI's generation follows
    env.raw.merge_patch(f"{VMS}/edit", {"spec": {"runStrategy": "RerunOnFailure"}})
    wait_for(
        "observedGeneration to follow a run strategy change",
        lambda: status_of(env, "edit").get("observedGeneration") == generation + 1,
    )
    # a template change: RestartRequired, and the running VMI is left as it is
    memory = {
        "spec": {"template": {"spec": {"domain": {"resources": {"requests": {"memory": "256Mi"}}}}}}
    }
    env.raw.merge_patch(f"{VMS}/edit", memory)

    def restart_required() -> Json | None:
        found = [
            c
            for c in status_of(env, "edit").get("conditions") or []
            if c["type"] == "RestartRequired"
        ]
        return found[0] if found else None

    condition = wait_for("RestartRequired", restart_required)
    assert condition["status"] == "True"
    status = status_of(env, "edit")
    assert (status["observedGeneration"], status["desiredGeneration"]) == (
        generation + 1,
        generation + 2,
    )
    assert env.vmi("edit")["spec"]["domain"]["resources"]["requests"]["memory"] == "128Mi"
    delete_vm(env, "edit")


def test_deleting_a_vm_in_each_state_leaves_nothing(env: Env) -> None:
    """Stopped, Starting, Running, Paused, ErrorPvcNotFound, WaitingForVolumeBinding: the VM, its
    VMI and every finalizer go (CrashLoopBackOff is deleted above; Stopping and Terminating,
    which last as long as a guest's shutdown, with real guests in tests/e2e)."""
    create_vm(env, "del-stopped", running=False)
    shows(env, "del-stopped", "Stopped")
    create_vm(env, "del-starting", running=True)
    shows(env, "del-starting", "Starting")
    for name, conditions, shown in (
        ("del-running", [ready()], "Running"),
        (
            "del-paused",
            [ready(), {"type": "Paused", "status": "True", "reason": "PausedByUser"}],
            "Paused",
        ),
    ):
        create_vm(env, name, running=True)
        the_vmi(env, name)
        play(env, name, "Running", conditions=conditions)
        shows(env, name, shown)
    claim = copy.deepcopy(TEMPLATE)
    claim["spec"]["volumes"] = [{"name": "d", "persistentVolumeClaim": {"claimName": "nowhere"}}]
    env.raw.create(
        VMS,
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": "del-pvc"},
            "spec": {"running": True, "template": claim},
        },
    )
    shows(env, "del-pvc", "ErrorPvcNotFound")
    env.raw.create(  # no volume named, and no binder: never bound
        "/api/v1/namespaces/default/persistentvolumeclaims",
        {
            "metadata": {"name": "unbound"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    claim["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = "unbound"
    env.raw.create(
        VMS,
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": "del-unbound"},
            "spec": {"running": True, "template": claim},
        },
    )
    shows(env, "del-unbound", "WaitingForVolumeBinding")
    names = ("del-stopped", "del-starting", "del-running", "del-paused", "del-pvc", "del-unbound")
    for name in names:
        delete_vm(env, name)
    leftovers = [
        v["metadata"]["name"]
        for v in env.raw.get(VMIS)["items"]
        if v["metadata"]["name"].startswith("del-")
    ]
    assert leftovers == []


def test_an_orphan_vmi_of_the_vms_name_is_adopted(env: Env) -> None:
    env.create_vmi("adopt")
    create_vm(env, "adopt", running=True)
    vm = get_vm(env, "adopt")
    wait_for(
        "the VMI adopted",
        lambda: (
            [r["uid"] for r in env.vmi("adopt")["metadata"].get("ownerReferences") or []]
            == [vm["metadata"]["uid"]]
        ),
    )
    play(env, "adopt", "Running", conditions=[ready()])
    shows(env, "adopt", "Running")
    delete_vm(env, "adopt")
