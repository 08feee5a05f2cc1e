"""What the controller writes for a step: only what changed, conditions it does not own kept,
condition transition times kept while their status holds, phases never backwards."""

from __future__ import annotations

from typing import Any

from kvd.controller import phase
from kvd.controller.vmi import _NotSynchronized, status_change

NOW = "2026-11-27T00:00:10Z"
RUNNING = phase.Pod(name="p", uid="pod-uid", phase="Running", node="n1")


def test_scheduled_sets_node_and_active_pod() -> None:
    status = {
        "phase": "Scheduling",
        "conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": "t0"},
            {"type": "PodScheduled", "status": "False", "lastTransitionTime": "t0"},
        ],
    }
    change = status_change(
        status, phase.Step(phase="Scheduled", scheduled_on=RUNNING), None, now=NOW
    )
    assert change == {
        "phase": "Scheduled",
        "nodeName": "n1",
        "activePods": {"pod-uid": "n1"},
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": "t0"}],
        "phaseTransitionTimestamps": [{"phase": "Scheduled", "phaseTransitionTimestamp": NOW}],
    }


def test_unchanged_writes_nothing() -> None:
    status: dict[str, Any] = {
        "phase": "Scheduling",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "m",
                "lastTransitionTime": "t0",
            }
        ],
    }
    step = phase.Step(
        phase="Scheduling",
        conditions=(phase.Condition("PodScheduled", False, "Unschedulable", "m"),),
    )
    assert status_change(status, step, None, now=NOW) == {}


def test_problem_is_synchronized_false_and_pending() -> None:
    problem = _NotSynchronized("FailedPvcNotFound", "PVC default/x does not exist")
    change = status_change({}, phase.Step(phase="Pending"), problem, now=NOW)
    assert change["phase"] == "Pending"
    assert change["conditions"] == [
        {
            "type": "Synchronized",
            "status": "False",
            "reason": "FailedPvcNotFound",
            "message": "PVC default/x does not exist",
            "lastTransitionTime": NOW,
        }
    ]


def test_never_backwards_and_final_reason() -> None:
    assert (
        status_change({"phase": "Scheduled"}, phase.Step(phase="Scheduling"), None, now=NOW) == {}
    )
    change = status_change(
        {"phase": "Scheduled"}, phase.Step(phase="Failed", reason="OOMKilled"), None, now=NOW
    )
    assert change["phase"] == "Failed"
    assert change["reason"] == "OOMKilled"


def test_an_unknown_phase_moves_on() -> None:
    """Unknown is a phase the API allows; the controller must not choke on it."""
    change = status_change(
        {"phase": "Unknown"}, phase.Step(phase="Failed", reason="LauncherPodDeleted"), None, now=NOW
    )
    assert change == {
        "phase": "Failed",
        "reason": "LauncherPodDeleted",
        "phaseTransitionTimestamps": [{"phase": "Failed", "phaseTransitionTimestamp": NOW}],
    }


def test_a_final_phase_is_never_replaced_by_the_other() -> None:
    step = phase.Step(phase="Failed", reason="Deleted", remove_finalizer=True)
    assert status_change({"phase": "Succeeded"}, step, None, now=NOW) == {}
