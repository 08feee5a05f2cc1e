"""What `start`, `stop` and `restart` write, as pure functions of the VM and its VMI (KubeVirt's
virt-api `lifecycle.go`, rule for rule, so that the VM controller (`vmrun`) acts on them as
KubeVirt's does):

- start: Halted → the spec says run (`runStrategy: Always`, or `running: true`); Manual and
  RerunOnFailure → a Start request (after a Stop request for an ended VMI, so it is replaced);
  Always and Once run by themselves, so a start is refused, as is one of a VMI still running.
- stop: Always and Once → the spec says Halted (`running: false`); Manual and RerunOnFailure →
  a Stop request naming the VMI; Halted → only to hurry a stop in progress with a shorter grace
  period. A grace period is first written into the VMI (`terminationGracePeriodSeconds`),
  which the handler reads while it waits for the guest to power off.
- restart: a Stop request naming the current VMI, then a Start request: the VM controller
  deletes that VMI and starts a new one (a new uid). Not for Halted or Once.

Every patch is a JSON patch that first tests `metadata.resourceVersion`, so two callers racing
on one VM cannot both act on what they read: the loser gets a conflict and may read again.
Refusals are `Refusal`s whose kind the transports map onto their codes (409 / FAILED_PRECONDITION
for a state that does not allow the call, 400 / INVALID_ARGUMENT for bad options).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from kvd.api import phases
from kvd.controller import vmrun

Json = dict[str, Any]


class Kind(Enum):
    """Why an operation was refused; each transport maps it onto its own code."""

    INVALID = "BadRequest"  # the request's options
    UNAUTHENTICATED = "Unauthorized"
    FORBIDDEN = "Forbidden"
    NOT_FOUND = "NotFound"
    CONFLICT = "Conflict"  # the object's state does not allow it
    ABORTED = "Aborted"  # a stream another session displaced
    UNAVAILABLE = "ServiceUnavailable"  # the API server or the VMI's node
    INTERNAL = "InternalError"  # kvd itself is misconfigured or failed


class Refusal(Exception):
    """An operation that did not happen; `message` is for the person who asked."""

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Patch:
    """A JSON patch for `target`: the VM (`spec`), its `status`, or its VMI (`vmi`)."""

    target: str
    ops: list[Json] = field(default_factory=list)


def conflict(message: str) -> Refusal:
    return Refusal(Kind.CONFLICT, message)


def running(vmi: Json | None) -> bool:
    """A VMI that counts as running for start: it exists, has not ended, and its phase is
    known (KubeVirt: not final, not Unknown, not unset)."""
    if vmi is None:
        return False
    phase = str((vmi.get("status") or {}).get("phase") or "")
    return not phases.is_final(phase) and phase not in (phases.UNKNOWN, phases.UNSET)


def ended(vmi: Json | None) -> bool:
    return vmi is None or phases.is_final(str((vmi.get("status") or {}).get("phase") or ""))


def _strategy(vm: Json) -> str:
    try:
        return vmrun.run_strategy(vm.get("spec") or {})
    except vmrun.InvalidRunStrategy as exc:
        raise Refusal(Kind.CONFLICT, f"the VM's run strategy is invalid: {exc}") from None


def _guarded(obj: Json, *ops: Json) -> list[Json]:
    version = obj["metadata"].get("resourceVersion")
    test = {"op": "test", "path": "/metadata/resourceVersion", "value": version}
    return [test, *ops] if version else list(ops)


def run_patch(vm: Json, run: bool) -> Patch:
    """The spec edit that makes the VM run (Always) or stay off (Halted), in the field it
    uses: `runStrategy`, or the older `running`."""
    spec = vm.get("spec") or {}
    if "running" in spec and spec.get("runStrategy") is None:
        op = {"op": "replace", "path": "/spec/running", "value": run}
    else:
        strategy = vmrun.ALWAYS if run else vmrun.HALTED
        op = {"op": "add", "path": "/spec/runStrategy", "value": strategy}
    return Patch("spec", _guarded(vm, op))


def requests_patch(vm: Json, *requests: Json) -> Patch:
    """Appends state change requests to the VM's status (a single Stop replaces any pending
    ones, as KubeVirt's); a start or restart while others are pending is refused."""
    status = vm.get("status") or {}
    pending = status.get("stateChangeRequests") or []
    stop_only = len(requests) == 1 and requests[0]["action"] == vmrun.STOP
    if pending and not stop_only:
        raise conflict("unable to complete request: stop/start already underway")
    ops: list[Json] = []
    if not status:
        ops.append({"op": "add", "path": "/status", "value": {}})
    ops.append({"op": "add", "path": "/status/stateChangeRequests", "value": list(requests)})
    if status.get("startFailure"):
        ops.append({"op": "remove", "path": "/status/startFailure"})
    return Patch("status", _guarded(vm, *ops))


