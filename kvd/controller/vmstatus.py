"""A VirtualMachine's status, computed from the VM, its VMI and what the controller has under
way. Pure. KubeVirt's `updateStatus` (pkg/virt-controller/watch/vm/vm.go), field by field:

- `created` (a VMI exists), `ready` (its Ready condition is True); both left out when false,
  as KubeVirt's `omitempty` leaves them.
- `observedGeneration` (the generation the VMI records) and `desiredGeneration` (the VM's), while
  a VMI exists; `runStrategy`, once the VM has had a VMI (so RerunOnFailure can tell a VM that
  stopped by itself from one that comes from another strategy).
- `stateChangeRequests`: the first one goes once it has had its effect (`vmrun`).
- `startFailure`: the start back-off (`vmrun.start_failure`).
- Conditions: Ready mirrors the VMI's (VMINotExists without one); Failure carries this
  reconcile's error; RestartRequired is set by the caller, who compares the VMI with the
  template; every other condition is the VMI's, copied, and goes when the VMI drops it.
- `printableStatus`: the first of KubeVirt's tests that holds, in KubeVirt's order (below).
  DataVolumeError (a DataVolume of the VM failed, or its importer fails and restarts),
  Provisioning (one is on its way) and WaitingForVolumeBinding (a claim, or a DataVolume waiting
  for its first consumer) come from `vmvolumes`. Migrating and WaitingForReceiver concern
  features kvd does not have (live migration, migration receivers) and never hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from kvd.api import phases
from kvd.conditions import condition as make_condition
from kvd.controller import vmrun, vmtemplate, vmvolumes

Json = dict[str, Any]

READY, FAILURE, RESTART_REQUIRED, PAUSED = "Ready", "Failure", "RestartRequired", "Paused"
NOT_COPIED: Final = frozenset({READY, FAILURE, RESTART_REQUIRED})


@dataclass(frozen=True, kw_only=True)
class Observed:
    """What the status needs besides the VM and its VMI."""

    start_expected: bool = False  # a VMI creation is under way (the controller's expectations)
    stop_expected: bool = False  # a VMI deletion is under way
    claims_unbound: bool = False  # a claim of the template is not bound yet
    error: tuple[str, str] | None = None  # (reason, message) of this reconcile's failure
    restart_required: bool | None = None  # set or clear RestartRequired; None: leave it
    data_volumes: vmvolumes.View = vmvolumes.ALL_READY  # the VM's DataVolumes


def compute(
    vm: Json,
    vmi: Json | None,
    observed: Observed,
    *,
    strategy: str | None,
    now: datetime,
    jitter: float,
) -> Json:
    """The VM's whole status now (`strategy` None: the spec names no valid one)."""
    old: Json = dict(vm.get("status") or {})
    new: Json = {k: v for k, v in old.items() if k not in ("created", "ready")}
    view = vmrun.view(vmi)
    if vmi is not None:
        new["created"] = True
        if _condition_true(vmi, READY):
            new["ready"] = True
        generation = vmtemplate.generation_of(vmi)
        if generation is not None:
            new["observedGeneration"] = generation
            new["desiredGeneration"] = int(vm["metadata"].get("generation") or 1)
    if strategy is not None and (old.get("runStrategy") or vmi is not None):
        new["runStrategy"] = strategy
    requests = list(old.get("stateChangeRequests") or [])
    if vmrun.done_with_first_request(old, view):
        requests = requests[1:]
    _set(new, "stateChangeRequests", requests)
    if strategy is not None:
        _set(new, "startFailure", vmrun.start_failure(strategy, old, view, now=now, jitter=jitter))
    new["conditions"] = _conditions(old, vmi, observed, vmrun.format_time(now))
    if not new["conditions"]:
        del new["conditions"]
    new["printableStatus"] = printable(vm, vmi, new, observed, strategy=strategy)
    return new


def _set(status: Json, key: str, value: Any) -> None:
    if value:
        status[key] = value
    else:
        status.pop(key, None)


# --- conditions -------------------------------------------------------------------------------


def condition(obj: Json | None, kind: str) -> Json | None:
    if obj is None:
        return None
    found = ((obj.get("status") or {}).get("conditions")) or []
    return next((c for c in found if c.get("type") == kind), None)


def _condition_true(obj: Json | None, kind: str) -> bool:
    c = condition(obj, kind)
    return c is not None and c.get("status") == "True"


