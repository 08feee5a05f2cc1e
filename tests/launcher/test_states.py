"""The (state, reason) table against libvirt's own constants, so a renumbering would show."""

from __future__ import annotations

import libvirt
import pytest

from kvd.launcher import states
from kvd.rpc.launcher.v1 import domain_pb2 as pb


def test_state_numbers_are_libvirts() -> None:
    assert (states.NOSTATE, states.RUNNING, states.PAUSED, states.SHUTOFF, states.CRASHED) == (
        libvirt.VIR_DOMAIN_NOSTATE,
        libvirt.VIR_DOMAIN_RUNNING,
        libvirt.VIR_DOMAIN_PAUSED,
        libvirt.VIR_DOMAIN_SHUTOFF,
        libvirt.VIR_DOMAIN_CRASHED,
    )
    assert (states.BLOCKED, states.SHUTDOWN, states.PMSUSPENDED) == (
        libvirt.VIR_DOMAIN_BLOCKED,
        libvirt.VIR_DOMAIN_SHUTDOWN,
        libvirt.VIR_DOMAIN_PMSUSPENDED,
    )


@pytest.mark.parametrize(
    ("state", "reason", "expected"),
    [
        pytest.param(
            libvirt.VIR_DOMAIN_RUNNING,
            libvirt.VIR_DOMAIN_RUNNING_BOOTED,
            (pb.DOMAIN_STATE_RUNNING, pb.DOMAIN_STATE_REASON_BOOTED),
            id="booted",
        ),
        pytest.param(
            libvirt.VIR_DOMAIN_RUNNING,
            libvirt.VIR_DOMAIN_RUNNING_UNPAUSED,
            (pb.DOMAIN_STATE_RUNNING, pb.DOMAIN_STATE_REASON_UNPAUSED),
            id="unpaused",
        ),
        pytest.param(
            libvirt.VIR_DOMAIN_PAUSED,
            libvirt.VIR_DOMAIN_PAUSED_USER,
            (pb.DOMAIN_STATE_PAUSED, pb.DOMAIN_STATE_REASON_PAUSED_BY_USER),
            id="paused-user",
        ),
        pytest.param(
            libvirt.VIR_DOMAIN_PAUSED,
            libvirt.VIR_DOMAIN_PAUSED_IOERROR,
            (pb.DOMAIN_STATE_PAUSED, pb.DOMAIN_STATE_REASON_IO_ERROR),
            id="io-error",
        ),
        pytest.param(
            libvirt.VIR_DOMAIN_PAUSED,
            libvirt.VIR_DOMAIN_PAUSED_STARTING_UP,
            (pb.DOMAIN_STATE_PAUSED, pb.DOMAIN_STATE_REASON_STARTING_UP),
            id="starting-up",
        ),
        pytest.param(
            libvirt.VIR_DOMAIN_SHUTDOWN,
            libvirt.VIR_DOMAIN_SHUTDOWN_USER,
            (pb.DOMAIN_STATE_SHUTTING_DOWN, pb.DOMAIN_STATE_REASON_SHUTDOWN_REQUESTED),
            id="shutting-down",
        ),
        pytest.param(
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN,
            (pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_SHUTDOWN),
            id="guest-shutdown",
        ),
        pytest.param(
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED,
            (pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_DESTROYED),
            id="destroyed",
        ),
        pytest.param(
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTOFF_CRASHED,
            (pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_CRASHED),
            id="qemu-crashed",
        ),
        pytest.param(
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTOFF_FAILED,
            (pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_FAILED_TO_START),
            id="failed",
        ),
        pytest.param(
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED,
            (pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_MIGRATED),
            id="migrated-away",
        ),
        pytest.param(
            libvirt.VIR_DOMAIN_CRASHED,
            libvirt.VIR_DOMAIN_CRASHED_PANICKED,
            (pb.DOMAIN_STATE_CRASHED, pb.DOMAIN_STATE_REASON_PANICKED),
            id="panicked",
        ),
        pytest.param(
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTOFF_DAEMON,
            (pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_UNKNOWN),
            id="unmodelled-reason",
        ),
        pytest.param(
            99,
            0,
            (pb.DOMAIN_STATE_NOSTATE, pb.DOMAIN_STATE_REASON_UNKNOWN),
            id="future-state",
        ),
    ],
)
def test_mapping(state: int, reason: int, expected: tuple[int, int]) -> None:
    assert states.from_libvirt(state, reason) == expected
