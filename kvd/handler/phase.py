"""The VMI phase and the handler-owned conditions, computed from what the handler observes.

Pure: `next_phase(current, Observed) -> Decision`, no I/O. It mirrors KubeVirt's virt-handler
(`calculateVmPhaseForStatusReason`, `isACPIEnabled` and `calculatePausedCondition` in
pkg/virt-handler/vm.go, the unresponsive-socket watchdog in pkg/virt-handler/cache): the domain's
(state, reason) decides, a phase only moves forward, a final phase is kept forever. kvd adds a
machine-readable reason to every final phase, and takes launcher reachability as plain inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from kvd.api import phases
from kvd.api.phases import FAILED, RUNNING, SUCCEEDED, is_final
from kvd.rpc.launcher.v1 import domain_pb2 as pb

# KubeVirt's virt-handler declares a launcher unresponsive once its command socket has refused
# connections for longer than its watchdog timeout (`--watchdog-timeout`, default 30 s): long
# enough to ride out a launcher restart or a stalled node, short enough that a dead VMI is noticed
# (and a VM restarted) within a minute.
UNREACHABLE_LIMIT: Final = 30.0
# Before the domain has ever run, the launcher may simply not be up yet (image pull, pod start).
# KubeVirt waits 3 minutes for a launcher socket that has not appeared yet; so does kvd while the
# VMI has not run.
STARTUP_UNREACHABLE_LIMIT: Final = 180.0

# States in which QEMU runs a guest that counts as running. Paused stays Running (the Paused
# condition says why); so do an ACPI shutdown in progress and a guest suspended to RAM/disk.
ACTIVE_STATES: Final = frozenset(
    {
        pb.DOMAIN_STATE_RUNNING,
        pb.DOMAIN_STATE_BLOCKED,
        pb.DOMAIN_STATE_PAUSED,
        pb.DOMAIN_STATE_SHUTTING_DOWN,
        pb.DOMAIN_STATE_PMSUSPENDED,
    }
)


@dataclass(frozen=True, kw_only=True)
class Observed:
    """What the handler knows about one VMI's launcher and domain at one reconcile."""

    domain_state: int | None
    """`DomainState`; None when the launcher reports no domain (never defined, or deleted)."""
    domain_reason: int = 0
    """`DomainStateReason` accompanying `domain_state`."""
    launcher_reachable: bool = True
    unreachable_for: float = 0.0
    """Seconds the launcher socket has not answered; ignored while `launcher_reachable`."""
    launcher_gone: bool = False
    """The launcher is known to have exited (socket gone, pod terminated)."""
    acpi_enabled: bool = True
    """The domain has ACPI, so the handler stops it gracefully before it kills it. KubeVirt
    counts ACPI as off when `terminationGracePeriodSeconds` is 0 (the handler kills at once)."""
    deleting: bool = False
    """The VMI is being deleted (or is gone) and the handler asked the guest to stop."""
    ever_ran: bool = False
    """The domain was seen running at least once for this VMI."""


@dataclass(frozen=True)
class Decision:
    """The phase to report, and for a final phase why (a CamelCase reason and a message)."""

    phase: str
    reason: str | None = None
    message: str | None = None


def next_phase(current: str, observed: Observed) -> Decision:
    """The phase the handler reports for a VMI now in phase `current` (returned as is when kept)."""
    if is_final(current):
        return Decision(current)
    verdict = _from_domain(current, observed)
    # A final verdict from the last domain state seen wins over the launcher's later fate: a guest
    # that shut down before its launcher exited has Succeeded.
    if verdict is not None and is_final(verdict.phase):
        return verdict
    if observed.launcher_gone:
        if observed.deleting:
            return _DELETED
        return Decision(FAILED, "LauncherGone", "the launcher exited while the VMI was not final")
    if not observed.launcher_reachable:
        limit = _unreachable_limit(current, observed)
        if observed.unreachable_for >= limit:
            return Decision(
                FAILED,
                "LauncherUnreachable",
                f"the launcher has not answered for {observed.unreachable_for:.0f} s"
                f" (limit {limit:.0f} s)",
            )
        # What the launcher would say now is unknown: no domain means nothing, not a disappearance.
        return _forward(current, verdict)
    if verdict is None and _no_domain(observed):
        return _domain_gone(current, observed)
    return _forward(current, verdict)


def conditions(
    observed: Observed, *, emulated: bool, ready: bool
) -> list[tuple[str, bool, str | None]]:
    """(type, status, reason) of the handler-owned conditions that should be present.

    Always Ready; SoftwareEmulation only while the domain runs under TCG; Paused only while the
    domain is paused by the user or on an I/O error (KubeVirt adds no condition for other pauses).
    A handler-owned type missing from the list is to be removed from the VMI.
    """
    if ready:
        found: list[tuple[str, bool, str | None]] = [("Ready", True, None)]
    elif not observed.launcher_reachable:
        found = [("Ready", False, "LauncherUnreachable")]
    else:
        found = [("Ready", False, "GuestNotRunning")]  # KubeVirt's reason for a guest not running
    if emulated:
        found.append(("SoftwareEmulation", True, "EmulatedByTCG"))
    if observed.domain_state == pb.DOMAIN_STATE_PAUSED:
        paused = _PAUSED_REASONS.get(observed.domain_reason)
        if paused is not None:
            found.append(("Paused", True, paused))
    return found