def _conditions(old: Json, vmi: Json | None, observed: Observed, now: str) -> list[Json]:
    """The VM's conditions, each kept in its place (as KubeVirt's condition manager keeps
    them), new ones appended."""
    before = {c["type"]: c for c in old.get("conditions") or []}
    wanted: dict[str, Json | None] = {READY: _ready(before.get(READY), vmi, now)}
    wanted[FAILURE] = None
    if observed.error is not None:
        reason, message = observed.error
        wanted[FAILURE] = make_condition(
            before.get(FAILURE), FAILURE, True, reason, message, now=now
        )
    if observed.restart_required is not None:
        wanted[RESTART_REQUIRED] = (
            make_condition(
                before.get(RESTART_REQUIRED),
                RESTART_REQUIRED,
                True,
                None,
                "a non-live-updatable field was changed in the template spec",
                now=now,
            )
            if observed.restart_required
            else None
        )
    if vmi is not None:  # the VMI's own, copied; those it no longer has go
        wanted.update({k: None for k in before if k not in NOT_COPIED})
        for c in (vmi.get("status") or {}).get("conditions") or []:
            if c.get("type") not in NOT_COPIED:
                wanted[str(c["type"])] = dict(c)
    out = []
    for c in old.get("conditions") or []:
        replacement = wanted.pop(c["type"], c)
        if replacement is not None:
            out.append(replacement)
    out.extend(c for c in wanted.values() if c is not None)
    return out


def _ready(before: Json | None, vmi: Json | None, now: str) -> Json:
    ready = condition(vmi, READY)
    if vmi is None:
        return make_condition(before, READY, False, "VMINotExists", "VMI does not exist", now=now)
    if ready is None:
        return make_condition(
            before,
            READY,
            False,
            "VMIConditionMissing",
            "VMI is missing the Ready condition",
            now=now,
        )
    return dict(ready)


# --- printableStatus --------------------------------------------------------------------------


def printable(
    vm: Json, vmi: Json | None, status: Json, observed: Observed, *, strategy: str | None
) -> str:
    """KubeVirt's setPrintableStatus: the first status whose test holds, in this order."""
    view = vmrun.view(vmi)
    final = view is not None and view.final
    phase = view.phase if view is not None else None
    synchronized = condition(vmi, "Synchronized") or {}
    sync_failed = synchronized.get("status") == "False"
    scheduled = condition(vmi, "PodScheduled") or {}
    paused = _condition_true(vmi, PAUSED)
    tests: tuple[tuple[str, bool], ...] = (
        ("Terminating", bool(vm["metadata"].get("deletionTimestamp"))),
        (
            "Stopping",
            view is not None and not final and (view.deleting or observed.stop_expected),
        ),
        ("Paused", phase == phases.RUNNING and paused),
        ("Running", phase == phases.RUNNING and not paused),
        ("ErrorPvcNotFound", sync_failed and synchronized.get("reason") == "FailedPvcNotFound"),
        ("DataVolumeError", observed.data_volumes.error),
        (
            "ErrorUnschedulable",
            scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable",
        ),
        ("Provisioning", observed.data_volumes.provisioning),
        (
            "WaitingForVolumeBinding",
            (observed.claims_unbound or observed.data_volumes.waiting_for_binding)
            and set_to_start(strategy, status, view),
        ),
        ("ErrImagePull", sync_failed and synchronized.get("reason") == "ErrImagePull"),
        ("ImagePullBackOff", sync_failed and synchronized.get("reason") == "ImagePullBackOff"),
        (
            "Starting",
            observed.start_expected
            if view is None
            else view.phase in (phases.UNSET, phases.PENDING, phases.SCHEDULING, phases.SCHEDULED),
        ),
        ("CrashLoopBackOff", _crash_looping(strategy, status, view, observed)),
        ("Stopped", final if view is not None else not observed.start_expected),
    )
    return next((name for name, holds in tests if holds), "Unknown")


def _crash_looping(
    strategy: str | None, status: Json, vmi: vmrun.VMI | None, observed: Observed
) -> bool:
    if (vmi is not None and not vmi.final) or observed.start_expected:
        return False
    failure = status.get("startFailure") or {}
    return int(failure.get("consecutiveFailCount") or 0) > 0 and strategy in vmrun.RESTARTING


def set_to_start(strategy: str | None, status: Json, vmi: vmrun.VMI | None) -> bool:
    """Whether the VM is meant to run now (KubeVirt's isSetToStart)."""
    if strategy == vmrun.ALWAYS:
        return True
    if strategy == vmrun.MANUAL:
        if vmi is not None:
            return not vmrun.stop_requested(status, vmi)
        return vmrun.start_requested(status)
    if strategy == vmrun.RERUN:
        return vmi is None or vmi.phase != phases.SUCCEEDED
    if strategy == vmrun.ONCE:
        return vmi is None
    return False
