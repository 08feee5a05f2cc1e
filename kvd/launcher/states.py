"""libvirt's (state, reason) pairs → the contract's DomainState and DomainStateReason.

Pure tables, no libvirt import: the numbers are libvirt's stable ABI (virDomainState and the
per-state reason enums in libvirt-domain.h); a test checks them against the libvirt module.
"""

from __future__ import annotations

from typing import Final

from kvd.rpc.launcher.v1 import domain_pb2 as pb

# virDomainState
NOSTATE, RUNNING, BLOCKED, PAUSED, SHUTDOWN, SHUTOFF, CRASHED, PMSUSPENDED = range(8)

STATES: Final = {
    NOSTATE: pb.DOMAIN_STATE_NOSTATE,
    RUNNING: pb.DOMAIN_STATE_RUNNING,
    BLOCKED: pb.DOMAIN_STATE_BLOCKED,
    PAUSED: pb.DOMAIN_STATE_PAUSED,
    SHUTDOWN: pb.DOMAIN_STATE_SHUTTING_DOWN,
    SHUTOFF: pb.DOMAIN_STATE_SHUTOFF,
    CRASHED: pb.DOMAIN_STATE_CRASHED,
    PMSUSPENDED: pb.DOMAIN_STATE_PMSUSPENDED,
}

R = pb.DomainStateReason
# (virDomainState, that state's reason number) → reason. Missing pairs are UNKNOWN.
REASONS: Final[dict[tuple[int, int], R]] = {
    # virDomainRunningReason
    (RUNNING, 1): pb.DOMAIN_STATE_REASON_BOOTED,
    (RUNNING, 2): pb.DOMAIN_STATE_REASON_MIGRATED,
    (RUNNING, 3): pb.DOMAIN_STATE_REASON_RESTORED,
    (RUNNING, 4): pb.DOMAIN_STATE_REASON_FROM_SNAPSHOT,
    (RUNNING, 5): pb.DOMAIN_STATE_REASON_UNPAUSED,
    (RUNNING, 8): pb.DOMAIN_STATE_REASON_WAKEUP,
    # virDomainPausedReason
    (PAUSED, 1): pb.DOMAIN_STATE_REASON_PAUSED_BY_USER,
    (PAUSED, 2): pb.DOMAIN_STATE_REASON_PAUSED_FOR_MIGRATION,
    (PAUSED, 3): pb.DOMAIN_STATE_REASON_PAUSED_FOR_SAVE,
    (PAUSED, 4): pb.DOMAIN_STATE_REASON_PAUSED_FOR_SAVE,  # dump
    (PAUSED, 5): pb.DOMAIN_STATE_REASON_IO_ERROR,
    (PAUSED, 6): pb.DOMAIN_STATE_REASON_WATCHDOG,
    (PAUSED, 7): pb.DOMAIN_STATE_REASON_FROM_SNAPSHOT,
    (PAUSED, 9): pb.DOMAIN_STATE_REASON_PAUSED_FOR_SAVE,  # snapshot
    (PAUSED, 10): pb.DOMAIN_STATE_REASON_CRASHED,
    (PAUSED, 11): pb.DOMAIN_STATE_REASON_STARTING_UP,
    # virDomainShutdownReason
    (SHUTDOWN, 1): pb.DOMAIN_STATE_REASON_SHUTDOWN_REQUESTED,
    # virDomainShutoffReason
    (SHUTOFF, 1): pb.DOMAIN_STATE_REASON_SHUTDOWN,
    (SHUTOFF, 2): pb.DOMAIN_STATE_REASON_DESTROYED,
    (SHUTOFF, 3): pb.DOMAIN_STATE_REASON_CRASHED,
    (SHUTOFF, 4): pb.DOMAIN_STATE_REASON_MIGRATED,
    (SHUTOFF, 5): pb.DOMAIN_STATE_REASON_SAVED,
    (SHUTOFF, 6): pb.DOMAIN_STATE_REASON_FAILED_TO_START,
    (SHUTOFF, 7): pb.DOMAIN_STATE_REASON_FROM_SNAPSHOT,
    # virDomainCrashedReason
    (CRASHED, 0): pb.DOMAIN_STATE_REASON_CRASHED,
    (CRASHED, 1): pb.DOMAIN_STATE_REASON_PANICKED,
}


def from_libvirt(state: int, reason: int) -> tuple[pb.DomainState, R]:
    """The contract's (state, reason) for libvirt's `dom.state()` pair."""
    return (
        STATES.get(state, pb.DOMAIN_STATE_NOSTATE),
        REASONS.get((state, reason), pb.DOMAIN_STATE_REASON_UNKNOWN),
    )


def is_active(state: int) -> bool:
    """Whether QEMU runs for a domain in this libvirt state."""
    return state in (RUNNING, BLOCKED, PAUSED, SHUTDOWN, PMSUSPENDED)