_PAUSED_REASONS: Final[Mapping[int, str]] = MappingProxyType(
    {
        pb.DOMAIN_STATE_REASON_PAUSED_BY_USER: "PausedByUser",
        pb.DOMAIN_STATE_REASON_IO_ERROR: "PausedIOError",
    }
)

# KubeVirt's messages for its Paused reasons, word for word as `kubectl describe` shows them
PAUSED_MESSAGES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "PausedByUser": "VMI was paused by user",
        "PausedIOError": "VMI was paused, low-level IO error detected",
    }
)

_RUNNING: Final = Decision(RUNNING)
_DELETED: Final = Decision(SUCCEEDED, "Deleted", "the VMI was deleted and its guest stopped")
_CRASHED: Final = Decision(FAILED, "Crashed", "the guest crashed or QEMU exited unexpectedly")
_PANICKED: Final = Decision(FAILED, "Panicked", "the guest kernel panicked")

_SHUTOFF: Final[Mapping[int, Decision]] = MappingProxyType(
    {
        pb.DOMAIN_STATE_REASON_CRASHED: _CRASHED,
        pb.DOMAIN_STATE_REASON_PANICKED: _PANICKED,
        pb.DOMAIN_STATE_REASON_SHUTDOWN: Decision(
            SUCCEEDED, "GuestShutdown", "the guest powered itself off"
        ),
        pb.DOMAIN_STATE_REASON_SAVED: Decision(
            SUCCEEDED, "Saved", "the guest's memory was saved and QEMU stopped"
        ),
        pb.DOMAIN_STATE_REASON_FROM_SNAPSHOT: Decision(
            SUCCEEDED, "FromSnapshot", "the domain was reverted to a snapshot of a stopped guest"
        ),
        pb.DOMAIN_STATE_REASON_FAILED_TO_START: Decision(
            FAILED, "FailedToStart", "QEMU failed to start the domain"
        ),
    }
)


def _forward(current: str, verdict: Decision | None) -> Decision:
    # Verdicts are only ever Running or final, and a final `current` never gets here: so a verdict
    # never moves a phase backwards.
    return Decision(current) if verdict is None else verdict


def _unreachable_limit(current: str, observed: Observed) -> float:
    if observed.ever_ran or phases.rank(current) >= phases.rank(RUNNING):
        return UNREACHABLE_LIMIT
    return STARTUP_UNREACHABLE_LIMIT


def _no_domain(observed: Observed) -> bool:
    if observed.domain_state is None:
        return True
    return (
        observed.domain_state in (pb.DOMAIN_STATE_NOSTATE, pb.DOMAIN_STATE_UNSPECIFIED)
        and observed.domain_reason == pb.DOMAIN_STATE_REASON_NON_EXISTENT
    )


def _domain_gone(current: str, observed: Observed) -> Decision:
    if not observed.ever_ran and phases.rank(current) < phases.rank(RUNNING):
        return Decision(current)  # not defined yet: the handler has more to do
    if observed.deleting:
        return _DELETED
    # KubeVirt: unexpected, only possible when someone removes the domain behind the handler.
    return Decision(FAILED, "DomainDisappeared", "the domain vanished while the VMI was running")


def _from_domain(current: str, observed: Observed) -> Decision | None:
    """The phase the domain's (state, reason) implies; None when it implies none."""
    state, reason = observed.domain_state, observed.domain_reason
    if state in ACTIVE_STATES:
        return _RUNNING
    if state == pb.DOMAIN_STATE_CRASHED:
        if reason == pb.DOMAIN_STATE_REASON_PANICKED:
            return _PANICKED
        return _CRASHED
    if state == pb.DOMAIN_STATE_SHUTOFF:
        return _stopped(current, observed)
    return None  # no domain, NOSTATE, or a state this version does not know


def _stopped(current: str, observed: Observed) -> Decision | None:
    reason = observed.domain_reason
    if reason == pb.DOMAIN_STATE_REASON_DESTROYED:
        if observed.acpi_enabled:
            # With ACPI the guest was asked to power off first; destroyed means it did not do so
            # within its grace period (or was killed from outside). Without ACPI killing is the
            # normal way to stop it.
            return Decision(
                FAILED,
                "Destroyed",
                "the guest was killed: it did not power off within its grace period,"
                " or it was destroyed from outside",
            )
        return Decision(SUCCEEDED, "Destroyed", "the guest was stopped (it has no ACPI)")
    if reason == pb.DOMAIN_STATE_REASON_MIGRATED:
        return None  # KubeVirt: the guest lives on elsewhere; its phase is not decided here
    known = _SHUTOFF.get(reason)
    if known is not None:
        return known
    if not observed.ever_ran and phases.rank(current) < phases.rank(RUNNING):
        return None  # defined and not started yet: libvirt gives such a domain no reason
    return Decision(
        FAILED,
        "UnknownShutoffReason",
        f"the domain stopped for a reason kvd does not know ({_reason_name(reason)})",
    )


def _reason_name(reason: int) -> str:
    try:
        return pb.DomainStateReason.Name(reason)
    except ValueError:
        return str(reason)
