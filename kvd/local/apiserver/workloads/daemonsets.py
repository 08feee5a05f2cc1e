"""The DaemonSet controller, as kube-controller-manager's: one pod on each eligible node.

A node is eligible when the template's node selector, required node affinity and tolerations
allow it (`scheduler.placement_refusal`), with the tolerations kube adds to every daemon pod
(not-ready and unreachable NoExecute; disk, memory and pid pressure and unschedulable
NoSchedule; network-unavailable for host-network pods). Each pod is pinned to its node as kube
pins it, with a required node affinity on `metadata.name` that replaces the template's required
terms, and the scheduler binds it. A node with no pod gets one, a node that is not eligible loses
its pods, a failed pod is replaced.

Updates: each template is a ControllerRevision `<ds>-<hash>` (its `data` the strategic patch
`kubectl rollout undo` applies; a template rolled back to gets the next revision), and pods carry
its `controller-revision-hash`. RollingUpdate deletes old pods while at most `maxUnavailable`
nodes lack an available pod (old pods that are not available go first); OnDelete waits for the
user to delete them. Status: kube's desired/current/misscheduled/ready/updated/available counts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from kvd import logs
from kvd.local.apiserver import errors
from kvd.local.apiserver.deletion import Deleter
from kvd.local.apiserver.kinds import apps
from kvd.local.apiserver.objects import Target
from kvd.local.apiserver.store import Event, ResourceKey
from kvd.local.apiserver.workloads import events, ownership, rollout
from kvd.local.apiserver.workloads.loop import Key
from kvd.local.apiserver.workloads.replicasets import PODS, owners_of_pod
from kvd.local.node import scheduler

log = logs.get_logger(__name__)

Json = dict[str, Any]
DAEMONSETS = ResourceKey("apps", "daemonsets")
REVISIONS = ResourceKey("apps", "controllerrevisions")
NODES = ResourceKey("", "nodes")
HASH_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
_DAEMON_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)


def daemon_pod_spec(template: Json, node: str | None) -> Json:
    """The template's pod spec with kube's daemon tolerations, pinned to `node` if given."""
    spec = copy.deepcopy(template.get("spec") or {})
    tolerations = list(spec.get("tolerations") or [])
    wanted = list(_DAEMON_TOLERATIONS)
    if spec.get("hostNetwork"):
        wanted.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    for key, effect in wanted:
        if not any(t.get("key") == key and t.get("effect") == effect for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    spec["tolerations"] = tolerations
    if node is not None:
        affinity = spec.setdefault("affinity", {})
        node_affinity = affinity.setdefault("nodeAffinity", {})
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
            ]
        }
    return spec


def node_of(pod: Json) -> str | None:
    """The node a daemon pod is for: where it is bound, else where its affinity pins it."""
    if (pod.get("spec") or {}).get("nodeName"):
        return str(pod["spec"]["nodeName"])
    required = (((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or ():
        for f in term.get("matchFields") or ():
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and f.get("values"):
                return str(f["values"][0])
    return None


class DaemonSetController:
    name = "daemonset"
    watched = frozenset({DAEMONSETS, PODS, NODES})

    def __init__(self, deleter: Deleter) -> None:
        self.deleter = deleter
        self.objects = deleter.objects
        self.store = deleter.store
        registry = deleter.registry
        ds, pods, revisions = (
            registry.get("apps", "daemonsets"),
            registry.get("", "pods"),
            registry.get("apps", "controllerrevisions"),
        )
        assert ds is not None and pods is not None and revisions is not None
        self.ds_resource, self.pod_resource, self.revision_resource = ds, pods, revisions

    def keys(self) -> Iterable[Key]:
        items, _ = self.store.list(DAEMONSETS, None)
        return [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items]

    def keys_for(self, event: Event) -> Iterable[Key]:
        if event.key == DAEMONSETS:
            return [(event.namespace, event.name)]
        if event.key == NODES:
            return self.keys()
        return owners_of_pod(self.store, event, "DaemonSet", DAEMONSETS)

    def sync(self, key: Key) -> float | None:
        namespace, name = key
        ds = self.store.get(DAEMONSETS, namespace, name)
        if ds is None:
            return None
        pods, _ = self.store.list(PODS, namespace)
        ref = ownership.reference(ds, "apps/v1", "DaemonSet")
        owned = ownership.claim(
            self.objects,
            self.pod_resource,
            ds,
            ref=ref,
            candidates=pods,
            selector=ownership.selector_of(ds),
        )
        nodes, _ = self.store.list(NODES, None)
        template = (ds.get("spec") or {}).get("template") or {}
        probe = {"spec": daemon_pod_spec(template, None)}
        eligible = {
            n["metadata"]["name"] for n in nodes if scheduler.placement_refusal(probe, n) is None
        }
        if ds["metadata"].get("deletionTimestamp"):
            return self._write_status(ds, owned, eligible, "")
        current = self._revision(ds, template)
        by_node: dict[str, list[Json]] = {}
        for pod in owned:
            by_node.setdefault(node_of(pod) or "", []).append(pod)
        for node in sorted(eligible | set(by_node)):
            self._manage_node(
                ds,
                ref,
                node,
                eligible=node in eligible,
                pods=by_node.get(node, []),
                current=current,
            )
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            self._roll(ds, eligible, current)
        pods, _ = self.store.list(PODS, namespace)
        uid = ds["metadata"]["uid"]
        owned = [p for p in pods if (ownership.controller_of(p) or {}).get("uid") == uid]
        self._cleanup_history(ds, owned, current)
        return self._write_status(ds, owned, eligible, current)

    def _cleanup_history(self, ds: Json, pods: list[Json], current: str) -> None:
        """Old ControllerRevisions beyond `revisionHistoryLimit` go, oldest first, unless a pod
        still runs that template (kube's cleanupHistory)."""
        limit = int((ds.get("spec") or {}).get("revisionHistoryLimit", 10))
        namespace, uid = ds["metadata"]["namespace"], ds["metadata"]["uid"]
        live = {ownership.labels_of(p).get(HASH_LABEL) for p in pods} | {current}
        items, _ = self.store.list(REVISIONS, namespace)
        old = sorted(
            (
                r
                for r in items
                if (ownership.controller_of(r) or {}).get("uid") == uid
                and ownership.labels_of(r).get(HASH_LABEL) not in live
            ),
            key=lambda r: int(r.get("revision") or 0),
        )
        for revision in old[: max(0, len(old) - limit)]:
            t = Target(self.revision_resource, "v1", namespace, revision["metadata"]["name"])
            try:
                self.deleter.delete(t, {}, dry_run=False)
            except errors.APIError as exc:
                if exc.code != 404:
                    raise

    def _manage_node(
        self, ds: Json, ref: Json, node: str, *, eligible: bool, pods: list[Json], current: str
    ) -> None:
        for pod in pods:
            if (pod.get("status") or {}).get("phase") == "Failed" and not pod["metadata"].get(
                "deletionTimestamp"
            ):
                self._delete(pod)  # kube replaces a failed daemon pod
        live = [p for p in pods if ownership.active(p)]
        if not eligible:
            for pod in live:
                self._delete(pod)
            return
        if not live and not any(
            p["metadata"].get("deletionTimestamp") for p in pods
        ):  # an old pod still terminating keeps the node's slot (maxSurge 0)
            self._create(ds, ref, node, current)
        for extra in sorted(live, key=lambda p: p["metadata"].get("creationTimestamp", ""))[1:]:
            self._delete(extra)

    def _roll(self, ds: Json, eligible: set[str], current: str) -> None:
        """Delete old pods while at most maxUnavailable nodes are without an available one."""
        namespace = ds["metadata"]["namespace"]
        pods, _ = self.store.list(PODS, namespace)
        uid = ds["metadata"]["uid"]
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        now = ownership.now()
        rolling = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
        budget = apps.scaled(rolling.get("maxUnavailable", 1), len(eligible), round_up=True)
        budget = max(budget, 1) if eligible else 0
        unavailable, old_available = 0, []
        for node in sorted(eligible):
            mine = [
                p
                for p in pods
                if (ownership.controller_of(p) or {}).get("uid") == uid and node_of(p) == node
            ]
            live = [p for p in mine if ownership.active(p)]
            pod = live[0] if live else None
            ok = pod is not None and ownership.available(pod, min_ready, now)
            if not ok:
                unavailable += 1
            if pod is not None and ownership.labels_of(pod).get(HASH_LABEL) != current:
                if ok:
                    old_available.append(pod)
                else:
                    self._delete(pod)  # old and not available: nothing to lose
        for pod in old_available[: max(0, budget - unavailable)]:
            self._delete(pod)

    # --- writes ------------------------------------------------------------------------------

    def _create(self, ds: Json, ref: Json, node: str, current: str) -> None:
        template = (ds.get("spec") or {}).get("template") or {}
        pod = ownership.from_template(
            template,
            prefix=f"{ds['metadata']['name']}-",
            ref=ref,
            labels={
                HASH_LABEL: current,
                GENERATION_LABEL: str(ds["metadata"].get("generation", 1)),
            },
        )
        pod["spec"] = daemon_pod_spec(template, node)
        t = Target(self.pod_resource, "v1", ds["metadata"]["namespace"])
        created = self.objects.create(
            t, pod, validation="Ignore", dry_run=False, manager=ownership.MANAGER
        ).object
        log.info(
            "daemonset_pod_created",
            ds=ds["metadata"]["name"],
            node=node,
            pod=created["metadata"]["name"],
        )
        self._event(ds, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

    def _delete(self, pod: Json) -> None:
        t = Target(self.pod_resource, "v1", pod["metadata"]["namespace"], pod["metadata"]["name"])
        try:
            self.deleter.delete(t, {}, dry_run=False)
        except errors.APIError as exc:
            if exc.code != 404:
                raise
            return
        ref = ownership.controller_of(pod) or {}
        ds = self.store.get(DAEMONSETS, t.namespace, str(ref.get("name")))
        if ds is not None:
            self._event(ds, "SuccessfulDelete", f"Deleted pod: {t.name}")

    def _event(self, ds: Json, reason: str, message: str) -> None:
        shown = {**ds, "apiVersion": "apps/v1", "kind": "DaemonSet"}
        events.record(
            self.objects, shown, component="daemonset-controller", reason=reason, message=message
        )

    def _revision(self, ds: Json, template: Json) -> str:
        """The hash of the current template, its ControllerRevision made (or given the newest
        revision number, for a template rolled back to)."""
        namespace, name = ds["metadata"]["namespace"], ds["metadata"]["name"]
        h = rollout.template_hash(template, 0)
        uid = ds["metadata"]["uid"]
        items, _ = self.store.list(REVISIONS, namespace)
        mine = [r for r in items if (ownership.controller_of(r) or {}).get("uid") == uid]
        newest = max([0, *(int(r.get("revision") or 0) for r in mine)])
        data = {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}}
        found = next(
            (r for r in mine if rollout.semantic(r.get("data")) == rollout.semantic(data)), None
        )
        if found is not None:
            if int(found.get("revision") or 0) < newest:
                found["revision"] = newest + 1
                t = Target(self.revision_resource, "v1", namespace, found["metadata"]["name"])
                self.objects.update(
                    t, found, validation="Ignore", dry_run=False, manager=ownership.MANAGER
                )
            return str((found["metadata"].get("labels") or {}).get(HASH_LABEL, h))
        revision = {
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {
                "name": f"{name}-{h}",
                "labels": {**ownership.labels_of(template), HASH_LABEL: h},
                "ownerReferences": [ownership.reference(ds, "apps/v1", "DaemonSet")],
            },
            "data": data,
            "revision": newest + 1,
        }
        t = Target(self.revision_resource, "v1", namespace)
        try:
            self.objects.create(
                t, revision, validation="Ignore", dry_run=False, manager=ownership.MANAGER
            )
        except errors.APIError as exc:
            if exc.code != 409:
                raise
        return h

    def _write_status(
        self, ds: Json, owned: list[Json], eligible: set[str], current: str
    ) -> float | None:
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        now = ownership.now()
        by_node: dict[str, Json] = {}
        for pod in sorted(owned, key=lambda p: p["metadata"].get("creationTimestamp", "")):
            node = node_of(pod)
            if node and ownership.active(pod):
                by_node.setdefault(node, pod)
        scheduled = {n: p for n, p in by_node.items() if n in eligible}
        waits = [ownership.until_available(p, min_ready, now) for p in scheduled.values()]
        available = sum(1 for w in waits if w == 0.0)
        status: Json = {
            "currentNumberScheduled": len(scheduled),
            "numberMisscheduled": len(set(by_node) - eligible),
            "desiredNumberScheduled": len(eligible),
            "numberReady": sum(1 for p in scheduled.values() if ownership.ready(p)),
            "observedGeneration": ds["metadata"].get("generation", 1),
            "updatedNumberScheduled": sum(
                1 for p in scheduled.values() if ownership.labels_of(p).get(HASH_LABEL) == current
            ),
            "numberAvailable": available,
            "numberUnavailable": len(eligible) - available,
        }
        status = {
            k: v
            for k, v in status.items()
            if v != 0
            or k
            in (
                "currentNumberScheduled",
                "numberMisscheduled",
                "desiredNumberScheduled",
                "numberReady",
            )
        }
        old = ds.get("status") or {}
        if status != old:
            updated = copy.deepcopy(ds)
            updated["status"] = status
            t = Target(
                self.ds_resource,
                "v1",
                ds["metadata"]["namespace"],
                ds["metadata"]["name"],
                "status",
            )
            self.objects.update(
                t, updated, validation="Ignore", dry_run=False, manager=ownership.MANAGER
            )
        pending = [w for w in waits if w is not None and w > 0]
        return min(pending) + 0.05 if pending else None
