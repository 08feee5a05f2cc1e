"""The pod phase and conditions as the kubelet computes them, as tables (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kvd.local.node import status
from kvd.local.node.containers import ContainerStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def running(name: str = "main") -> status.Observed:
    current = ContainerStatus(
        name=name, attempt=0, pid=10, started_at=T0, finished_at=None, exit_code=None, signal=None
    )
    return status.Observed(name=name, image="busybox", current=current)


def exited(code: int | None, name: str = "main", *, waiting: str | None = None) -> status.Observed:
    current = ContainerStatus(
        name=name, attempt=0, pid=10, started_at=T0, finished_at=T0, exit_code=code, signal=None
    )
    return status.Observed(
        name=name, image="busybox", current=current, waiting_reason=waiting, lost=code is None
    )


def not_started(name: str = "main", reason: str | None = None) -> status.Observed:
    return status.Observed(name=name, image="busybox", waiting_reason=reason)


def pod(policy: str, phase: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default", "uid": "u"},
        "spec": {"restartPolicy": policy, "containers": [{"name": "main"}]},
        "status": {"phase": phase} if phase else {},
    }


@pytest.mark.parametrize(
    ("policy", "init", "main", "expected"),
    [
        # init containers hold the pod in Pending; a failed one fails it only under Never
        ("Never", [running("i")], [not_started()], "Pending"),
        ("Never", [exited(1, "i")], [not_started()], "Failed"),
        ("OnFailure", [exited(1, "i", waiting="CrashLoopBackOff")], [not_started()], "Pending"),
        ("Always", [exited(0, "i")], [not_started(reason="ErrImagePull")], "Pending"),
        ("Never", [exited(0, "i")], [running()], "Running"),
        # every policy: running while a container runs
        ("Always", [], [running()], "Running"),
        ("Never", [], [running(), exited(0, "b")], "Running"),
        # everything stopped
        ("Never", [], [exited(0)], "Succeeded"),
        ("Never", [], [exited(2)], "Failed"),
        ("Never", [], [exited(0), exited(1, "b")], "Failed"),
        ("Never", [], [exited(None)], "Failed"),  # lost: ContainerStatusUnknown
        ("OnFailure", [], [exited(0)], "Succeeded"),
        ("OnFailure", [], [exited(1, waiting="CrashLoopBackOff")], "Running"),
        ("Always", [], [exited(0, waiting="CrashLoopBackOff")], "Running"),
        # a container that never started keeps the pod Pending
        ("Always", [], [not_started(reason="ErrImagePull")], "Pending"),
        ("Never", [], [running(), not_started("b")], "Pending"),
    ],
)
def test_phase(
    policy: str, init: list[status.Observed], main: list[status.Observed], expected: str
) -> None:
    assert status.phase(pod(policy), init, main) == expected


@pytest.mark.parametrize("terminal", ["Succeeded", "Failed"])
def test_a_terminal_phase_is_never_left(terminal: str) -> None:
    assert status.phase(pod("Always", terminal), [], [running()]) == terminal


def _status(p: dict[str, Any], main: list[status.Observed], now: str) -> dict[str, Any]:
    return status.pod_status(
        p,
        init=[],
        main=main,
        pod_ip="10.0.0.2",
        host_ip="10.0.0.1",
        start_time="2026-01-01T00:00:00Z",
        sandbox_ready=True,
        now=now,
    )


def test_unchanged_observation_gives_an_equal_status_so_nothing_is_written() -> None:
    p = pod("Always")
    first = _status(p, [running()], "2026-01-01T00:00:01Z")
    p["status"] = first
    again = _status(p, [running()], "2026-01-01T00:05:00Z")
    assert again == first


def test_condition_transition_time_moves_only_when_its_status_changes() -> None:
    p = pod("Always")
    p["status"] = _status(p, [running()], "2026-01-01T00:00:01Z")
    ready = {**running().__dict__, "ready": True}
    after = _status(p, [status.Observed(**ready)], "2026-01-01T00:00:09Z")
    times = {c["type"]: (c["status"], c["lastTransitionTime"]) for c in after["conditions"]}
    assert times["Ready"] == ("True", "2026-01-01T00:00:09Z")
    assert times["Initialized"] == ("True", "2026-01-01T00:00:01Z")
    assert after["containerStatuses"][0]["ready"] is True
