"""A VM's status as a table: printableStatus in KubeVirt's order for every state that applies
to kvd, and the fields and conditions around it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kvd.controller import vmstatus, vmvolumes
from kvd.controller.vmstatus import Observed

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
NOW_TEXT = "2026-01-01T12:00:00Z"
NOTHING = Observed()
Json = dict[str, Any]


def vm(strategy: str = "Always", *, deleting: bool = False, status: Json | None = None) -> Json:
    meta: Json = {"name": "v", "namespace": "default", "uid": "vm-1", "generation": 3}
    if deleting:
        meta["deletionTimestamp"] = NOW_TEXT
    return {"metadata": meta, "spec": {"runStrategy": strategy}, "status": status or {}}


def vmi(
    phase: str = "Running",
    *,
    conditions: list[Json] | None = None,
    deleting: bool = False,
    ran: bool = False,
    generation: str = "3",
) -> Json:
    meta: Json = {
        "name": "v",
        "uid": "u1",
        "annotations": {"kubevirt.io/vm-generation": generation},
    }
    if deleting:
        meta["deletionTimestamp"] = NOW_TEXT
    times = [{"phase": "Running", "phaseTransitionTimestamp": NOW_TEXT}] if ran else []
    return {
        "metadata": meta,
        "status": {
            "phase": phase,
            "conditions": conditions or [],
            "phaseTransitionTimestamps": times,
        },
    }


def cond(kind: str, status: str = "True", reason: str = "", message: str = "") -> Json:
    c = {"type": kind, "status": status, "lastTransitionTime": "2026-01-01T11:00:00Z"}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def compute(
    v: Json, i: Json | None, observed: Observed = NOTHING, strategy: str | None = None
) -> Json:
    chosen = strategy if strategy is not None else v["spec"]["runStrategy"]
    return vmstatus.compute(v, i, observed, strategy=chosen, now=NOW, jitter=0.0)


CRASHED = {"startFailure": {"consecutiveFailCount": 2, "lastFailedVMIUID": "u0"}}


@pytest.mark.parametrize(
    ("v", "i", "observed", "shown"),
    [
        pytest.param(vm("Halted"), None, Observed(), "Stopped", id="stopped"),
        pytest.param(
            vm(), None, Observed(start_expected=True), "Starting", id="starting-creation-under-way"
        ),
        pytest.param(vm(), vmi(""), Observed(), "Starting", id="starting-unprocessed"),
        pytest.param(vm(), vmi("Pending"), Observed(), "Starting", id="starting-pending"),
        pytest.param(vm(), vmi("Scheduling"), Observed(), "Starting", id="starting-scheduling"),
        pytest.param(vm(), vmi("Scheduled"), Observed(), "Starting", id="starting-scheduled"),
        pytest.param(vm(), vmi("Running"), Observed(), "Running", id="running"),
        pytest.param(
            vm(),
            vmi("Running", conditions=[cond("Paused", reason="PausedByUser")]),
            Observed(),
            "Paused",
            id="paused",
        ),
        pytest.param(
            vm(),
            vmi("Running", conditions=[cond("Paused", "False")]),
            Observed(),
            "Running",
            id="paused-false-runs",
        ),
        pytest.param(
            vm(), vmi("Running", deleting=True), Observed(), "Stopping", id="stopping-deleted"
        ),
        pytest.param(
            vm(),
            vmi("Running"),
            Observed(stop_expected=True),
            "Stopping",
            id="stopping-deletion-under-way",
        ),
        pytest.param(
            vm(),
            vmi("Succeeded", deleting=True, ran=True),
            Observed(),
            "Stopped",
            id="ended-while-deleted",
        ),
        pytest.param(
            vm(deleting=True),
            vmi("Running", deleting=True),
            Observed(),
            "Terminating",
            id="terminating-first",
        ),
        pytest.param(
            vm(deleting=True), None, Observed(), "Terminating", id="terminating-without-vmi"
        ),
        pytest.param(
            vm(),
            vmi("Scheduling", conditions=[cond("Synchronized", "False", "FailedPvcNotFound")]),
            Observed(),
            "ErrorPvcNotFound",
            id="pvc-not-found",
        ),
        pytest.param(
            vm(),
            vmi("Scheduling", conditions=[cond("PodScheduled", "False", "Unschedulable")]),
            Observed(),
            "ErrorUnschedulable",
            id="unschedulable",
        ),
        pytest.param(
            vm(),
            vmi("Scheduling", conditions=[cond("Synchronized", "False", "ErrImagePull")]),
            Observed(),
            "ErrImagePull",
            id="err-image-pull",
        ),
        pytest.param(
            vm(),
            vmi("Scheduling", conditions=[cond("Synchronized", "False", "ImagePullBackOff")]),
            Observed(),
            "ImagePullBackOff",
            id="image-pull-backoff",
        ),
        pytest.param(
            vm(),
            vmi("Scheduling"),
            Observed(claims_unbound=True),
            "WaitingForVolumeBinding",
            id="unbound-claim",
        ),
        pytest.param(
            vm("Halted"),
            None,
            Observed(claims_unbound=True),
            "Stopped",
            id="unbound-claim-of-a-stopped-vm",
        ),
        pytest.param(
            vm(),
            None,
            Observed(data_volumes=vmvolumes.View(ready=False, provisioning=True)),
            "Provisioning",
            id="data-volume-importing",
        ),
        pytest.param(
            vm(),
            None,
            Observed(data_volumes=vmvolumes.View(ready=False, error=True, provisioning=True)),
            "DataVolumeError",
            id="data-volume-failed",
        ),
        pytest.param(
            vm(),
            None,
            Observed(data_volumes=vmvolumes.View(ready=False, waiting_for_binding=True)),
            "WaitingForVolumeBinding",
            id="data-volume-waits-for-first-consumer",
        ),
        pytest.param(
            vm("Halted"),
            None,
            Observed(data_volumes=vmvolumes.View(ready=False, waiting_for_binding=True)),
            "Stopped",
            id="data-volume-of-a-stopped-vm-waits",
        ),
        pytest.param(vm(status=CRASHED), None, Observed(), "CrashLoopBackOff", id="crash-loop"),
        pytest.param(
            vm(status=CRASHED),
            vmi("Failed"),
            Observed(),
            "CrashLoopBackOff",
            id="crash-loop-ended-vmi",
        ),
        pytest.param(
            vm(status=CRASHED),
            None,
            Observed(start_expected=True),
            "Starting",
            id="crash-loop-retrying",
        ),
        pytest.param(
            vm("Manual", status=CRASHED), None, Observed(), "Stopped", id="manual-never-crash-loops"
        ),
        pytest.param(vm(), vmi("Failed", ran=True), Observed(), "Stopped", id="ended"),
        pytest.param(vm(), vmi("Unknown"), Observed(), "Unknown", id="unknown"),
    ],
)
def test_printable_status(v: Json, i: Json | None, observed: Observed, shown: str) -> None:
    assert compute(v, i, observed)["printableStatus"] == shown


def test_a_running_vm_shows_its_vmi() -> None:
    ready = cond("Ready")
    status = compute(vm(), vmi("Running", conditions=[ready, cond("SoftwareEmulation")]))
    assert status["created"] is True and status["ready"] is True
    assert (status["observedGeneration"], status["desiredGeneration"]) == (3, 3)
    assert status["runStrategy"] == "Always"
    assert [c["type"] for c in status["conditions"]] == ["Ready", "SoftwareEmulation"]
    assert status["conditions"][0] == ready  # copied as the VMI has it


def test_a_vm_without_vmi_is_neither_created_nor_ready() -> None:
    before = {"created": True, "ready": True, "observedGeneration": 2, "desiredGeneration": 3}
    status = compute(vm("Halted", status=before), None)
    assert "created" not in status and "ready" not in status
    assert (status["observedGeneration"], status["desiredGeneration"]) == (2, 3)  # kept
    [ready] = status["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "VMINotExists")
    assert ready["lastTransitionTime"] == NOW_TEXT


def test_run_strategy_shows_once_the_vm_had_a_vmi() -> None:
    assert "runStrategy" not in compute(vm("RerunOnFailure"), None)
    assert compute(vm("RerunOnFailure"), vmi())["runStrategy"] == "RerunOnFailure"
    switched = vm("Halted", status={"runStrategy": "RerunOnFailure"})
    assert compute(switched, None)["runStrategy"] == "Halted"


def test_vmi_conditions_follow_the_vmi() -> None:
    before = vm(status={"conditions": [cond("Paused"), cond("RestartRequired"), cond("Failure")]})
    status = compute(before, vmi("Running", conditions=[cond("Ready")]))
    # Paused went with the VMI's; Failure goes without an error; RestartRequired is the caller's
    assert [c["type"] for c in status["conditions"]] == ["RestartRequired", "Ready"]


def test_failure_and_restart_required_conditions() -> None:
    observed = Observed(
        error=("FailedCreate", "Failure while starting VMI: boom"), restart_required=True
    )
    status = compute(vm(), vmi("Running", conditions=[cond("Ready")]), observed)
    by_type = {c["type"]: c for c in status["conditions"]}
    assert (by_type["Failure"]["reason"], by_type["Failure"]["message"]) == (
        "FailedCreate",
        "Failure while starting VMI: boom",
    )
    assert by_type["RestartRequired"]["status"] == "True"
    cleared = compute(
        vm(status=status),
        vmi("Running", conditions=[cond("Ready")]),
        Observed(restart_required=False),
    )
    assert [c["type"] for c in cleared["conditions"]] == ["Ready"]


def test_an_unchanged_vm_computes_the_same_status() -> None:
    """Level-triggered: recomputing changes nothing, so nothing is written again."""
    v, i = vm(), vmi("Running", conditions=[cond("Ready")])
    first = compute(v, i)
    assert compute(vm(status=first), i) == first
    stopped = compute(vm("Halted"), None)
    assert compute(vm("Halted", status=stopped), None) == stopped


def test_requests_that_had_their_effect_go() -> None:
    requests = [{"action": "Stop", "uid": "u0"}, {"action": "Start"}]
    status = compute(vm("Manual", status={"stateChangeRequests": requests}), vmi("Running"))
    assert status["stateChangeRequests"] == [{"action": "Start"}]  # one at a time
    assert "stateChangeRequests" not in compute(vm("Manual", status=status), vmi("Running"))


def test_an_early_failure_starts_the_backoff() -> None:
    status = compute(vm(), vmi("Failed"))
    assert status["startFailure"] == {
        "consecutiveFailCount": 1,
        "lastFailedVMIUID": "u1",
        "retryAfterTimestamp": "2026-01-01T12:00:10Z",
    }
    assert status["printableStatus"] == "CrashLoopBackOff"
