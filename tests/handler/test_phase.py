"""The VMI phase and conditions the handler reports: tables of domain state, reason, VMI state."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvd.api import phases
from kvd.handler import phase
from kvd.handler.phase import Decision, Observed
from kvd.rpc.launcher.v1 import domain_pb2 as pb

S = pb.DomainState
R = pb.DomainStateReason

FAILED, SUCCEEDED, RUNNING, SCHEDULED = "Failed", "Succeeded", "Running", "Scheduled"
KEPT = (RUNNING, None)  # what a Running VMI keeps when the domain decides nothing

# (state, reason, outcome with ACPI, outcome without ACPI or None for the same) for a VMI that is
# Running and whose domain ran. Outcomes are (phase, reason).
Outcome = tuple[str, str | None]
Row = tuple[int, int, Outcome, Outcome | None]


def row(state: int, reason: int, outcome: Outcome, *, without_acpi: Outcome | None = None) -> Row:
    return (state, reason, outcome, without_acpi)


ROWS: list[Row] = [
    *(
        row(pb.DOMAIN_STATE_RUNNING, reason, KEPT)
        for reason in (
            pb.DOMAIN_STATE_REASON_BOOTED,
            pb.DOMAIN_STATE_REASON_UNPAUSED,
            pb.DOMAIN_STATE_REASON_MIGRATED,
            pb.DOMAIN_STATE_REASON_RESTORED,
            pb.DOMAIN_STATE_REASON_WAKEUP,
            pb.DOMAIN_STATE_REASON_FROM_SNAPSHOT,
            pb.DOMAIN_STATE_REASON_UNKNOWN,
        )
    ),
    row(pb.DOMAIN_STATE_BLOCKED, pb.DOMAIN_STATE_REASON_UNKNOWN, KEPT),
    *(
        row(pb.DOMAIN_STATE_PAUSED, reason, KEPT)  # paused is still Running (KubeVirt)
        for reason in (
            pb.DOMAIN_STATE_REASON_PAUSED_BY_USER,
            pb.DOMAIN_STATE_REASON_IO_ERROR,
            pb.DOMAIN_STATE_REASON_WATCHDOG,
            pb.DOMAIN_STATE_REASON_STARTING_UP,
            pb.DOMAIN_STATE_REASON_PAUSED_FOR_MIGRATION,
            pb.DOMAIN_STATE_REASON_PAUSED_FOR_SAVE,
            pb.DOMAIN_STATE_REASON_FROM_SNAPSHOT,
            pb.DOMAIN_STATE_REASON_CRASHED,
            pb.DOMAIN_STATE_REASON_UNKNOWN,
        )
    ),
    row(pb.DOMAIN_STATE_SHUTTING_DOWN, pb.DOMAIN_STATE_REASON_SHUTDOWN_REQUESTED, KEPT),
    row(pb.DOMAIN_STATE_SHUTTING_DOWN, pb.DOMAIN_STATE_REASON_UNKNOWN, KEPT),
    row(pb.DOMAIN_STATE_PMSUSPENDED, pb.DOMAIN_STATE_REASON_UNKNOWN, KEPT),
    row(pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_SHUTDOWN, (SUCCEEDED, "GuestShutdown")),
    row(pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_SAVED, (SUCCEEDED, "Saved")),
    row(pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_FROM_SNAPSHOT, (SUCCEEDED, "FromSnapshot")),
    row(
        pb.DOMAIN_STATE_SHUTOFF,
        pb.DOMAIN_STATE_REASON_DESTROYED,
        (FAILED, "Destroyed"),  # killed after the ACPI shutdown's grace period ran out
        without_acpi=(SUCCEEDED, "Destroyed"),  # without ACPI, killing is how it is stopped
    ),
    row(pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_CRASHED, (FAILED, "Crashed")),
    row(pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_PANICKED, (FAILED, "Panicked")),
    row(pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_FAILED_TO_START, (FAILED, "FailedToStart")),
    row(pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_MIGRATED, KEPT),  # lives on elsewhere
    row(pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_UNKNOWN, (FAILED, "UnknownShutoffReason")),
    row(
        pb.DOMAIN_STATE_SHUTOFF,
        pb.DOMAIN_STATE_REASON_UNSPECIFIED,
        (FAILED, "UnknownShutoffReason"),
    ),
    row(pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_REASON_BOOTED, (FAILED, "UnknownShutoffReason")),
    row(pb.DOMAIN_STATE_CRASHED, pb.DOMAIN_STATE_REASON_CRASHED, (FAILED, "Crashed")),
    row(pb.DOMAIN_STATE_CRASHED, pb.DOMAIN_STATE_REASON_PANICKED, (FAILED, "Panicked")),
    row(pb.DOMAIN_STATE_CRASHED, pb.DOMAIN_STATE_REASON_UNKNOWN, (FAILED, "Crashed")),
    row(pb.DOMAIN_STATE_CRASHED, pb.DOMAIN_STATE_REASON_SHUTDOWN, (FAILED, "Crashed")),
    row(pb.DOMAIN_STATE_NOSTATE, pb.DOMAIN_STATE_REASON_UNKNOWN, KEPT),
    row(pb.DOMAIN_STATE_UNSPECIFIED, pb.DOMAIN_STATE_REASON_UNSPECIFIED, KEPT),
]


def row_id(state: int, reason: int) -> str:
    name = f"{S.Name(state)}-{R.Name(reason)}"  # type: ignore[arg-type]
    return name.replace("DOMAIN_STATE_", "").replace("REASON_", "").lower()


DOMAIN_TABLE = [pytest.param(*r, id=row_id(r[0], r[1])) for r in ROWS]


@pytest.mark.parametrize("deleting", [False, True], ids=["live", "deleting"])
@pytest.mark.parametrize("acpi", [True, False], ids=["acpi", "no-acpi"])
@pytest.mark.parametrize(("state", "reason", "with_acpi", "without_acpi"), DOMAIN_TABLE)
def test_domain_state_decides_the_phase_of_a_running_vmi(
    *,
    state: int,
    reason: int,
    with_acpi: Outcome,
    without_acpi: Outcome | None,
    acpi: bool,
    deleting: bool,
) -> None:
    observed = Observed(
        domain_state=state,
        domain_reason=reason,
        acpi_enabled=acpi,
        deleting=deleting,
        ever_ran=True,
    )
    decision = phase.next_phase(RUNNING, observed)
    expected = with_acpi if acpi or without_acpi is None else without_acpi
    assert (decision.phase, decision.reason) == expected
    assert (decision.message is not None) == phases.is_final(decision.phase)


def test_the_domain_table_covers_every_state_and_every_shutoff_reason() -> None:
    assert {state for state, *_ in ROWS} == set(S.values())
    shutoff = {reason for state, reason, *_ in ROWS if state == pb.DOMAIN_STATE_SHUTOFF}
    stop_reasons = {
        pb.DOMAIN_STATE_REASON_SHUTDOWN,
        pb.DOMAIN_STATE_REASON_DESTROYED,
        pb.DOMAIN_STATE_REASON_CRASHED,
        pb.DOMAIN_STATE_REASON_PANICKED,
        pb.DOMAIN_STATE_REASON_FAILED_TO_START,
        pb.DOMAIN_STATE_REASON_SAVED,
        pb.DOMAIN_STATE_REASON_FROM_SNAPSHOT,
        pb.DOMAIN_STATE_REASON_MIGRATED,
        pb.DOMAIN_STATE_REASON_UNKNOWN,
    }
    assert stop_reasons <= shutoff
    # A reason added to the contract must be placed in this table (or here) on purpose.
    not_stop_reasons = {
        pb.DOMAIN_STATE_REASON_UNSPECIFIED,
        pb.DOMAIN_STATE_REASON_NON_EXISTENT,
        pb.DOMAIN_STATE_REASON_BOOTED,
        pb.DOMAIN_STATE_REASON_UNPAUSED,
        pb.DOMAIN_STATE_REASON_RESTORED,
        pb.DOMAIN_STATE_REASON_WAKEUP,
        pb.DOMAIN_STATE_REASON_PAUSED_BY_USER,
        pb.DOMAIN_STATE_REASON_IO_ERROR,
        pb.DOMAIN_STATE_REASON_WATCHDOG,
        pb.DOMAIN_STATE_REASON_STARTING_UP,
        pb.DOMAIN_STATE_REASON_PAUSED_FOR_MIGRATION,
        pb.DOMAIN_STATE_REASON_PAUSED_FOR_SAVE,
        pb.DOMAIN_STATE_REASON_SHUTDOWN_REQUESTED,
    }
    assert stop_reasons | not_stop_reasons == set(R.values())


@pytest.mark.parametrize(
    ("state", "reason", "expected"),
    [
        pytest.param(None, 0, (SCHEDULED, None), id="no-domain"),
        pytest.param(
            pb.DOMAIN_STATE_NOSTATE,
            pb.DOMAIN_STATE_REASON_NON_EXISTENT,
            (SCHEDULED, None),
            id="nostate-non-existent",
        ),
        pytest.param(
            pb.DOMAIN_STATE_SHUTOFF,
            pb.DOMAIN_STATE_REASON_UNKNOWN,
            (SCHEDULED, None),
            id="defined-not-started",
        ),
        pytest.param(
            pb.DOMAIN_STATE_SHUTOFF,
            pb.DOMAIN_STATE_REASON_UNSPECIFIED,
            (SCHEDULED, None),
            id="defined-no-reason",
        ),
        pytest.param(
            pb.DOMAIN_STATE_SHUTOFF,
            pb.DOMAIN_STATE_REASON_MIGRATED,
            (SCHEDULED, None),
            id="migrated",
        ),
        pytest.param(
            pb.DOMAIN_STATE_RUNNING, pb.DOMAIN_STATE_REASON_BOOTED, (RUNNING, None), id="booted"
        ),
        pytest.param(
            pb.DOMAIN_STATE_PAUSED,
            pb.DOMAIN_STATE_REASON_STARTING_UP,
            (RUNNING, None),
            id="paused-starting-up",
        ),
        pytest.param(
            pb.DOMAIN_STATE_SHUTOFF,
            pb.DOMAIN_STATE_REASON_FAILED_TO_START,
            (FAILED, "FailedToStart"),
            id="failed-to-start",
        ),
        pytest.param(
            pb.DOMAIN_STATE_SHUTOFF,
            pb.DOMAIN_STATE_REASON_SHUTDOWN,
            (SUCCEEDED, "GuestShutdown"),
            id="shutdown",
        ),
        pytest.param(
            pb.DOMAIN_STATE_CRASHED,
            pb.DOMAIN_STATE_REASON_UNKNOWN,
            (FAILED, "Crashed"),
            id="crashed",
        ),
    ],
)
@pytest.mark.parametrize("deleting", [False, True], ids=["live", "deleting"])
def test_before_the_domain_ever_ran(
    state: int | None, reason: int, expected: tuple[str, str | None], deleting: bool
) -> None:
    observed = Observed(domain_state=state, domain_reason=reason, deleting=deleting)
    decision = phase.next_phase(SCHEDULED, observed)
    assert (decision.phase, decision.reason) == expected


NO_DOMAIN = [
    pytest.param(None, 0, id="none"),
    pytest.param(
        pb.DOMAIN_STATE_NOSTATE, pb.DOMAIN_STATE_REASON_NON_EXISTENT, id="nostate-non-existent"
    ),
]


@pytest.mark.parametrize(("state", "reason"), NO_DOMAIN)
@pytest.mark.parametrize(
    ("current", "ever_ran", "deleting", "expected"),
    [
        pytest.param(RUNNING, True, False, (FAILED, "DomainDisappeared"), id="running-vanished"),
        pytest.param(RUNNING, True, True, (SUCCEEDED, "Deleted"), id="running-deleted"),
        pytest.param(
            RUNNING, False, False, (FAILED, "DomainDisappeared"), id="running-unrecorded-vanished"
        ),
        pytest.param(RUNNING, False, True, (SUCCEEDED, "Deleted"), id="running-unrecorded-deleted"),
        pytest.param(SCHEDULED, True, False, (FAILED, "DomainDisappeared"), id="ran-vanished"),
        pytest.param(SCHEDULED, True, True, (SUCCEEDED, "Deleted"), id="ran-deleted"),
        pytest.param(SCHEDULED, False, False, (SCHEDULED, None), id="not-defined-yet"),
        pytest.param(SCHEDULED, False, True, (SCHEDULED, None), id="deleted-before-defined"),
    ],
)
def test_no_domain(
    *,
    state: int | None,
    reason: int,
    current: str,
    ever_ran: bool,
    deleting: bool,
    expected: tuple[str, str | None],
) -> None:
    observed = Observed(
        domain_state=state, domain_reason=reason, ever_ran=ever_ran, deleting=deleting
    )
    decision = phase.next_phase(current, observed)
    assert (decision.phase, decision.reason) == expected


# Observations that would move a VMI anywhere: each must leave a final phase alone.
EVERY_KIND_OF_OBSERVATION = [
    pytest.param(Observed(domain_state=pb.DOMAIN_STATE_RUNNING, ever_ran=True), id="running"),
    pytest.param(
        Observed(
            domain_state=pb.DOMAIN_STATE_SHUTOFF, domain_reason=pb.DOMAIN_STATE_REASON_SHUTDOWN
        ),
        id="shutdown",
    ),
    pytest.param(
        Observed(
            domain_state=pb.DOMAIN_STATE_SHUTOFF, domain_reason=pb.DOMAIN_STATE_REASON_CRASHED
        ),
        id="crashed",
    ),
    pytest.param(Observed(domain_state=None, ever_ran=True), id="vanished"),
    pytest.param(Observed(domain_state=None, ever_ran=True, deleting=True), id="deleted"),
    pytest.param(
        Observed(domain_state=None, launcher_reachable=False, unreachable_for=1e6),
        id="unreachable",
    ),
    pytest.param(Observed(domain_state=None, launcher_gone=True), id="launcher-gone"),
]


@pytest.mark.parametrize("current", ["Succeeded", "Failed"])
@pytest.mark.parametrize("observed", EVERY_KIND_OF_OBSERVATION)
def test_a_final_phase_is_kept_whatever_is_observed(current: str, observed: Observed) -> None:
    assert phase.next_phase(current, observed) == Decision(current)


@pytest.mark.parametrize("current", ["", "Pending", "Scheduling", "Scheduled", "Unknown"])
def test_an_earlier_phase_is_kept_as_given_until_something_is_known(current: str) -> None:
    assert phase.next_phase(current, Observed(domain_state=None)) == Decision(current)
    unreachable = Observed(domain_state=None, launcher_reachable=False, unreachable_for=10)
    assert phase.next_phase(current, unreachable) == Decision(current)


@pytest.mark.parametrize(
    "current", ["", "Pending", "Scheduling", "Scheduled", "Running", "Unknown"]
)
def test_a_running_domain_moves_every_non_final_phase_to_running(current: str) -> None:
    observed = Observed(domain_state=pb.DOMAIN_STATE_RUNNING)
    assert phase.next_phase(current, observed) == Decision(RUNNING)


@given(
    current=st.sampled_from(phases.NAMES),
    observed=st.builds(
        Observed,
        domain_state=st.one_of(st.none(), st.sampled_from([*S.values(), 99])),
        domain_reason=st.sampled_from([*R.values(), 99]),
        launcher_reachable=st.booleans(),
        unreachable_for=st.floats(min_value=0, max_value=1e4),
        launcher_gone=st.booleans(),
        acpi_enabled=st.booleans(),
        deleting=st.booleans(),
        ever_ran=st.booleans(),
    ),
)
def test_phases_never_go_backwards(current: str, observed: Observed) -> None:
    decision = phase.next_phase(current, observed)
    assert phases.later(current, decision.phase) == decision.phase
    if phases.is_final(current):
        assert decision == Decision(current)
    if phases.is_final(decision.phase) and not phases.is_final(current):
        assert decision.reason and decision.message
    else:
        assert decision.reason is None


def unreachable(seconds: float, **kw: Any) -> Observed:
    return Observed(launcher_reachable=False, unreachable_for=seconds, **kw)


@pytest.mark.parametrize(
    ("current", "observed", "expected"),
    [
        pytest.param(
            RUNNING,
            unreachable(29.9, domain_state=pb.DOMAIN_STATE_RUNNING, ever_ran=True),
            (RUNNING, None),
            id="running-just-below",
        ),
        pytest.param(
            RUNNING,
            unreachable(30.0, domain_state=pb.DOMAIN_STATE_RUNNING, ever_ran=True),
            (FAILED, "LauncherUnreachable"),
            id="running-at-limit",
        ),
        pytest.param(
            RUNNING,
            unreachable(29.9, domain_state=None, ever_ran=True),
            (RUNNING, None),  # an unreachable launcher reports no domain: that is not a vanishing
            id="running-no-domain-below",
        ),
        pytest.param(
            RUNNING,
            unreachable(31, domain_state=None, ever_ran=True, deleting=True),
            (FAILED, "LauncherUnreachable"),
            id="deleting-unreachable",
        ),
        pytest.param(
            SCHEDULED,
            unreachable(29.9, domain_state=pb.DOMAIN_STATE_RUNNING),
            (RUNNING, None),  # the last domain seen was running: that much is known
            id="scheduled-last-seen-running",
        ),
        pytest.param(
            SCHEDULED,
            unreachable(30.0, domain_state=None, ever_ran=True),
            (FAILED, "LauncherUnreachable"),
            id="ran-at-limit",
        ),
        pytest.param(
            SCHEDULED,
            unreachable(179.9, domain_state=None),
            (SCHEDULED, None),
            id="starting-just-below",
        ),
        pytest.param(
            SCHEDULED,
            unreachable(180.0, domain_state=None),
            (FAILED, "LauncherUnreachable"),
            id="starting-at-limit",
        ),
        pytest.param(
            RUNNING,
            unreachable(
                1000,
                domain_state=pb.DOMAIN_STATE_SHUTOFF,
                domain_reason=pb.DOMAIN_STATE_REASON_SHUTDOWN,
                ever_ran=True,
            ),
            (SUCCEEDED, "GuestShutdown"),  # the last domain state seen already decided
            id="shut-down-then-unreachable",
        ),
        pytest.param(
            RUNNING,
            Observed(
                domain_state=pb.DOMAIN_STATE_RUNNING, unreachable_for=1000, launcher_reachable=True
            ),
            (RUNNING, None),
            id="reachable-ignores-duration",
        ),
    ],
)
def test_unreachable_launcher(
    current: str, observed: Observed, expected: tuple[str, str | None]
) -> None:
    decision = phase.next_phase(current, observed)
    assert (decision.phase, decision.reason) == expected


def test_the_limits() -> None:
    assert phase.UNREACHABLE_LIMIT == 30.0
    assert phase.STARTUP_UNREACHABLE_LIMIT == 180.0


def test_unreachable_message_says_how_long() -> None:
    decision = phase.next_phase(RUNNING, unreachable(42.4, domain_state=None, ever_ran=True))
    assert decision.message is not None
    assert "42 s" in decision.message
    assert "30 s" in decision.message


@pytest.mark.parametrize(
    ("current", "observed", "expected"),
    [
        pytest.param(
            RUNNING,
            Observed(domain_state=pb.DOMAIN_STATE_RUNNING, launcher_gone=True, ever_ran=True),
            (FAILED, "LauncherGone"),
            id="last-seen-running",
        ),
        pytest.param(
            RUNNING,
            Observed(
                domain_state=None, launcher_gone=True, launcher_reachable=False, ever_ran=True
            ),
            (FAILED, "LauncherGone"),
            id="unreachable-and-gone",
        ),
        pytest.param(
            SCHEDULED,
            Observed(domain_state=None, launcher_gone=True),
            (FAILED, "LauncherGone"),
            id="gone-before-running",
        ),
        pytest.param(
            RUNNING,
            Observed(
                domain_state=pb.DOMAIN_STATE_SHUTOFF,
                domain_reason=pb.DOMAIN_STATE_REASON_SHUTDOWN,
                launcher_gone=True,
                ever_ran=True,
            ),
            (SUCCEEDED, "GuestShutdown"),
            id="shut-down-then-gone",
        ),
        pytest.param(
            RUNNING,
            Observed(domain_state=None, launcher_gone=True, deleting=True, ever_ran=True),
            (SUCCEEDED, "Deleted"),
            id="gone-while-deleting",
        ),
    ],
)
def test_launcher_gone(current: str, observed: Observed, expected: tuple[str, str | None]) -> None:
    decision = phase.next_phase(current, observed)
    assert (decision.phase, decision.reason) == expected


def test_an_unknown_reason_is_named_in_the_message() -> None:
    observed = Observed(domain_state=pb.DOMAIN_STATE_SHUTOFF, domain_reason=99, ever_ran=True)
    decision = phase.next_phase(RUNNING, observed)
    assert decision.reason == "UnknownShutoffReason"
    assert decision.message is not None and "99" in decision.message
    named = Observed(
        domain_state=pb.DOMAIN_STATE_SHUTOFF,
        domain_reason=pb.DOMAIN_STATE_REASON_BOOTED,
        ever_ran=True,
    )
    message = phase.next_phase(RUNNING, named).message
    assert message is not None and "DOMAIN_STATE_REASON_BOOTED" in message


def paused(reason: int) -> Observed:
    return Observed(domain_state=pb.DOMAIN_STATE_PAUSED, domain_reason=reason, ever_ran=True)


@pytest.mark.parametrize(
    ("observed", "emulated", "ready", "expected"),
    [
        pytest.param(
            Observed(domain_state=pb.DOMAIN_STATE_RUNNING),
            False,
            True,
            [("Ready", True, None)],
            id="running",
        ),
        pytest.param(
            Observed(domain_state=pb.DOMAIN_STATE_RUNNING),
            True,
            True,
            [("Ready", True, None), ("SoftwareEmulation", True, "EmulatedByTCG")],
            id="emulated",
        ),
        pytest.param(
            paused(pb.DOMAIN_STATE_REASON_PAUSED_BY_USER),
            False,
            False,
            [("Ready", False, "GuestNotRunning"), ("Paused", True, "PausedByUser")],
            id="paused-by-user",
        ),
        pytest.param(
            paused(pb.DOMAIN_STATE_REASON_IO_ERROR),
            True,
            False,
            [
                ("Ready", False, "GuestNotRunning"),
                ("SoftwareEmulation", True, "EmulatedByTCG"),
                ("Paused", True, "PausedIOError"),
            ],
            id="io-error-emulated-in-order",
        ),
        *(
            pytest.param(
                paused(reason),
                False,
                False,
                [("Ready", False, "GuestNotRunning")],
                id=f"paused-{R.Name(reason).removeprefix('DOMAIN_STATE_REASON_').lower()}",
            )
            for reason in (
                pb.DOMAIN_STATE_REASON_WATCHDOG,
                pb.DOMAIN_STATE_REASON_STARTING_UP,
                pb.DOMAIN_STATE_REASON_PAUSED_FOR_MIGRATION,
                pb.DOMAIN_STATE_REASON_PAUSED_FOR_SAVE,
                pb.DOMAIN_STATE_REASON_UNKNOWN,
            )
        ),
        pytest.param(
            Observed(
                domain_state=pb.DOMAIN_STATE_RUNNING,
                domain_reason=pb.DOMAIN_STATE_REASON_PAUSED_BY_USER,
            ),
            False,
            True,
            [("Ready", True, None)],
            id="pause-reason-without-paused-state",
        ),
        pytest.param(
            Observed(domain_state=None),
            False,
            False,
            [("Ready", False, "GuestNotRunning")],
            id="none",
        ),
        pytest.param(
            Observed(domain_state=pb.DOMAIN_STATE_RUNNING, launcher_reachable=False),
            False,
            False,
            [("Ready", False, "LauncherUnreachable")],
            id="unreachable",
        ),
    ],
)
def test_conditions(
    observed: Observed,
    emulated: bool,
    ready: bool,
    expected: list[tuple[str, bool, str | None]],
) -> None:
    assert phase.conditions(observed, emulated=emulated, ready=ready) == expected
