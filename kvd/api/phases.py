"""A VMI's phases: their names, their order, and how a status moves from one to the next.

The names are KubeVirt's `VirtualMachineInstancePhase` values (pkg/apis/core/v1/types.go). Who
sets which is in DESIGN.md §1; the rule every writer follows is here, once:

- Phases never go backwards. A VMI passes Pending → Scheduling → Scheduled → Running, and ends
  Succeeded or Failed.
- A final phase is kept. Succeeded and Failed share the last rank, so neither replaces the other:
  whichever was written first stands (KubeVirt: `IsFinal()` is either, and virt-controller only
  removes the finalizer of a final VMI; virt-handler returns a final phase unchanged).
- Unknown says only that the VMI's state could not be determined (KubeVirt: "typically due to an
  error in communicating with the host"). It is no place on the path, so it ranks with the unset
  phase "": any phase the VMI is known to be in replaces it, and it never replaces a known one.
  A name this version does not know ranks the same way: kvd cannot tell where such a VMI is.

`later(current, wanted)` applies the rule, and `move` turns it into the status fields to patch,
with the `phaseTransitionTimestamps` entry KubeVirt appends for every phase entered.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

Phase = Literal[
    "", "Pending", "Scheduling", "Scheduled", "Running", "Succeeded", "Failed", "Unknown"
]
UNSET: Final[Phase] = ""
PENDING: Final[Phase] = "Pending"
SCHEDULING: Final[Phase] = "Scheduling"
SCHEDULED: Final[Phase] = "Scheduled"
RUNNING: Final[Phase] = "Running"
SUCCEEDED: Final[Phase] = "Succeeded"
FAILED: Final[Phase] = "Failed"
UNKNOWN: Final[Phase] = "Unknown"

NAMES: Final[tuple[Phase, ...]] = get_args(Phase)
"""Every phase the API allows (the CRD's enum), "" (not set yet) first."""

FINAL: Final = frozenset({SUCCEEDED, FAILED})

_RANK: Final[Mapping[str, int]] = MappingProxyType(
    {
        UNSET: 0,
        UNKNOWN: 0,
        PENDING: 1,
        SCHEDULING: 2,
        SCHEDULED: 3,
        RUNNING: 4,
        SUCCEEDED: 5,
        FAILED: 5,
    }
)


def rank(phase: str) -> int:
    """Where `phase` lies on the path (0 for "", Unknown and names this version does not know)."""
    return _RANK.get(phase, 0)


def is_final(phase: str) -> bool:
    """Whether `phase` is one a VMI never leaves."""
    return phase in FINAL


def later(current: str, wanted: str) -> str:
    """The phase a VMI in `current` is in once `wanted` is proposed: `wanted` when it lies
    further on, else `current` (a tie keeps `current`, so a final phase is never replaced)."""
    return wanted if rank(wanted) > rank(current) else current


def move(
    status: Mapping[str, Any], wanted: str, *, reason: str | None = None, now: str
) -> dict[str, Any]:
    """The status fields that take a VMI whose status is `status` to phase `wanted` at `now`.

    {} when it is there already or `wanted` does not lie further on (`later`). Otherwise
    `phase`, `phaseTransitionTimestamps` with exactly one entry appended, and `reason` when the
    new phase is final and a reason is given.
    """
    current = str(status.get("phase") or "")
    if later(current, wanted) == current:
        return {}
    patch: dict[str, Any] = {
        "phase": wanted,
        "phaseTransitionTimestamps": [
            *(status.get("phaseTransitionTimestamps") or []),
            {"phase": wanted, "phaseTransitionTimestamp": now},
        ],
    }
    if reason and is_final(wanted):
        patch["reason"] = reason
    return patch
