"""The launcher's exit code from the domain events it saw (pure: no libvirt)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kvd.launcher.app import ExitCode, Lifecycle
from kvd.launcher.model import Event, Snapshot, absent
from kvd.rpc.launcher.v1 import domain_pb2 as pb

RUNNING = (pb.DOMAIN_STATE_RUNNING, pb.DOMAIN_STATE_REASON_BOOTED)
SHUTDOWN = (pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_SHUTDOWN)
DESTROYED = (pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_DESTROYED)
QEMU_CRASHED = (pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_CRASHED)
PANICKED = (pb.DOMAIN_STATE_CRASHED, pb.DOMAIN_STATE_REASON_PANICKED)
FAILED = (pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_FAILED_TO_START)
DEFINED = (pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_UNKNOWN)
DELETED = None


def _event(state: tuple[int, int] | None) -> Event:
    if state is None:
        snap = absent("ns_vm", emulated=True)
    else:
        snap = Snapshot(
            name="ns_vm",
            uuid="u",
            state=state[0],
            reason=state[1],
            emulated=True,  # type: ignore[arg-type]
        )
    return Event(pb.DOMAIN_EVENT_TYPE_STATE_CHANGED, snap, datetime.now(UTC))


@pytest.mark.parametrize(
    ("states", "ended", "code"),
    [
        pytest.param([DEFINED, RUNNING, SHUTDOWN], True, ExitCode.SHUT_DOWN, id="guest-shutdown"),
        pytest.param(
            [DEFINED, RUNNING, SHUTDOWN, DELETED],
            True,
            ExitCode.SHUT_DOWN,
            id="cleanup-after-shutdown-keeps-the-code",
        ),
        pytest.param([RUNNING, DESTROYED, DELETED], True, ExitCode.KILLED, id="killed"),
        pytest.param([RUNNING, QEMU_CRASHED], True, ExitCode.CRASHED, id="qemu-crashed"),
        pytest.param([RUNNING, PANICKED], True, ExitCode.CRASHED, id="guest-panicked"),
        pytest.param([RUNNING, DELETED], True, ExitCode.CRASHED, id="vanished"),
        pytest.param([DEFINED, FAILED], False, ExitCode.NEVER_RAN, id="failed-to-start"),
        pytest.param([DEFINED], False, ExitCode.NEVER_RAN, id="defined-only"),
        pytest.param([], False, ExitCode.NEVER_RAN, id="nothing"),
        pytest.param([DEFINED, DELETED], False, ExitCode.NEVER_RAN, id="deleted-unrun"),
    ],
)
def test_exit_code(states: list[tuple[int, int] | None], ended: bool, code: ExitCode) -> None:
    lifecycle = Lifecycle()
    for state in states:
        lifecycle.on_event(_event(state))
    assert lifecycle.ended.is_set() is ended
    assert lifecycle.exit_code() is code
