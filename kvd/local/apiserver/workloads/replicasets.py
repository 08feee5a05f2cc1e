"""The ReplicaSet controller, as kube-controller-manager's: keep `spec.replicas` pods running.

A sync claims the pods its selector matches (`ownership.claim`: adopt the orphans, release what
no longer matches), then creates pods from the template (named `<rs>-<5 random>`) or deletes the
surplus, the least useful first as kube ranks them: unscheduled before scheduled, pending before
running, not ready before ready, ready for less time before longer, newer before older. Deletion
goes through `deletion.Deleter`, so a pod on the node gets its grace period. A ReplicaSet being
deleted (foreground) neither creates nor deletes; the garbage collector takes its pods.

Status: `replicas` (active pods), `fullyLabeledReplicas` (with every template label),
`readyReplicas`, `availableReplicas` (ready for `minReadySeconds`), `observedGeneration`, and the
`ReplicaFailure` condition (reason `FailedCreate`) when the API refused a pod.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from kvd import logs
from kvd.local.apiserver import errors, meta
from kvd.local.apiserver.deletion import Deleter
from kvd.local.apiserver.objects import Target
from kvd.local.apiserver.store import Event, ResourceKey
from kvd.local.apiserver.workloads import events, ownership
from kvd.local.apiserver.workloads.loop import Key

log = logs.get_logger(__name__)

Json = dict[str, Any]
REPLICASETS = ResourceKey("apps", "replicasets")
PODS = ResourceKey("", "pods")
BURST = 500  # kube's burstReplicas: at most this many creations or deletions per sync


class ReplicaSetController:
    name = "replicaset"
    watched = frozenset({REPLICASETS, PODS})

    def __init__(self, deleter: Deleter) -> None:
        self.deleter = deleter
        self.objects = deleter.objects
        self.store = deleter.store
        registry = deleter.registry
        self.rs_resource = registry.get("apps", "replicasets")
        self.pod_resource = registry.get("", "pods")
        assert self.rs_resource is not None and self.pod_resource is not None

    def keys(self) -> Iterable[Key]:
        items, _ = self.store.list(REPLICASETS, None)
        return [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items]

    def keys_for(self, event: Event) -> Iterable[Key]:
        if event.key == REPLICASETS:
            return [(event.namespace, event.name)]
        return owners_of_pod(self.store, event, "ReplicaSet", REPLICASETS)

    def sync(self, key: Key) -> float | None:
        namespace, name = key
        rs = self.store.get(REPLICASETS, namespace, name)
        if rs is None:
            return None  # the garbage collector takes its pods
        pods, _ = self.store.list(PODS, namespace)
        pods = [p for p in pods if p["metadata"].get("uid")]
        ref = ownership.reference(rs, "apps/v1", "ReplicaSet")
        assert self.pod_resource is not None
        owned = ownership.claim(
            self.objects,
            self.pod_resource,
            rs,
            ref=ref,
            candidates=pods,
            selector=ownership.selector_of(rs),
        )
        live = [p for p in owned if ownership.active(p)]
        failure = None
        if not rs["metadata"].get("deletionTimestamp"):
            failure = self._scale(rs, ref, live)
            pods, _ = self.store.list(PODS, namespace)
            uid = rs["metadata"]["uid"]
            live = [
                p
                for p in pods
                if ownership.active(p) and (ownership.controller_of(p) or {}).get("uid") == uid
            ]
        return self._write_status(rs, live, failure)

    def _scale(self, rs: Json, ref: Json, live: list[Json]) -> str | None:
        wanted = int((rs.get("spec") or {}).get("replicas", 1))
        diff = len(live) - wanted
        namespace, name = rs["metadata"]["namespace"], rs["metadata"]["name"]
        assert self.pod_resource is not None
        if diff < 0:
            template = (rs.get("spec") or {}).get("template") or {}
            for _ in range(min(-diff, BURST)):
                pod = ownership.from_template(template, prefix=f"{name}-", ref=ref, labels={})
                t = Target(self.pod_resource, "v1", namespace)
                try:
                    created = self.objects.create(
                        t, pod, validation="Ignore", dry_run=False, manager=ownership.MANAGER
                    ).object
                except errors.APIError as exc:
                    log.info("replicaset_create_failed", rs=f"{namespace}/{name}", error=str(exc))
                    self._event(rs, "FailedCreate", f"Error creating: {exc}", events.WARNING)
                    return str(exc)
                log.info(
                    "replicaset_pod_created",
                    rs=f"{namespace}/{name}",
                    pod=created["metadata"]["name"],
                )
                self._event(rs, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        elif diff > 0:
            for pod in sorted(live, key=deletion_rank)[: min(diff, BURST)]:
                t = Target(self.pod_resource, "v1", namespace, pod["metadata"]["name"])
                try:
                    self.deleter.delete(t, {}, dry_run=False)
                except errors.APIError as exc:
                    if exc.code != 404:
                        raise
                log.info("replicaset_pod_deleted", rs=f"{namespace}/{name}", pod=t.name)
                self._event(rs, "SuccessfulDelete", f"Deleted pod: {t.name}")
        return None

    def _event(self, rs: Json, reason: str, message: str, kind: str = events.NORMAL) -> None:
        shown = {**rs, "apiVersion": "apps/v1", "kind": "ReplicaSet"}
        events.record(
            self.objects,
            shown,
            component="replicaset-controller",
            reason=reason,
            message=message,
            kind=kind,
        )

    def _write_status(self, rs: Json, live: list[Json], failure: str | None) -> float | None:
        spec = rs.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = ownership.now()
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        waits = [ownership.until_available(p, min_ready, now) for p in live]
        status: Json = {
            "replicas": len(live),
            "fullyLabeledReplicas": sum(
                1
                for p in live
                if all(ownership.labels_of(p).get(k) == v for k, v in template_labels.items())
            ),
            "readyReplicas": sum(1 for p in live if ownership.ready(p)),
            "availableReplicas": sum(1 for w in waits if w == 0.0),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        old = rs.get("status") or {}
        conditions = [c for c in old.get("conditions") or () if c.get("type") != "ReplicaFailure"]
        if failure is not None:
            previous = next(
                (c for c in old.get("conditions") or () if c.get("type") == "ReplicaFailure"), None
            )
            conditions.append(
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": failure,
                    "lastTransitionTime": (previous or {}).get("lastTransitionTime") or meta.now(),
                }
            )
        if conditions:
            status["conditions"] = conditions
        # kube leaves zero counts out of the stored status (omitempty)
        status = {k: v for k, v in status.items() if v != 0 or k == "replicas"}
        if status != old:
            updated = copy.deepcopy(rs)
            updated["status"] = status
            assert self.rs_resource is not None
            t = Target(
                self.rs_resource,
                "v1",
                rs["metadata"]["namespace"],
                rs["metadata"]["name"],
                "status",
            )
            self.objects.update(
                t, updated, validation="Ignore", dry_run=False, manager=ownership.MANAGER
            )
        pending = [w for w in waits if w is not None and w > 0]
        if failure is not None:
            return 5.0
        return min(pending) + 0.05 if pending else None


def deletion_rank(pod: Json) -> tuple[Any, ...]:
    """kube's ActivePods order: the pod to delete first sorts first."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", ""), 0)
    ready_since = ""
    for c in status.get("conditions") or ():
        if c.get("type") == "Ready" and c.get("status") == "True":
            ready_since = str(c.get("lastTransitionTime") or "")
    restarts = sum(int(s.get("restartCount") or 0) for s in status.get("containerStatuses") or ())
    created = str(pod["metadata"].get("creationTimestamp") or "")
    return (
        bool(spec.get("nodeName")),
        phase_rank,
        ownership.ready(pod),
        _descending(ready_since),
        -restarts,
        _descending(created),
    )


def _descending(text: str) -> tuple[int, ...]:
    """Sorts timestamps newest first (RFC 3339 text compares as the times do)."""
    return tuple(-ord(ch) for ch in text)


def owners_of_pod(store: Any, event: Event, kind: str, key: ResourceKey) -> list[Key]:
    """The `kind` objects a pod event concerns: its controller (before and after the change),
    or, for a pod without one, those in its namespace whose selector matches it (to adopt it)."""
    out: list[Key] = []
    states = [event.object] + ([event.previous] if event.previous is not None else [])
    for pod in states:
        ref = ownership.controller_of(pod)
        if ref is not None:
            if ref.get("kind") == kind:
                out.append((event.namespace, str(ref.get("name"))))
            continue
        if event.type == "DELETED":
            continue
        items, _ = store.list(key, event.namespace)
        out += [
            (event.namespace, o["metadata"]["name"])
            for o in items
            if ownership.selector_of(o).matches(ownership.labels_of(pod))
        ]
    return out
