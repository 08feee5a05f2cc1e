"""What start, stop and restart write for each run strategy (KubeVirt's virt-api rules)."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.controller import lifecycle
from kvd.controller.lifecycle import Kind, Refusal

Json = dict[str, Any]
GUARD = {"op": "test", "path": "/metadata/resourceVersion", "value": "7"}


def vm(strategy: str | None = None, *, running: bool | None = None, **status: Any) -> Json:
    spec: Json = {}
    if strategy is not None:
        spec["runStrategy"] = strategy
    if running is not None:
        spec["running"] = running
    made: Json = {"metadata": {"name": "vm1", "resourceVersion": "7"}, "spec": spec}
    return {**made, "status": status} if status else made


def vmi(phase: str = "Running", *, grace: int | None = None, **status: Any) -> Json:
    spec = {} if grace is None else {"terminationGracePeriodSeconds": grace}
    return {
        "metadata": {"name": "vm1", "uid": "u1"},
        "spec": spec,
        "status": {"phase": phase, **status},
    }


def refused(kind: Kind, call: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(Refusal) as caught:
        call(*args, **kw)
    assert caught.value.kind == kind
    return caught.value.message


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        pytest.param(
            vm("Halted"),
            lifecycle.Patch(
                "spec", [GUARD, {"op": "add", "path": "/spec/runStrategy", "value": "Always"}]
            ),
            id="halted-runs",
        ),
        pytest.param(
            vm(running=False),
            lifecycle.Patch(
                "spec", [GUARD, {"op": "replace", "path": "/spec/running", "value": True}]
            ),
            id="running-false-runs",
        ),
        pytest.param(
            vm("Manual", printableStatus="Stopped"),
            lifecycle.Patch(
                "status",
                [
                    GUARD,
                    {
                        "op": "add",
                        "path": "/status/stateChangeRequests",
                        "value": [{"action": "Start"}],
                    },
                ],
            ),
            id="manual-start-request",
        ),
    ],
)
def test_start_without_a_vmi(machine: Json, expected: lifecycle.Patch) -> None:
    assert lifecycle.start(machine, None) == expected


def test_start_refusals() -> None:
    assert "already running" in refused(Kind.CONFLICT, lifecycle.start, vm("Halted"), vmi())
    message = refused(Kind.CONFLICT, lifecycle.start, vm("Always"), None)
    assert message == "Always does not support manual start requests"
    failed = vmi("Failed")
    assert "failed state" in refused(Kind.CONFLICT, lifecycle.start, vm("RerunOnFailure"), failed)
    assert "paused" in refused(Kind.INVALID, lifecycle.start, vm("Halted"), None, paused=True)


def test_start_of_a_manual_vm_whose_vmi_ended_replaces_it() -> None:
    patch = lifecycle.start(vm("Manual"), vmi("Succeeded"))
    assert patch.ops[-1]["value"] == [{"action": "Stop", "uid": "u1"}, {"action": "Start"}]


def test_a_vm_without_status_gets_one_and_a_start_failure_is_cleared() -> None:
    assert lifecycle.start(vm("Manual"), None).ops[1] == {
        "op": "add",
        "path": "/status",
        "value": {},
    }
    failing = vm("Manual", startFailure={"consecutiveFailCount": 2})
    ops = lifecycle.start(failing, None).ops
    assert ops[-1] == {"op": "remove", "path": "/status/startFailure"}


@pytest.mark.parametrize("strategy", ["Always", "Once"])
def test_stop_of_a_self_running_vm_halts_it(strategy: str) -> None:
    patches = lifecycle.stop(vm(strategy), vmi(grace=30), grace_period=5)
    assert [p.target for p in patches] == ["vmi", "spec"]
    assert patches[0].ops == [
        {"op": "test", "path": "/spec/terminationGracePeriodSeconds", "value": 30},
        {"op": "add", "path": "/spec/terminationGracePeriodSeconds", "value": 5},
    ]
    assert patches[1].ops[-1] == {"op": "add", "path": "/spec/runStrategy", "value": "Halted"}


@pytest.mark.parametrize("strategy", ["Manual", "RerunOnFailure"])
def test_stop_of_a_requested_vm_sends_a_stop_request(strategy: str) -> None:
    pending = vm(strategy, stateChangeRequests=[{"action": "Start"}])
    (patch,) = lifecycle.stop(pending, vmi())
    assert patch.target == "status"
    assert patch.ops[-1]["value"] == [{"action": "Stop", "uid": "u1"}]  # replaces the Start
    assert "not running" in refused(Kind.CONFLICT, lifecycle.stop, vm(strategy), vmi("Failed"))


def test_a_halted_vm_only_takes_a_shorter_grace_period() -> None:
    stopping = vmi(grace=30)
    assert "shorter grace period" in refused(Kind.CONFLICT, lifecycle.stop, vm("Halted"), stopping)
    assert "shorter" in refused(
        Kind.CONFLICT, lifecycle.stop, vm("Halted"), stopping, grace_period=30
    )
    patches = lifecycle.stop(vm("Halted"), stopping, grace_period=0)
    assert [p.target for p in patches] == ["vmi", "status"]
    assert "not running" in refused(Kind.CONFLICT, lifecycle.stop, vm("Halted"), None)
    assert "0 or more" in refused(
        Kind.INVALID, lifecycle.stop, vm("Always"), stopping, grace_period=-1
    )


def test_restart_stops_this_vmi_and_starts_another() -> None:
    (patch,) = lifecycle.restart(vm("Always"), vmi())
    assert patch.ops[-1]["value"] == [{"action": "Stop", "uid": "u1"}, {"action": "Start"}]
    forced = lifecycle.restart(vm("Manual"), vmi(), grace_period=0)
    assert [p.target for p in forced] == ["vmi", "status"]
    for strategy in ("Halted", "Once"):
        message = refused(Kind.CONFLICT, lifecycle.restart, vm(strategy), vmi())
        assert f"RunStrategy {strategy} does not support manual restart" in message
    assert "not running" in refused(Kind.CONFLICT, lifecycle.restart, vm("Always"), None)
    busy = vm("Always", stateChangeRequests=[{"action": "Stop", "uid": "u0"}])
    assert "already underway" in refused(Kind.CONFLICT, lifecycle.restart, busy, vmi())


def test_pause_and_unpause_need_a_running_vmi_in_the_other_state() -> None:
    paused = vmi(conditions=[{"type": "Paused", "status": "True"}])
    lifecycle.check_pause(vmi())
    lifecycle.check_unpause(paused)
    assert "already paused" in refused(Kind.CONFLICT, lifecycle.check_pause, paused)
    assert "not paused" in refused(Kind.CONFLICT, lifecycle.check_unpause, vmi())
    assert "not running" in refused(Kind.CONFLICT, lifecycle.check_pause, vmi("Scheduled"))
    probed = vmi()
    probed["spec"]["livenessProbe"] = {"tcpSocket": {"port": 22}}
    assert "livenessProbe" in refused(Kind.FORBIDDEN, lifecycle.check_pause, probed)