def _stop_request(vmi: Json) -> Json:
    return {"action": vmrun.STOP, "uid": vmi["metadata"]["uid"]}


def start(vm: Json, vmi: Json | None, *, paused: bool = False) -> Patch:
    name = vm["metadata"]["name"]
    if paused:
        raise Refusal(Kind.INVALID, "starting a VM paused is not supported by kvd")
    if running(vmi):
        raise conflict(f"VM {name} is already running")
    strategy = _strategy(vm)
    if strategy == vmrun.HALTED:
        return run_patch(vm, True)
    if strategy in (vmrun.RERUN, vmrun.MANUAL):
        phase = str(((vmi or {}).get("status") or {}).get("phase") or "")
        if strategy == vmrun.RERUN and phase == phases.FAILED:
            raise conflict(f"{vmrun.RERUN} does not support starting VM from failed state")
        replace = vmi is not None and (
            phase == phases.SUCCEEDED or (strategy == vmrun.MANUAL and phases.is_final(phase))
        )
        start_request = {"action": vmrun.START}
        if replace and vmi is not None:
            return requests_patch(vm, _stop_request(vmi), start_request)
        return requests_patch(vm, start_request)
    raise conflict(f"{strategy} does not support manual start requests")


def grace_patch(vmi: Json, grace_period: int) -> Patch:
    """The VMI's grace period for this stop, guarded by the value it had."""
    spec = vmi.get("spec") or {}
    ops: list[Json] = []
    if "terminationGracePeriodSeconds" in spec:
        ops.append(
            {
                "op": "test",
                "path": "/spec/terminationGracePeriodSeconds",
                "value": spec["terminationGracePeriodSeconds"],
            }
        )
    ops.append({"op": "add", "path": "/spec/terminationGracePeriodSeconds", "value": grace_period})
    return Patch("vmi", ops)


def check_grace(grace_period: int | None) -> None:
    if grace_period is not None and grace_period < 0:
        raise Refusal(Kind.INVALID, f"gracePeriod must be 0 or more, not {grace_period}")


def stop(vm: Json, vmi: Json | None, *, grace_period: int | None = None) -> list[Patch]:
    """The patches, in order: the VMI's grace period (when given), then the VM's."""
    check_grace(grace_period)
    name = vm["metadata"]["name"]
    strategy = _strategy(vm)
    live = vmi is not None and not ended(vmi)
    patches = [grace_patch(vmi, grace_period)] if live and vmi and grace_period is not None else []
    if strategy in (vmrun.ALWAYS, vmrun.ONCE):
        return [*patches, run_patch(vm, False)]
    if not live or vmi is None:
        raise conflict(f"VM {name} is not running")
    if strategy == vmrun.HALTED:
        old = (vmi.get("spec") or {}).get("terminationGracePeriodSeconds")
        if grace_period is None or (old is not None and grace_period >= int(old)):
            raise conflict(
                f"VM {name} is already stopping: {vmrun.HALTED} only supports manual stop "
                "requests with a shorter grace period"
            )
    return [*patches, requests_patch(vm, _stop_request(vmi))]


def restart(vm: Json, vmi: Json | None, *, grace_period: int | None = None) -> list[Patch]:
    """Stop the current VMI (with its grace period shortened when given), then start anew."""
    check_grace(grace_period)
    name = vm["metadata"]["name"]
    strategy = _strategy(vm)
    if strategy in (vmrun.HALTED, vmrun.ONCE):
        raise conflict(f"RunStrategy {strategy} does not support manual restart requests")
    if vmi is None:
        raise conflict(f"VM {name} is not running")
    patches = [grace_patch(vmi, grace_period)] if grace_period is not None else []
    if ended(vmi):
        patches = []
    start_request = {"action": vmrun.START}
    return [*patches, requests_patch(vm, _stop_request(vmi), start_request)]


# --- pause and unpause: what the VMI must be ---------------------------------------------------


def paused(vmi: Json) -> bool:
    conditions = (vmi.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Paused" and c.get("status") == "True" for c in conditions)


def check_pause(vmi: Json) -> None:
    name = vmi["metadata"]["name"]
    if (vmi.get("status") or {}).get("phase") != phases.RUNNING:
        raise conflict(f"VMI {name} is not running")
    if (vmi.get("spec") or {}).get("livenessProbe"):
        raise Refusal(Kind.FORBIDDEN, "pausing VMIs with a livenessProbe is not supported")
    if paused(vmi):
        raise conflict(f"VMI {name} is already paused")


def check_unpause(vmi: Json) -> None:
    name = vmi["metadata"]["name"]
    if (vmi.get("status") or {}).get("phase") != phases.RUNNING:
        raise conflict(f"VMI {name} is not running")
    if not paused(vmi):
        raise conflict(f"VMI {name} is not paused")
