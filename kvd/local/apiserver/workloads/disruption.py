"""PodDisruptionBudget status, as kube-controller-manager's disruption controller writes it.

The pods a budget selects in its namespace are counted: `currentHealthy` are Ready and not being
deleted; `expectedPods` and `desiredHealthy` follow the spec as kube computes them (an integer
`minAvailable` expects the selected pods and wants that many; a percentage, or `maxUnavailable`,
expects the scale of the pods' controllers — a Deployment's, a ReplicaSet's or a StatefulSet's
replicas). `disruptionsAllowed` is how many more may go, and the `DisruptionAllowed` condition
says whether any may (`SufficientPods`, `InsufficientPods`, or `SyncFailed` when a selected pod
has no controller with a scale). Only the status: the eviction API is not served.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from kvd.local.apiserver import meta
from kvd.local.apiserver.deletion import Deleter
from kvd.local.apiserver.kinds import apps
from kvd.local.apiserver.objects import Target
from kvd.local.apiserver.store import Event, ResourceKey, Store
from kvd.local.apiserver.workloads import ownership
from kvd.local.apiserver.workloads.loop import Key
from kvd.local.apiserver.workloads.replicasets import PODS

Json = dict[str, Any]
BUDGETS = ResourceKey("policy", "poddisruptionbudgets")
_SCALED = {
    "ReplicaSet": ResourceKey("apps", "replicasets"),
    "StatefulSet": ResourceKey("apps", "statefulsets"),
    "ReplicationController": ResourceKey("", "replicationcontrollers"),
    "Deployment": ResourceKey("apps", "deployments"),
}


class NoScale(Exception):
    """A selected pod has no controller with a scale."""


def expected_scale(store: Store, pods: list[Json]) -> int:
    """The summed replicas of the pods' controllers (a ReplicaSet's Deployment's, when it has
    one), each controller counted once."""
    scales: dict[str, int] = {}
    for pod in pods:
        ref = ownership.controller_of(pod)
        if ref is None or ref.get("kind") not in _SCALED:
            raise NoScale(f"found no controllers for pod {pod['metadata']['name']!r}")
        owner = store.get(
            _SCALED[str(ref["kind"])], pod["metadata"]["namespace"], str(ref.get("name"))
        )
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            raise NoScale(f"found no controllers for pod {pod['metadata']['name']!r}")
        up = ownership.controller_of(owner)
        if ref.get("kind") == "ReplicaSet" and up is not None and up.get("kind") == "Deployment":
            deployment = store.get(
                _SCALED["Deployment"], owner["metadata"]["namespace"], str(up.get("name"))
            )
            if deployment is not None:
                owner = deployment
        scales[owner["metadata"]["uid"]] = int((owner.get("spec") or {}).get("replicas", 1))
    return sum(scales.values())


class DisruptionController:
    name = "disruption"
    watched = frozenset({BUDGETS, PODS, *_SCALED.values()})

    def __init__(self, deleter: Deleter) -> None:
        self.objects = deleter.objects
        self.store = deleter.store
        resource = deleter.registry.get("policy", "poddisruptionbudgets")
        assert resource is not None
        self.resource = resource

    def keys(self) -> Iterable[Key]:
        items, _ = self.store.list(BUDGETS, None)
        return [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items]

    def keys_for(self, event: Event) -> Iterable[Key]:
        if event.key == BUDGETS:
            return [(event.namespace, event.name)]
        budgets, _ = self.store.list(BUDGETS, event.namespace)
        if event.key != PODS:  # a controller's scale: every budget of its namespace may care
            return [(event.namespace, b["metadata"]["name"]) for b in budgets]
        states = [event.object] + ([event.previous] if event.previous is not None else [])
        return [
            (event.namespace, b["metadata"]["name"])
            for b in budgets
            if any(ownership.selector_of(b).matches(ownership.labels_of(p)) for p in states)
        ]

    def sync(self, key: Key) -> float | None:
        namespace, name = key
        pdb = self.store.get(BUDGETS, namespace, name)
        if pdb is None:
            return None
        selector = ownership.selector_of(pdb)
        pods, _ = self.store.list(PODS, namespace)
        pods = [p for p in pods if selector.matches(ownership.labels_of(p))]
        healthy = sum(
            1 for p in pods if ownership.ready(p) and not p["metadata"].get("deletionTimestamp")
        )
        spec = pdb.get("spec") or {}
        failure = None
        expected = desired = 0
        try:
            if spec.get("maxUnavailable") is not None:
                expected = expected_scale(self.store, pods)
                unavailable = apps.scaled(spec["maxUnavailable"], expected, round_up=True)
                desired = max(0, expected - unavailable)
            elif isinstance(spec.get("minAvailable"), int):
                expected, desired = len(pods), int(spec["minAvailable"])
            elif spec.get("minAvailable") is not None:
                expected = expected_scale(self.store, pods)
                desired = apps.scaled(spec["minAvailable"], expected, round_up=True)
        except NoScale as exc:
            failure = str(exc)
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0 or failure is not None:
            allowed = 0
        old = pdb.get("status") or {}
        if failure is not None:
            condition = ("False", "SyncFailed", failure)
        elif allowed > 0:
            condition = ("True", "SufficientPods", "")
        else:
            condition = ("False", "InsufficientPods", "")
        status: Json = {
            "observedGeneration": pdb["metadata"].get("generation", 1),
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "conditions": [_condition(old, pdb["metadata"].get("generation", 1), *condition)],
        }
        if failure is not None:  # kube leaves the counts of a failed sync as they were
            status.update(
                {k: old.get(k, 0) for k in ("currentHealthy", "desiredHealthy", "expectedPods")}
            )
        if old.get("disruptedPods"):
            status["disruptedPods"] = old["disruptedPods"]
        if status != old:
            updated = copy.deepcopy(pdb)
            updated["status"] = status
            t = Target(self.resource, "v1", namespace, name, "status")
            self.objects.update(
                t, updated, validation="Ignore", dry_run=False, manager=ownership.MANAGER
            )
        return None


def _condition(old: Json, generation: int, status: str, reason: str, message: str) -> Json:
    previous = next(
        (c for c in old.get("conditions") or () if c.get("type") == "DisruptionAllowed"), None
    )
    since = meta.now()
    if previous is not None and previous.get("status") == status:
        since = previous.get("lastTransitionTime") or since
    return {
        "type": "DisruptionAllowed",
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }
