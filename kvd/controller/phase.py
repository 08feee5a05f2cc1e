"""The controller's half of a VMI's life, as a pure table: (VMI phase, deleting, its launcher
pods) → the next step. The controller owns the phases up to `Scheduled` (DESIGN.md §1); from
then on the handler owns the VMI, and the controller steps in only when the pod is lost before
the handler took over, or when a deleted VMI's handler does not finish it.

- Pending: no pod → create one, Scheduling. A pod already there (created by this controller
  before a restart, its status write lost) → judged as Scheduling.
- Scheduling: the pod runs on a node → Scheduled on that node. Pending → stay, with the pod's
  trouble as conditions (PodScheduled=False/Unschedulable, Synchronized=False/ErrImagePull …).
  Ended (or its launcher exited, while the console container runs on) or gone → Failed, with
  the pod's reason.
- Scheduled: the pod failed or is gone, or the launcher in it exited → Failed (the handler
  cannot run it any more).
- Running: the handler's.
- Deleting: the pods are deleted at once, as KubeVirt does: the launcher takes SIGTERM as a
  shutdown request and ends its guest within the VMI's grace period (the pod's grace adds a
  margin), while the handler, from Scheduled on, sends its own shutdown and ends the VMI as the
  domain stops. Once no pod is left, a VMI nobody ended (one that never ran) ends Failed with
  reason Deleted. The finalizer goes when the VMI is final and no pod is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kvd.api.phases import FAILED, PENDING, RUNNING, SCHEDULED, SCHEDULING, UNSET, is_final

Json = dict[str, Any]

# A launcher container that cannot start, by the reason it waits with: image pulls, as KubeVirt
# reports them, and the kubelet's container set-up failures (a claim mounted that must be a
# device, a missing ConfigMap, …), which otherwise leave a VMI Scheduling with no word of why.
CONTAINER_ERRORS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
)
OWNED_CONDITIONS = ("PodScheduled", "Synchronized")


@dataclass(frozen=True, kw_only=True)
class Pod:
    """What the table needs of a launcher pod."""

    name: str
    uid: str
    phase: str = "Pending"  # the pod's
    node: str = ""
    deleting: bool = False
    created: str = ""  # creationTimestamp, to pick the oldest
    unschedulable: str = ""  # PodScheduled=False/Unschedulable's message
    container_error: tuple[str, str] | None = None  # (reason, message) of a container stuck
    failure: tuple[str, str] = ("", "")  # (reason, message) of an ended pod
    launcher_exited: bool = False  # the compute container terminated (the pod may still run)

    @property
    def ended(self) -> bool:
        """The pod, or the launcher in it, is done: its console container may keep a pod
        Running after the launcher exited (KubeVirt's isComputeContainerDown)."""
        return self.phase in ("Succeeded", "Failed") or self.launcher_exited


@dataclass(frozen=True)
class Condition:
    type: str
    ok: bool
    reason: str = ""
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class Step:
    phase: str
    reason: str = ""  # status.reason, when the VMI ends here
    message: str = ""  # for the Event that goes with an end
    create_pod: bool = False
    delete_pods: tuple[str, ...] = ()
    remove_finalizer: bool = False
    scheduled_on: Pod | None = None  # → status.nodeName, activePods, the nodeName label
    conditions: tuple[Condition, ...] = ()  # the controller's conditions (OWNED_CONDITIONS)
    again: float | None = None  # look again after this many seconds
    owned: bool = True  # False: the handler owns the status; keep the controller's hands off


def decide(
    phase: str,
    pods: Sequence[Pod],
    *,
    deleting: bool = False,
) -> Step:
    """The next step for a VMI in `phase` with these launcher pods (oldest first)."""
    alive = [p for p in pods if not p.deleting]
    if deleting:
        return _deleting(phase, pods, alive)
    if is_final(phase) or phase == RUNNING:
        return Step(phase=phase, owned=False)
    if phase in (UNSET, PENDING) and not pods:
        return Step(phase=SCHEDULING, create_pod=True)
    pod = _current(pods)
    if pod is None:
        return Step(phase=FAILED, reason="LauncherPodDeleted", message="the launcher pod is gone")
    if pod.ended or pod.deleting:
        reason, message = pod.failure
        return Step(
            phase=FAILED,
            reason=reason or "LauncherPodFailed",
            message=message or f"launcher pod {pod.name} ended {pod.phase}",
        )
    if phase == SCHEDULED:
        return Step(phase=phase, owned=False)
    if pod.phase == "Running" and pod.node:  # the pod's phase
        return Step(phase=SCHEDULED, scheduled_on=pod)
    conditions = []
    if pod.unschedulable:
        conditions.append(Condition("PodScheduled", False, "Unschedulable", pod.unschedulable))
    if pod.container_error is not None:
        conditions.append(Condition("Synchronized", False, *pod.container_error))
    return Step(phase=SCHEDULING, conditions=tuple(conditions))


def _deleting(phase: str, pods: Sequence[Pod], alive: Sequence[Pod]) -> Step:
    handler_owned = phase in (SCHEDULED, RUNNING)
    if alive:  # SIGTERM: the launcher shuts its guest down within the pod's grace period
        return Step(phase=phase, owned=not handler_owned, delete_pods=tuple(p.name for p in alive))
    if pods:  # deleted, not gone yet: the pod informer says when
        return Step(phase=phase, owned=not handler_owned)
    if is_final(phase):
        return Step(phase=phase, remove_finalizer=True)
    # No launcher left, and nobody ended the VMI: a domain that ran is ended by the handler as
    # soon as it stops, before its launcher exits; so this one never ran, or its handler is down.
    return Step(
        phase=FAILED,
        reason="Deleted",
        message="deleted; its launcher pod is gone and no handler ended it"
        if handler_owned
        else "deleted before it ran",
        remove_finalizer=True,
    )


def _current(pods: Sequence[Pod]) -> Pod | None:
    """The pod that counts: the oldest one not being deleted, else the newest."""
    alive = [p for p in pods if not p.deleting]
    if alive:
        return min(alive, key=lambda p: p.created)
    return max(pods, key=lambda p: p.created) if pods else None


def view(pod: Json) -> Pod:
    """A launcher pod (wire JSON) as the table sees it."""
    meta, status = pod["metadata"], pod.get("status") or {}
    unschedulable = next(
        (
            str(c.get("message") or "")
            for c in status.get("conditions") or []
            if c.get("type") == "PodScheduled"
            and c.get("status") == "False"
            and c.get("reason") == "Unschedulable"
        ),
        "",
    )
    container_error: tuple[str, str] | None = None
    launcher_exited = False
    failure = (str(status.get("reason") or ""), str(status.get("message") or ""))
    for c in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        state = c.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in CONTAINER_ERRORS and container_error is None:
            container_error = (str(waiting["reason"]), str(waiting.get("message") or ""))
        ended = state.get("terminated") or {}
        if c.get("name") == "compute" and ended:
            launcher_exited = True
        if c.get("name") == "compute" and ended and not failure[0]:
            code = ended.get("exitCode")
            failure = (
                str(ended.get("reason") or "LauncherPodFailed"),
                str(ended.get("message") or f"the launcher exited with code {code}"),
            )
    return Pod(
        name=str(meta["name"]),
        uid=str(meta["uid"]),
        phase=str(status.get("phase") or "Pending"),
        node=str((pod.get("spec") or {}).get("nodeName") or ""),
        deleting=bool(meta.get("deletionTimestamp")),
        created=str(meta.get("creationTimestamp") or ""),
        unschedulable=unschedulable,
        container_error=container_error,
        failure=failure,
        launcher_exited=launcher_exited,
    )
