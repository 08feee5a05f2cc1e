"""The VMI status the handler writes, from what it observed (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.handler import phase, status
from kvd.rpc.launcher.v1 import domain_pb2

RUNNING = domain_pb2.Domain(
    state=domain_pb2.DOMAIN_STATE_RUNNING,
    reason=domain_pb2.DOMAIN_STATE_REASON_BOOTED,
    interfaces=[
        domain_pb2.DomainInterface(
            name="default", mac_address="02:00:00:00:00:01", ip_addresses=["10.88.0.5"]
        )
    ],
)
OBSERVED = phase.Observed(domain_state=RUNNING.state, domain_reason=RUNNING.reason, ever_ran=True)


def change(current: dict[str, Any], *, now: str, **kw: Any) -> dict[str, Any]:
    decision = phase.next_phase(current.get("phase") or "", OBSERVED)
    args: dict[str, Any] = {"domain": RUNNING, "emulated": True, "synchronized": None}
    args.update(kw)
    return status.change(current, decision=decision, observed=OBSERVED, now=now, **args)


def test_first_running_write_and_then_nothing_to_write() -> None:
    scheduled = {"phase": "Scheduled", "conditions": [{"type": "Synchronized", "status": "True"}]}
    first = change(scheduled, now="T1")
    assert first["phase"] == "Running"
    assert first["interfaces"] == [
        {
            "name": "default",
            "mac": "02:00:00:00:00:01",
            "ipAddress": "10.88.0.5",
            "ipAddresses": ["10.88.0.5"],
        }
    ]
    assert first["phaseTransitionTimestamps"] == [
        {"phase": "Running", "phaseTransitionTimestamp": "T1"}
    ]
    kinds = [c["type"] for c in first["conditions"]]
    assert kinds == ["Synchronized", "Ready", "SoftwareEmulation"]  # others' conditions kept
    assert change({**scheduled, **first}, now="T2") == {}  # same observation later: no write


def test_sync_failure_sets_synchronized_and_success_clears_it() -> None:
    failed = change({"phase": "Scheduled"}, now="T1", synchronized=(False, "SyncFailed", "no"))
    sync = [c for c in failed["conditions"] if c["type"] == "Synchronized"]
    assert sync == [
        {
            "type": "Synchronized",
            "status": "False",
            "lastTransitionTime": "T1",
            "reason": "SyncFailed",
            "message": "no",
        }
    ]
    recovered = change({"phase": "Scheduled", **failed}, now="T2")
    assert all(c["type"] != "Synchronized" for c in recovered["conditions"])


def test_acpi_counts_as_off_with_a_zero_grace_period() -> None:
    assert status.acpi({"spec": {}})
    assert not status.acpi({"spec": {"terminationGracePeriodSeconds": 0}})
    assert not status.acpi({"spec": {"domain": {"features": {"acpi": {"enabled": False}}}}})


@pytest.mark.parametrize(
    ("reason", "condition_reason", "message"),
    [
        pytest.param(
            domain_pb2.DOMAIN_STATE_REASON_IO_ERROR,
            "PausedIOError",
            "VMI was paused, low-level IO error detected",
            id="io-error",
        ),
        pytest.param(
            domain_pb2.DOMAIN_STATE_REASON_PAUSED_BY_USER,
            "PausedByUser",
            "VMI was paused by user",
            id="user",
        ),
    ],
)
def test_a_paused_domain_shows_kubevirts_paused_condition(
    reason: int, condition_reason: str, message: str
) -> None:
    paused = domain_pb2.Domain(state=domain_pb2.DOMAIN_STATE_PAUSED, reason=reason)
    observed = phase.Observed(domain_state=paused.state, domain_reason=reason, ever_ran=True)
    decision = phase.next_phase("Running", observed)
    written = status.change(
        {"phase": "Running"},
        decision=decision,
        observed=observed,
        now="T1",
        domain=paused,
        emulated=False,
        synchronized=None,
    )
    assert written.get("phase", "Running") == "Running"  # a pause is no phase
    [condition] = [c for c in written["conditions"] if c["type"] == "Paused"]
    assert (condition["status"], condition["reason"], condition["message"]) == (
        "True",
        condition_reason,
        message,
    )
