"""Reconcile one pod bound to this node: desired (the Pod) against actual (the runtime).

`sync(pod)` is level-triggered and idempotent: it reads what runs from the runtime, starts what
should run (the network sandbox, then init containers one at a time, then the containers),
restarts per `restartPolicy` with the kubelet's crash-loop backoff, computes the status and writes
it only when it differs. Volumes are prepared on every sync (unchanged ones write nothing), and a
pod holding projected service-account tokens is synced again when the next is due for renewal.
A pod with a `deletionTimestamp` gets SIGTERM in each running container, SIGKILL when its grace
period (counted from the first time any node process saw the deletion, kept in the pod's record) is
over, then its network, processes and files are torn down and only then is the object deleted with
grace 0 — the kubelet's confirmation. `forget(uid)` tears down a pod whose object is already gone.

After a node restart nothing is started twice: the runtime reports containers that still run, and
a container the API says was started but the runtime has no trace of is "lost": reported as
`ContainerStatusUnknown` (restartPolicy Never) or started again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kvd import logs
from kvd import records as kvd_records
from kvd.kube.client import ApiError, Raw
from kvd.local import images
from kvd.local.node import containers, network, podspec, status, tokens, volumes
from kvd.local.node.prober import Prober
from kvd.local.node.records import Record
from kvd.local.node.registration import now

log = logs.get_logger(__name__)

Json = dict[str, Any]

BACKOFF_START = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET = 600.0  # a container that ran this long restarts without delay again
TERMINATE_POLL = 0.1


@dataclass
class _PodState:
    """What the node keeps in memory about a pod between syncs."""

    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    not_before: dict[str, float] = field(default_factory=dict)  # container → earliest restart
    backoff: dict[str, float] = field(default_factory=dict)
    sigterm_sent: bool = False
    sandbox: network.PodNetwork | None = None
    written: Json = field(default_factory=dict)  # the last status this node wrote


class PodWorker:
    def __init__(
        self,
        *,
        raw: Raw,
        node_name: str,
        host_ip: str,
        net: network.Network,
        runtime: containers.Containers,
        store: images.ImageStore,
        records: kvd_records.Records[Record],
        prober: Prober,
        lookup: podspec.Lookup,
        read_pvc: volumes.ReadPVC,
        tokens: tokens.TokenManager | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.raw = raw
        self.node_name = node_name
        self.host_ip = host_ip
        self.net = net
        self.runtime = runtime
        self.store = store
        self.records = records
        self.prober = prober
        self.lookup = lookup
        self.read_pvc = read_pvc
        self.tokens = tokens
        self.clock = clock
        self._state: dict[str, _PodState] = {}

    # --- entry points -------------------------------------------------------------------------

    def sync(self, pod: Json) -> float | None:
        """Make the runtime match `pod`; returns when to look again (None: on the next event)."""
        meta = pod["metadata"]
        uid = meta["uid"]
        record = self._record(pod)
        if meta.get("deletionTimestamp"):
            return self._terminate(pod, record)
        if (pod.get("status") or {}).get("phase") in status.TERMINAL:
            self._stop_runtime(uid, keep_logs=True)
            return None
        state = self._state.setdefault(uid, _PodState())
        try:
            if state.sandbox is None:
                state.sandbox = self.net.attach(uid)
            prepared = volumes.prepare(
                pod,
                volume_dir=lambda name: self.runtime.volume_dir(uid, name),
                store=self.store,
                lookup=self.lookup,
                read_pvc=self.read_pvc,
                tokens=self.tokens,
            )
        except podspec.ContainerConfigError as exc:
            for c in _all_containers(pod):
                state.waiting[c["name"]] = (exc.reason, exc.message)
            self._write_status(pod, record, state)
            return 5.0
        delay = self._run_containers(pod, state, prepared)
        phase = self._write_status(pod, record, state)
        if phase in status.TERMINAL:
            self._stop_runtime(uid, keep_logs=True)
            return None
        return _sooner(delay, self._token_refresh(uid))

    def _token_refresh(self, uid: str) -> float | None:
        """Seconds until one of the pod's projected tokens is due for renewal (the next sync
        writes it)."""
        due = self.tokens.refresh_at(uid) if self.tokens is not None else None
        return None if due is None else max(due - self.clock(), 0.0)

    def forget(self, uid: str) -> None:
        """The pod object is gone: nothing of it may remain."""
        self._stop_runtime(uid, keep_logs=False)
        if self.tokens is not None:
            self.tokens.forget(uid)
        self.records.remove(uid)
        self._state.pop(uid, None)
        log.info("pod_cleaned_up", uid=uid)

    def known_uids(self) -> set[str]:
        return (
            {r.uid for r in self.records.all()}
            | set(self.runtime.pods())
            | set(self.net.attached())
        )

    def sandbox_ip(self, uid: str) -> str | None:
        state = self._state.get(uid)
        return str(state.sandbox.ip) if state and state.sandbox else None

    # --- containers ---------------------------------------------------------------------------

    def _run_containers(
        self, pod: Json, state: _PodState, prepared: dict[str, podspec.Volume]
    ) -> float | None:
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy") or "Always"
        uid = pod["metadata"]["uid"]
        wake: list[float] = []
        for c in spec.get("initContainers") or []:
            current = self.runtime.status(uid, c["name"])
            lost = current is None and self._was_started(pod, c["name"], init=True)
            if lost and policy == "Never":
                return None  # lost: reported, and the pod fails
            if current is not None and not current.running and current.exit_code == 0:
                continue  # done; on to the next
            if current is not None and current.running:
                return None  # one init container at a time
            if current is not None and policy == "Never":
                return None  # failed for good
            # Init containers restart on failure unless the policy is Never.
            delay = self._start(pod, c, state, prepared, previous=current)
            return delay
        for c in spec.get("containers") or []:
            current = self.runtime.status(uid, c["name"])
            if (
                current is None
                and self._was_started(pod, c["name"], init=False)
                and policy == "Never"
            ):
                continue  # lost
            if current is not None and current.running:
                self.prober.watch(uid, c, pid=current.pid or 0, ip=self.sandbox_ip(uid) or "")
                continue
            if current is not None:
                restart = policy == "Always" or (policy == "OnFailure" and current.exit_code != 0)
                if not restart:
                    continue
            delay = self._start(pod, c, state, prepared, previous=current)
            if delay is not None:
                wake.append(delay)
        return min(wake) if wake else None

    def _start(
        self,
        pod: Json,
        c: Json,
        state: _PodState,
        prepared: dict[str, podspec.Volume],
        *,
        previous: containers.ContainerStatus | None,
    ) -> float | None:
        uid, name = pod["metadata"]["uid"], c["name"]
        now_s = self.clock()
        if previous is not None:
            ran = (
                (previous.finished_at or previous.started_at).timestamp()
            ) - previous.started_at.timestamp()
            if ran >= BACKOFF_RESET:
                state.backoff.pop(name, None)
            if name not in state.not_before:
                wait = state.backoff.get(name, 0.0)
                state.not_before[name] = now_s + wait
                state.backoff[name] = min(BACKOFF_MAX, max(BACKOFF_START, wait * 2))
            if now_s < state.not_before[name]:
                left = state.not_before[name] - now_s
                state.waiting[name] = (
                    "CrashLoopBackOff",
                    f"back-off {round(state.backoff[name] / 2 or BACKOFF_START)}s restarting "
                    f"failed container={name} pod={pod['metadata']['name']}_"
                    f"{pod['metadata']['namespace']}({uid})",
                )
                return left
        state.not_before.pop(name, None)
        try:
            image = self.store.resolve(c.get("image") or "")
        except images.ImageNotFound as exc:
            state.waiting[name] = ("ErrImagePull", str(exc))
            return 10.0
        assert state.sandbox is not None
        context = podspec.PodContext(
            node_name=self.node_name, pod_ip=str(state.sandbox.ip), host_ip=self.host_ip
        )
        try:
            spec = podspec.container_spec(
                pod, c, image=image, volumes=prepared, context=context, lookup=self.lookup
            )
        except podspec.ContainerConfigError as exc:
            state.waiting[name] = (exc.reason, exc.message)
            return 5.0
        if previous is not None:
            attempt = previous.attempt + 1
        elif self._was_started(pod, name, init=None):  # lost in a node restart: count it
            attempt = self._restart_count(pod, name) + 1
        else:
            attempt = 0
        try:
            started = self.runtime.start(
                uid,
                spec,
                netns_path=state.sandbox.netns_path,
                resolv_conf=state.sandbox.resolv_conf,
                attempt=attempt,
            )
        except containers.ContainerError as exc:
            state.waiting[name] = ("RunContainerError", str(exc))
            return 5.0
        state.waiting.pop(name, None)
        log.info(
            "container_started",
            pod=pod["metadata"]["name"],
            container=name,
            pid=started.pid,
            attempt=attempt,
        )
        return None

    def _was_started(self, pod: Json, name: str, *, init: bool | None) -> bool:
        """Whether the API's status shows `name` as having run (the node's memory across
        restarts)."""
        found = _status_of(pod, name, init=init)
        if found is None:
            return False
        state = found.get("state") or {}
        last = found.get("lastState") or {}
        return "running" in state or "terminated" in state or "terminated" in last

    def _restart_count(self, pod: Json, name: str) -> int:
        return int((_status_of(pod, name, init=None) or {}).get("restartCount") or 0)

    # --- status -------------------------------------------------------------------------------

    def _observe(self, pod: Json, c: Json, state: _PodState, *, init: bool) -> status.Observed:
        uid, name = pod["metadata"]["uid"], c["name"]
        attempts = self.runtime.attempts(uid, name)
        current = self.runtime.status(uid, name)
        previous = None
        if len(attempts) >= 2:
            previous = self.runtime.status_of_attempt(uid, name, attempts[-2])
        if current is None:
            lost = self._was_started(pod, name, init=init)
        else:
            lost = not current.running and current.exit_code is None
        waiting = state.waiting.get(name)
        if current is not None and current.running:
            waiting = None
        restarts = max(len(attempts) - 1, 0) + (
            self._restart_count(pod, name) if not attempts else 0
        )
        return status.Observed(
            name=name,
            image=c.get("image") or "",
            current=current,
            previous=previous,
            waiting_reason=waiting[0] if waiting else None,
            waiting_message=waiting[1] if waiting else None,
            restart_count=restarts,
            ready=bool(current and current.running and self.prober.ready(uid, c)),
            lost=lost,
        )

    def _write_status(self, pod: Json, record: Record, state: _PodState) -> str:
        spec = pod.get("spec") or {}
        new = status.pod_status(
            pod,
            init=[
                self._observe(pod, c, state, init=True) for c in spec.get("initContainers") or []
            ],
            main=[self._observe(pod, c, state, init=False) for c in spec.get("containers") or []],
            pod_ip=str(state.sandbox.ip) if state.sandbox else None,
            host_ip=self.host_ip,
            start_time=record.start_time,
            sandbox_ready=state.sandbox is not None,
            now=now(),
        )
        old = pod.get("status") or {}
        # The cache may lag behind our own last write: equal to either means nothing changed.
        if _comparable(new) not in (_comparable(old), _comparable(state.written)):
            meta = pod["metadata"]
            path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status"
            try:
                self.raw.merge_patch(path, {"metadata": {"uid": meta["uid"]}, "status": new})
            except ApiError as exc:
                if not exc.not_found:
                    raise
            state.written = new
            log.info("pod_status", pod=meta["name"], phase=new["phase"])
        return str(new["phase"])

    # --- ending -------------------------------------------------------------------------------

    def _terminate(self, pod: Json, record: Record) -> float | None:
        meta = pod["metadata"]
        uid = meta["uid"]
        state = self._state.setdefault(uid, _PodState())
        if record.terminating_since is None:
            record = record.terminating(self.clock())
            self.records.put(record)
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        assert record.terminating_since is not None
        deadline = record.terminating_since + float(grace)
        names = [c["name"] for c in _all_containers(pod)]
        running = [n for n in names if (s := self.runtime.status(uid, n)) is not None and s.running]
        if running and self.clock() < deadline:
            if not state.sigterm_sent:
                for name in running:
                    self.runtime.terminate(uid, name)
                state.sigterm_sent = True
                log.info("pod_terminating", pod=meta["name"], grace=grace, containers=running)
            return TERMINATE_POLL
        if running:
            log.info("pod_grace_period_over", pod=meta["name"], killing=running)
        self.forget(uid)
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        try:
            self.raw.delete(
                path,
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": uid},
                },
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise
        log.info("pod_deleted", pod=meta["name"], uid=uid)
        return None

    def _stop_runtime(self, uid: str, *, keep_logs: bool) -> None:
        self.prober.forget(uid)
        self.runtime.kill(uid)
        self.net.detach(uid)
        state = self._state.get(uid)
        if state is not None:
            state.sandbox = None
        if not keep_logs:
            self.runtime.remove(uid)

    def _record(self, pod: Json) -> Record:
        meta = pod["metadata"]
        record = self.records.get(meta["uid"])
        if record is None:
            record = Record(
                uid=meta["uid"],
                namespace=meta["namespace"],
                name=meta["name"],
                start_time=now(),
            )
            self.records.put(record)
        return record


def _sooner(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _all_containers(pod: Json) -> list[Json]:
    spec = pod.get("spec") or {}
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def _status_of(pod: Json, name: str, *, init: bool | None) -> Json | None:
    st = pod.get("status") or {}
    lists = {
        True: st.get("initContainerStatuses") or [],
        False: st.get("containerStatuses") or [],
        None: [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])],
    }[init]
    for s in lists:
        if s.get("name") == name:
            found: Json = s
            return found
    return None


def _comparable(s: Json) -> Json:
    """A status without the fields that legitimately differ between equal states."""
    return {k: v for k, v in s.items() if k not in ("nominatedNodeName",)}
