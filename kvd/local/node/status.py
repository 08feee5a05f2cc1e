"""A pod's `status`, computed the way the kubelet computes it (pure).

Input: the pod (for its spec and the status last written), what the node observes of each
container (`Observed`), the pod IP. Output: the whole `status` object. Phase follows the kubelet's
`getPhase`: Pending until every init container succeeded and no container is still waiting for its
first start; Running while any container runs (or restarts under Always/OnFailure); Succeeded or
Failed once everything has stopped for good. A terminal phase is never left. Condition transition
times are carried over from the previous status unless the condition's status changed, so the
status is equal — and no write happens — when nothing changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kvd.conditions import condition as make_condition
from kvd.local.node.containers import ContainerStatus

Json = dict[str, Any]

TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True, kw_only=True)
class Observed:
    """One container as the node sees it now."""

    name: str
    image: str
    current: ContainerStatus | None = None
    previous: ContainerStatus | None = None
    waiting_reason: str | None = None  # set when not running: ErrImagePull, CrashLoopBackOff, …
    waiting_message: str | None = None
    restart_count: int = 0
    ready: bool = False
    lost: bool = False  # the node had it running but it is gone with no exit status
    extra: Json = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.current is not None and self.current.running and not self.lost

    @property
    def terminated(self) -> ContainerStatus | None:
        if self.current is not None and not self.current.running and self.waiting_reason is None:
            return self.current
        return None


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def container_id(uid: str, name: str, attempt: int) -> str:
    return f"kvd://{uid}/{name}/{attempt}"


def container_status(uid: str, o: Observed) -> Json:
    status: Json = {
        "name": o.name,
        "image": o.image,
        "imageID": "",
        "ready": o.ready and o.running,
        "started": o.running,
        "restartCount": o.restart_count,
    }
    if o.current is not None:
        status["containerID"] = container_id(uid, o.name, o.current.attempt)
    if o.lost:
        status["state"] = {
            "terminated": {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was terminated",
            }
        }
    elif o.running and o.current is not None:
        status["state"] = {"running": {"startedAt": timestamp(o.current.started_at)}}
    elif (done := o.terminated) is not None:
        status["state"] = {"terminated": _terminated(uid, done)}
    else:
        waiting: Json = {"reason": o.waiting_reason or "ContainerCreating"}
        if o.waiting_message:
            waiting["message"] = o.waiting_message
        status["state"] = {"waiting": waiting}
    last = o.previous if o.terminated is None else None
    if o.waiting_reason and o.current is not None and not o.current.running:
        last = o.current  # restarting: the attempt that ended is the last state
    status["lastState"] = {"terminated": _terminated(uid, last)} if last is not None else {}
    return status


def _terminated(uid: str, s: ContainerStatus) -> Json:
    code = s.exit_code if s.exit_code is not None else 137
    reason = s.reason if getattr(s, "reason", None) else ("Completed" if code == 0 else "Error")
    out: Json = {
        "exitCode": code,
        "reason": reason,
        "startedAt": timestamp(s.started_at),
        "finishedAt": timestamp(s.finished_at or s.started_at),
        "containerID": container_id(uid, s.name, s.attempt),
    }
    if s.signal:
        out["signal"] = s.signal
    return out


def _init_phase(policy: str, init: list[Observed]) -> str | None:
    """The phase the init containers impose, or None once they all succeeded."""
    for o in init:
        done = o.terminated
        failed = o.lost or (done is not None and done.exit_code != 0)
        if failed and policy == "Never":
            return "Failed"
    if not all(o.terminated is not None and o.terminated.exit_code == 0 for o in init):
        return "Pending"
    return None


def phase(pod: Json, init: list[Observed], main: list[Observed]) -> str:
    previous = (pod.get("status") or {}).get("phase")
    if previous in TERMINAL:
        return str(previous)
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    held = _init_phase(policy, init)
    if held is not None:
        return held
    if any(
        not o.running and not o.lost and o.terminated is None and o.current is None for o in main
    ):
        return "Pending"  # some container has not started yet
    if any(o.running for o in main) or policy == "Always":
        return "Running"
    # A container waiting to restart counts with its last exit (the kubelet reads lastState).
    failed = any(
        o.lost or (o.current is not None and o.current.exit_code != 0)
        for o in main
        if not o.running
    )
    if policy == "OnFailure":
        return "Running" if failed else "Succeeded"
    return "Failed" if failed else "Succeeded"


def pod_status(
    pod: Json,
    *,
    init: list[Observed],
    main: list[Observed],
    pod_ip: str | None,
    host_ip: str,
    start_time: str,
    sandbox_ready: bool,
    now: str,
) -> Json:
    uid = pod["metadata"]["uid"]
    previous: Json = pod.get("status") or {}
    new_phase = phase(pod, init, main)
    terminal = new_phase in TERMINAL
    old_conditions = {c["type"]: c for c in previous.get("conditions") or []}

    def condition(
        kind: str, ok: bool, reason: str | None = None, message: str | None = None
    ) -> Json:
        return make_condition(old_conditions.get(kind), kind, ok, reason, message, now=now)

    incomplete = [o.name for o in init if not (o.terminated and o.terminated.exit_code == 0)]
    unready = [o.name for o in main if not (o.ready and o.running)]
    ready_reason: str | None
    ready_message: str | None
    if terminal:
        ready_reason, ready_message = "PodCompleted", None
    else:
        ready_reason = "ContainersNotReady" if unready else None
        ready_message = (
            f"containers with unready status: [{' '.join(unready)}]" if unready else None
        )
    conditions = [
        condition("PodReadyToStartContainers", sandbox_ready and not terminal),
        condition(
            "Initialized",
            not incomplete,
            None if not incomplete else "ContainersNotInitialized",
            None
            if not incomplete
            else f"containers with incomplete status: [{' '.join(incomplete)}]",
        ),
        condition("Ready", not unready and not terminal, ready_reason, ready_message),
        condition("ContainersReady", not unready and not terminal, ready_reason, ready_message),
        old_conditions.get("PodScheduled") or condition("PodScheduled", True),
    ]
    status: Json = {
        "phase": new_phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": previous.get("startTime") or start_time,
        "qosClass": previous.get("qosClass") or qos_class(pod),
        "containerStatuses": [container_status(uid, o) for o in main],
    }
    if init:
        status["initContainerStatuses"] = [container_status(uid, o) for o in init]
    ip = pod_ip or previous.get("podIP")
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return status


def qos_class(pod: Json) -> str:
    containers = [
        *((pod.get("spec") or {}).get("containers") or []),
        *((pod.get("spec") or {}).get("initContainers") or []),
    ]
    resources = [c.get("resources") or {} for c in containers]
    if not any((r.get("requests") or r.get("limits")) for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(k) is not None
        and (r.get("requests") or {}).get(k, (r.get("limits") or {}).get(k))
        == (r.get("limits") or {}).get(k)
        for r in resources
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"
