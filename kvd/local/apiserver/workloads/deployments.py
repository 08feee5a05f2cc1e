"""The Deployment controller, as kube-controller-manager's: ReplicaSets per template revision.

A sync claims the ReplicaSets its selector matches, finds the new one (its template equal to the
Deployment's but for the `pod-template-hash` label), and rolls (`rollout`): RollingUpdate within
`maxSurge`/`maxUnavailable`, or Recreate (old pods gone before new ones start). A new
ReplicaSet is named `<deployment>-<hash>`, its selector and template carry the hash label, and
it is annotated with its revision (one more than any old one's; a template rolled back to gets a
new revision, which is how `kubectl rollout undo` works), the desired and maximum replicas. Once
a rollout completes, old ReplicaSets scaled to zero beyond `revisionHistoryLimit` are deleted.
A paused Deployment is only scaled.

Status sums the ReplicaSets' (`replicas`, `updatedReplicas`, `readyReplicas`,
`availableReplicas`, `unavailableReplicas`) with kube's `Available` and `Progressing` conditions,
reasons and messages, so `kubectl rollout status` reads it as it reads kube's.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from kvd import logs
from kvd.local.apiserver import errors
from kvd.local.apiserver.deletion import Deleter
from kvd.local.apiserver.objects import Target
from kvd.local.apiserver.store import Event, ResourceKey
from kvd.local.apiserver.workloads import events, ownership, rollout
from kvd.local.apiserver.workloads.loop import Key
from kvd.local.apiserver.workloads.replicasets import PODS, REPLICASETS

log = logs.get_logger(__name__)

Json = dict[str, Any]
DEPLOYMENTS = ResourceKey("apps", "deployments")


class DeploymentController:
    name = "deployment"
    watched = frozenset({DEPLOYMENTS, REPLICASETS, PODS})

    def __init__(self, deleter: Deleter) -> None:
        self.deleter = deleter
        self.objects = deleter.objects
        self.store = deleter.store
        d_resource = deleter.registry.get("apps", "deployments")
        rs_resource = deleter.registry.get("apps", "replicasets")
        assert d_resource is not None and rs_resource is not None
        self.d_resource, self.rs_resource = d_resource, rs_resource
        self._current: Json = {}  # the Deployment being synced, for its Events

    def keys(self) -> Iterable[Key]:
        items, _ = self.store.list(DEPLOYMENTS, None)
        return [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items]

    def keys_for(self, event: Event) -> Iterable[Key]:
        if event.key == DEPLOYMENTS:
            return [(event.namespace, event.name)]
        if event.key == PODS:  # Recreate waits for the old pods to be gone
            ref = ownership.controller_of(event.object)
            if ref is None or ref.get("kind") != "ReplicaSet":
                return []
            rs = self.store.get(REPLICASETS, event.namespace, str(ref.get("name")))
            owner = ownership.controller_of(rs) if rs is not None else None
            if owner is None or owner.get("kind") != "Deployment":
                return []
            return [(event.namespace, str(owner.get("name")))]
        out: list[Key] = []
        for rs in [event.object] + ([event.previous] if event.previous is not None else []):
            ref = ownership.controller_of(rs)
            if ref is not None:
                if ref.get("kind") == "Deployment":
                    out.append((event.namespace, str(ref.get("name"))))
            elif event.type != "DELETED":
                items, _ = self.store.list(DEPLOYMENTS, event.namespace)
                out += [
                    (event.namespace, d["metadata"]["name"])
                    for d in items
                    if ownership.selector_of(d).matches(ownership.labels_of(rs))
                ]
        return out

    def sync(self, key: Key) -> float | None:
        namespace, name = key
        d = self.store.get(DEPLOYMENTS, namespace, name)
        if d is None:
            return None
        items, _ = self.store.list(REPLICASETS, namespace)
        ref = ownership.reference(d, "apps/v1", "Deployment")
        owned = ownership.claim(
            self.objects,
            self.rs_resource,
            d,
            ref=ref,
            candidates=items,
            selector=ownership.selector_of(d),
        )
        self._current = d
        r = rollout.Rollout(
            d,
            owned,
            update=self._update,
            create=self._create,
            pods_of=lambda rs: self._pods_of(namespace, rs),
        )
        if not d["metadata"].get("deletionTimestamp"):
            spec = d.get("spec") or {}
            if spec.get("paused"):
                r.scale_paused()
            elif (spec.get("strategy") or {}).get("type") == "Recreate":
                r.recreate()
            else:
                r.rolling()
            if r.new is not None:
                self._annotate(d, r.new)
            if r.complete():
                self._cleanup(d, r)
        return self._write_status(d, r)

    # --- writes ------------------------------------------------------------------------------

    def _update(self, rs: Json, replicas: int, annotations: dict[str, str]) -> Json:
        updated = copy.deepcopy(rs)
        updated["spec"]["replicas"] = replicas
        updated["metadata"]["annotations"] = {
            **(updated["metadata"].get("annotations") or {}),
            **annotations,
        }
        if updated == rs:
            return rs
        t = Target(self.rs_resource, "v1", rs["metadata"]["namespace"], rs["metadata"]["name"])
        log.info("deployment_scaled_replicaset", rs=t.name, replicas=replicas)
        stored = self.objects.update(
            t, updated, validation="Ignore", dry_run=False, manager=ownership.MANAGER
        ).object
        before = int((rs.get("spec") or {}).get("replicas") or 0)
        if before != replicas:
            way = "up" if replicas > before else "down"
            self._event(
                "ScalingReplicaSet",
                f"Scaled {way} replica set {t.name} from {before} to {replicas}",
            )
        return stored

    def _event(self, reason: str, message: str) -> None:
        shown = {**self._current, "apiVersion": "apps/v1", "kind": "Deployment"}
        events.record(
            self.objects, shown, component="deployment-controller", reason=reason, message=message
        )

    def _create(self, rs: Json) -> Json:
        t = Target(self.rs_resource, "v1", rs["metadata"]["namespace"])
        try:
            created = self.objects.create(
                t, rs, validation="Ignore", dry_run=False, manager=ownership.MANAGER
            ).object
        except errors.APIError as exc:
            if exc.code != 409:
                raise
            existing = self.store.get(REPLICASETS, t.namespace, rs["metadata"]["name"])
            if existing is not None and rollout.same_template(existing, rs):
                return existing  # ours already (adopted on the next pass)
            raise rollout.Collision() from None
        log.info("deployment_created_replicaset", rs=created["metadata"]["name"])
        replicas = int(created["spec"].get("replicas") or 0)
        self._event(
            "ScalingReplicaSet",
            f"Scaled up replica set {created['metadata']['name']} from 0 to {replicas}",
        )
        return created

    def _pods_of(self, namespace: str, rs: Json) -> list[Json]:
        pods, _ = self.store.list(PODS, namespace)
        uid = rs["metadata"]["uid"]
        return [p for p in pods if (ownership.controller_of(p) or {}).get("uid") == uid]

    def _annotate(self, d: Json, new: Json) -> None:
        """The Deployment carries its new ReplicaSet's revision (a metadata write)."""
        revision = (new["metadata"].get("annotations") or {}).get(rollout.REVISION)
        current = self.store.get(DEPLOYMENTS, d["metadata"]["namespace"], d["metadata"]["name"])
        if current is None or revision is None:
            return
        annotations = current["metadata"].get("annotations") or {}
        if annotations.get(rollout.REVISION) == revision:
            return
        current["metadata"]["annotations"] = {**annotations, rollout.REVISION: revision}
        t = Target(self.d_resource, "v1", d["metadata"]["namespace"], d["metadata"]["name"])
        self.objects.update(
            t, current, validation="Ignore", dry_run=False, manager=ownership.MANAGER
        )

    def _cleanup(self, d: Json, r: rollout.Rollout) -> None:
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        cleanable = [rs for rs in r.olds if not rs["metadata"].get("deletionTimestamp")]
        cleanable.sort(key=rollout.revision_of)
        for rs in cleanable[: max(0, len(cleanable) - int(limit))]:
            status = rs.get("status") or {}
            if status.get("replicas") or (rs.get("spec") or {}).get("replicas"):
                continue
            t = Target(self.rs_resource, "v1", rs["metadata"]["namespace"], rs["metadata"]["name"])
            try:
                self.deleter.delete(t, {}, dry_run=False)
                log.info("deployment_history_cleaned", rs=t.name)
            except errors.APIError as exc:
                if exc.code != 404:
                    raise

    def _write_status(self, d: Json, r: rollout.Rollout) -> float | None:
        current = self.store.get(DEPLOYMENTS, d["metadata"]["namespace"], d["metadata"]["name"])
        if current is None:
            return None
        status, again = r.status(current.get("status") or {})
        if status != (current.get("status") or {}):
            current["status"] = status
            t = Target(
                self.d_resource, "v1", d["metadata"]["namespace"], d["metadata"]["name"], "status"
            )
            self.objects.update(
                t, current, validation="Ignore", dry_run=False, manager=ownership.MANAGER
            )
        return again
