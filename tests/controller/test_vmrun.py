"""The run strategies as a table: (strategy, the VM's status, its VMI) → start, stop or wait;
the state change requests; the start back-off (KubeVirt's formula) and its bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kvd.controller import vmrun
from kvd.controller.vmrun import VMI, Action, decide

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
RUNNING = VMI(uid="u1", phase="Running", ran=True)
FAILED = VMI(uid="u1", phase="Failed", ran=True)
SUCCEEDED = VMI(uid="u1", phase="Succeeded", ran=True)
FAILED_DELETING = VMI(uid="u1", phase="Failed", ran=True, deleting=True)
START = {"stateChangeRequests": [{"action": "Start"}]}
STOP_U1 = {"stateChangeRequests": [{"action": "Stop", "uid": "u1"}]}
STOP_OTHER = {"stateChangeRequests": [{"action": "Stop", "uid": "u0"}]}
BACKING_OFF = {
    "startFailure": {"consecutiveFailCount": 1, "retryAfterTimestamp": "2026-01-01T12:00:30Z"}
}
BACKED_OFF = {
    "startFailure": {"consecutiveFailCount": 1, "retryAfterTimestamp": "2026-01-01T11:59:30Z"}
}


@pytest.mark.parametrize(
    ("strategy", "status", "vmi", "expected"),
    [
        # Always: one VMI, always; restarted when it ends or a Stop names it
        pytest.param(
            "Always", {}, None, Action(start=True, why="runStrategy Always"), id="always-starts"
        ),
        pytest.param("Always", {}, RUNNING, Action(), id="always-keeps-a-running-vmi"),
        pytest.param(
            "Always", {}, FAILED, Action(stop=True, why="restart"), id="always-restarts-failed"
        ),
        pytest.param(
            "Always",
            {},
            SUCCEEDED,
            Action(stop=True, why="restart"),
            id="always-restarts-succeeded",
        ),
        pytest.param(
            "Always",
            STOP_U1,
            RUNNING,
            Action(stop=True, why="stop request"),
            id="always-restart-request",
        ),
        pytest.param("Always", STOP_OTHER, RUNNING, Action(), id="always-stop-for-another-vmi"),
        pytest.param(
            "Always",
            BACKING_OFF,
            None,
            Action(again=30.0, why="start back-off"),
            id="always-backs-off",
        ),
        pytest.param(
            "Always",
            BACKED_OFF,
            None,
            Action(start=True, why="runStrategy Always"),
            id="always-backed-off",
        ),
        # RerunOnFailure: a failure restarts (through a Start request), a clean end does not
        pytest.param(
            "RerunOnFailure",
            {},
            None,
            Action(start=True, why="runStrategy RerunOnFailure"),
            id="rerun-first-start",
        ),
        pytest.param("RerunOnFailure", {}, RUNNING, Action(), id="rerun-keeps-running"),
        pytest.param(
            "RerunOnFailure",
            {},
            FAILED,
            Action(stop=True, request_start=True, why="VMI Failed"),
            id="rerun-failed-requests-start",
        ),
        pytest.param(
            "RerunOnFailure",
            START,
            FAILED,
            Action(stop=True, why="VMI Failed"),
            id="rerun-failed-once-requested",
        ),
        pytest.param(
            "RerunOnFailure",
            {},
            SUCCEEDED,
            Action(stop=True, why="VMI Succeeded"),
            id="rerun-succeeded-stops",
        ),
        pytest.param("RerunOnFailure", {}, FAILED_DELETING, Action(), id="rerun-deleting-waits"),
        pytest.param(
            "RerunOnFailure",
            STOP_U1,
            RUNNING,
            Action(stop=True, why="stop request"),
            id="rerun-stop-request",
        ),
        pytest.param(
            "RerunOnFailure",
            {"runStrategy": "RerunOnFailure"},
            None,
            Action(),
            id="rerun-stays-off-after-clean-end",
        ),
        pytest.param(
            "RerunOnFailure",
            {"runStrategy": "RerunOnFailure", **START},
            None,
            Action(start=True, why="runStrategy RerunOnFailure"),
            id="rerun-start-request",
        ),
        pytest.param(
            "RerunOnFailure",
            {"runStrategy": "Halted"},
            None,
            Action(start=True, why="runStrategy RerunOnFailure"),
            id="rerun-from-another-strategy-starts",
        ),
        pytest.param(
            "RerunOnFailure",
            {"runStrategy": "RerunOnFailure", **START, **BACKING_OFF},
            None,
            Action(again=30.0, why="start back-off"),
            id="rerun-backs-off",
        ),
        # Manual: only requests act
        pytest.param("Manual", {}, None, Action(), id="manual-waits"),
        pytest.param(
            "Manual", START, None, Action(start=True, why="start request"), id="manual-start"
        ),
        pytest.param("Manual", {}, RUNNING, Action(), id="manual-keeps-running"),
        pytest.param("Manual", {}, FAILED, Action(), id="manual-keeps-an-ended-vmi"),
        pytest.param(
            "Manual", STOP_U1, RUNNING, Action(stop=True, why="stop request"), id="manual-stop"
        ),
        pytest.param(
            "Manual",
            {**START, **BACKING_OFF},
            None,
            Action(start=True, why="start request"),
            id="manual-no-backoff",
        ),
        # Halted: nothing runs
        pytest.param("Halted", {}, None, Action(), id="halted-waits"),
        pytest.param(
            "Halted", {}, RUNNING, Action(stop=True, why="runStrategy Halted"), id="halted-stops"
        ),
        pytest.param(
            "Halted",
            {},
            SUCCEEDED,
            Action(stop=True, why="runStrategy Halted"),
            id="halted-removes-ended",
        ),
        pytest.param(
            "Halted", START, None, Action(set_running=True), id="halted-start-request-sets-running"
        ),
        # Once: one VMI, kept when it ends
        pytest.param(
            "Once", {}, None, Action(start=True, why="runStrategy Once"), id="once-starts"
        ),
        pytest.param("Once", {}, FAILED, Action(), id="once-keeps-failed"),
        pytest.param("Once", {}, SUCCEEDED, Action(), id="once-keeps-succeeded"),
    ],
)
def test_run_strategies(
    strategy: str, status: dict[str, Any], vmi: VMI | None, expected: Action
) -> None:
    assert decide(strategy, status, vmi, now=NOW) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({"running": True}, "Always", id="running-true"),
        pytest.param({"running": False}, "Halted", id="running-false"),
        pytest.param({"runStrategy": "Manual"}, "Manual", id="strategy"),
        pytest.param({}, "Halted", id="neither-is-halted"),
    ],
)
def test_run_strategy_of_a_spec(spec: dict[str, Any], expected: str) -> None:
    assert vmrun.run_strategy(spec) == expected


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        pytest.param({"running": True, "runStrategy": "Always"}, "mutually exclusive", id="both"),
        pytest.param({"runStrategy": "Sometimes"}, "unknown runStrategy 'Sometimes'", id="unknown"),
    ],
)
def test_a_spec_with_no_valid_strategy_says_why(spec: dict[str, Any], words: str) -> None:
    with pytest.raises(vmrun.InvalidRunStrategy, match=words):
        vmrun.run_strategy(spec)


@pytest.mark.parametrize(
    ("status", "vmi", "done"),
    [
        pytest.param({}, None, False, id="no-request"),
        pytest.param(STOP_U1, None, True, id="stop-once-vmi-gone"),
        pytest.param(STOP_U1, RUNNING, False, id="stop-while-its-vmi-runs"),
        pytest.param(STOP_OTHER, RUNNING, True, id="stop-of-an-older-vmi"),
        pytest.param(
            {"stateChangeRequests": [{"action": "Stop"}]}, RUNNING, True, id="stop-without-uid"
        ),
        pytest.param(START, None, False, id="start-not-yet"),
        pytest.param(START, RUNNING, True, id="start-once-a-vmi-runs"),
        pytest.param(START, FAILED, False, id="start-while-the-failed-one-is-there"),
        pytest.param(START, VMI(uid="u1", deleting=True), False, id="start-while-deleting"),
    ],
)
def test_the_first_request_goes_once_it_had_its_effect(
    status: dict[str, Any], vmi: VMI | None, done: bool
) -> None:
    assert vmrun.done_with_first_request(status, vmi) is done


@pytest.mark.parametrize(
    ("failures", "jitter", "seconds"),
    [
        pytest.param(0, 0.0, 10, id="zero-counts-as-one"),
        pytest.param(1, 0.0, 10, id="first-least"),
        pytest.param(1, 0.999, 15, id="first-most"),
        pytest.param(2, 0.0, 40, id="second-least"),
        pytest.param(2, 0.999, 60, id="second-most"),
        pytest.param(3, 0.0, 90, id="third"),
        pytest.param(4, 0.5, 200, id="fourth"),
        pytest.param(5, 0.0, 250, id="fifth-least"),
        pytest.param(5, 0.999, 300, id="fifth-capped"),
        pytest.param(20, 0.0, 300, id="capped"),
    ],
)
def test_start_backoff_is_kubevirts_formula(failures: int, jitter: float, seconds: int) -> None:
    assert vmrun.start_backoff(failures, jitter=jitter) == seconds


def test_the_backoff_grows_with_each_failure_whatever_the_jitter() -> None:
    for failures in range(1, 5):
        longest = vmrun.start_backoff(failures, jitter=0.999)
        assert vmrun.start_backoff(failures + 1, jitter=0.0) > longest


EARLY_FAIL = VMI(uid="u2", phase="Failed")


@pytest.mark.parametrize(
    ("strategy", "status", "vmi", "expected"),
    [
        pytest.param(
            "Always",
            {},
            EARLY_FAIL,
            {
                "consecutiveFailCount": 1,
                "lastFailedVMIUID": "u2",
                "retryAfterTimestamp": "2026-01-01T12:00:10Z",
            },
            id="first-failure",
        ),
        pytest.param(
            "RerunOnFailure",
            {"startFailure": {"consecutiveFailCount": 1, "lastFailedVMIUID": "u1"}},
            EARLY_FAIL,
            {
                "consecutiveFailCount": 2,
                "lastFailedVMIUID": "u2",
                "retryAfterTimestamp": "2026-01-01T12:00:40Z",
            },
            id="second-failure",
        ),
        pytest.param(
            "Always",
            {"startFailure": {"consecutiveFailCount": 1, "lastFailedVMIUID": "u2"}},
            EARLY_FAIL,
            {"consecutiveFailCount": 1, "lastFailedVMIUID": "u2"},
            id="counted-once",
        ),
        pytest.param(
            "Always",
            {"startFailure": {"consecutiveFailCount": 3}},
            RUNNING,
            None,
            id="a-run-clears",
        ),
        pytest.param(
            "Always",
            {"startFailure": {"consecutiveFailCount": 3}},
            FAILED,
            None,
            id="ran-then-failed-clears",
        ),
        pytest.param(
            "Manual",
            {"startFailure": {"consecutiveFailCount": 3}},
            EARLY_FAIL,
            None,
            id="manual-clears",
        ),
        pytest.param(
            "Halted", {"startFailure": {"consecutiveFailCount": 3}}, None, None, id="halted-clears"
        ),
        pytest.param(
            "Always",
            {"startFailure": {"consecutiveFailCount": 3}},
            None,
            {"consecutiveFailCount": 3},
            id="kept-while-no-vmi",
        ),
        pytest.param("Once", {}, VMI(uid="u3", phase="Scheduling"), None, id="not-ended-yet"),
    ],
)
def test_start_failures_are_counted_until_a_vmi_runs(
    strategy: str, status: dict[str, Any], vmi: VMI | None, expected: dict[str, Any] | None
) -> None:
    assert vmrun.start_failure(strategy, status, vmi, now=NOW, jitter=0.0) == expected


def test_backoff_left_reads_the_retry_time() -> None:
    assert vmrun.backoff_left(BACKING_OFF, NOW) == 30.0
    assert vmrun.backoff_left(BACKING_OFF, NOW + timedelta(seconds=45)) == 0.0
    assert vmrun.backoff_left({}, NOW) == 0.0


def test_view_reads_a_vmi() -> None:
    vmi = {
        "metadata": {"uid": "u1", "deletionTimestamp": "2026-01-01T00:00:00Z"},
        "status": {
            "phase": "Failed",
            "phaseTransitionTimestamps": [{"phase": "Running"}, {"phase": "Failed"}],
        },
    }
    assert vmrun.view(vmi) == VMI(uid="u1", phase="Failed", deleting=True, ran=True)
    assert vmrun.view(None) is None
