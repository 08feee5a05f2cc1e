"""A VMI's phases: the names the API allows, the one rule for their order, and the status patch
that moves a VMI from one to the next."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvd.api import crds, kinds, phases

NOW = "2026-11-27T00:00:10Z"
# KubeVirt's VirtualMachineInstancePhase values (pkg/apis/core/v1/types.go), "" = not set yet
KUBEVIRT = ["", "Pending", "Scheduling", "Scheduled", "Running", "Succeeded", "Failed", "Unknown"]
PATH = ["Pending", "Scheduling", "Scheduled", "Running"]
NOT_KNOWN = "WaitingForSync"  # a KubeVirt phase kvd does not serve: it cannot tell what it means


def test_the_names_are_kubevirts_and_the_crd_allows_exactly_them() -> None:
    assert list(phases.NAMES) == KUBEVIRT
    crd = crds.crd(kinds.VMI)
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["properties"]["phase"]["enum"] == KUBEVIRT


@pytest.mark.parametrize(
    ("name", "final"),
    [(p, p in ("Succeeded", "Failed")) for p in [*KUBEVIRT, NOT_KNOWN]],
    ids=[p or "unset" for p in [*KUBEVIRT, NOT_KNOWN]],
)
def test_is_final(name: str, final: bool) -> None:
    assert phases.is_final(name) is final


@pytest.mark.parametrize(
    ("current", "wanted", "result"),
    [
        pytest.param("Pending", "Scheduling", "Scheduling", id="forwards"),
        pytest.param("Pending", "Running", "Running", id="forwards-skipping"),
        pytest.param("Scheduling", "Pending", "Scheduling", id="never-backwards"),
        pytest.param("Running", "Scheduled", "Running", id="running-stays"),
        pytest.param("Running", "Failed", "Failed", id="running-ends"),
        pytest.param("", "Pending", "Pending", id="unset-is-first"),
        pytest.param("", "Failed", "Failed", id="unset-can-end"),
        pytest.param("Pending", "", "Pending", id="unset-never-wins"),
        pytest.param("", "", "", id="unset-stays-unset"),
        # a final phase is kept: Succeeded and Failed rank the same, the first one written stands
        pytest.param("Succeeded", "Failed", "Succeeded", id="succeeded-kept-over-failed"),
        pytest.param("Failed", "Succeeded", "Failed", id="failed-kept-over-succeeded"),
        pytest.param("Failed", "Running", "Failed", id="final-kept-over-running"),
        pytest.param("Succeeded", "Unknown", "Succeeded", id="final-kept-over-unknown"),
        # Unknown is no place on the path: any known phase replaces it, it replaces none
        pytest.param("Unknown", "Pending", "Pending", id="unknown-then-pending"),
        pytest.param("Unknown", "Running", "Running", id="unknown-then-running"),
        pytest.param("Unknown", "Failed", "Failed", id="unknown-then-failed"),
        pytest.param("Unknown", "", "Unknown", id="unknown-over-unset-keeps"),
        pytest.param("", "Unknown", "", id="unset-over-unknown-keeps"),
        pytest.param("Running", "Unknown", "Running", id="unknown-never-replaces-running"),
        pytest.param("Pending", "Unknown", "Pending", id="unknown-never-replaces-pending"),
        # a name kvd does not know ranks like Unknown: it cannot tell where the VMI is
        pytest.param(NOT_KNOWN, "Running", "Running", id="not-known-then-running"),
        pytest.param("Scheduled", NOT_KNOWN, "Scheduled", id="not-known-never-wins"),
    ],
)
def test_later(current: str, wanted: str, result: str) -> None:
    assert phases.later(current, wanted) == result


def test_the_path_is_in_order_and_both_final_phases_end_it() -> None:
    ranks = [phases.rank(p) for p in PATH]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(PATH)
    assert phases.rank("Succeeded") == phases.rank("Failed") > phases.rank("Running")
    assert phases.rank("") == phases.rank("Unknown") < phases.rank("Pending")


@given(
    a=st.sampled_from([*KUBEVIRT, NOT_KNOWN]),
    b=st.sampled_from([*KUBEVIRT, NOT_KNOWN]),
    c=st.sampled_from([*KUBEVIRT, NOT_KNOWN]),
)
def test_later_is_one_of_its_arguments_never_goes_back_and_keeps_a_final_phase(
    a: str, b: str, c: str
) -> None:
    moved = phases.later(a, b)
    assert moved in (a, b)
    assert phases.rank(moved) >= phases.rank(a)
    if phases.is_final(a):
        assert moved == a
    # proposals in any order end no earlier than the latest of them
    assert phases.rank(phases.later(moved, c)) == max(map(phases.rank, (a, b, c)))


# --- the status patch ---------------------------------------------------------------------


def test_a_phase_change_appends_exactly_one_transition() -> None:
    before = [{"phase": "Scheduling", "phaseTransitionTimestamp": "T0"}]
    status = {"phase": "Scheduling", "phaseTransitionTimestamps": before, "nodeName": "n1"}
    assert phases.move(status, "Scheduled", now=NOW) == {
        "phase": "Scheduled",
        "phaseTransitionTimestamps": [
            *before,
            {"phase": "Scheduled", "phaseTransitionTimestamp": NOW},
        ],
    }
    assert status["phaseTransitionTimestamps"] == before  # the status read is left as it was


@pytest.mark.parametrize(
    ("status", "wanted"),
    [
        pytest.param({"phase": "Running"}, "Running", id="same-phase"),
        pytest.param({"phase": "Running"}, "Scheduled", id="backwards"),
        pytest.param({"phase": "Succeeded"}, "Failed", id="final-to-other-final"),
        pytest.param({"phase": "Failed", "reason": "Crashed"}, "Failed", id="final-again"),
        pytest.param({"phase": "Running"}, "Unknown", id="to-unknown"),
        pytest.param({"phase": "Running"}, "", id="to-unset"),
        pytest.param({}, "", id="unset-to-unset"),
    ],
)
def test_no_move_no_patch(status: dict[str, Any], wanted: str) -> None:
    assert phases.move(status, wanted, reason="Whatever", now=NOW) == {}


@pytest.mark.parametrize(
    ("status", "wanted", "reason", "patched_reason"),
    [
        pytest.param({"phase": "Running"}, "Failed", "Crashed", "Crashed", id="final-has-reason"),
        pytest.param({"phase": "Running"}, "Succeeded", None, None, id="final-without-reason"),
        pytest.param({"phase": "Pending"}, "Scheduling", "Why", None, id="no-reason-before-end"),
        pytest.param({"phase": "Unknown"}, "Failed", "Lost", "Lost", id="unknown-ends"),
        pytest.param({}, "Pending", None, None, id="first-phase"),
    ],
)
def test_reason_only_with_a_final_phase(
    status: dict[str, Any], wanted: str, reason: str | None, patched_reason: str | None
) -> None:
    patch = phases.move(status, wanted, reason=reason, now=NOW)
    assert patch["phase"] == wanted
    assert patch["phaseTransitionTimestamps"] == [
        {"phase": wanted, "phaseTransitionTimestamp": NOW}
    ]
    assert patch.get("reason") == patched_reason
