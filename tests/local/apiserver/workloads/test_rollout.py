"""A Deployment's rollout arithmetic (pure): RollingUpdate stays within maxSurge and
maxUnavailable at every step and ends on the new template; Recreate waits for the old pods."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from kvd.local.apiserver.workloads import rollout

Json = dict[str, Any]
_uids = itertools.count()


def _deployment(replicas: int, surge: Any, unavailable: Any, image: str) -> Json:
    return {
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


class World:
    """ReplicaSets whose pods are all available as soon as they are asked for, one step later
    (what the ReplicaSet controller and a fast node do between two syncs)."""

    def __init__(self) -> None:
        self.sets: dict[str, Json] = {}

    def update(self, rs: Json, replicas: int, annotations: dict[str, str]) -> Json:
        stored = self.sets[rs["metadata"]["name"]]
        stored["spec"]["replicas"] = replicas
        stored["metadata"].setdefault("annotations", {}).update(annotations)
        return copy.deepcopy(stored)

    def create(self, rs: Json) -> Json:
        rs = copy.deepcopy(rs)
        rs["metadata"]["uid"] = f"rs-{next(_uids)}"
        rs["metadata"]["creationTimestamp"] = f"2026-01-01T00:00:{len(self.sets):02d}Z"
        rs["status"] = {"replicas": 0, "availableReplicas": 0}
        self.sets[rs["metadata"]["name"]] = rs
        return copy.deepcopy(rs)

    def settle(self) -> None:
        """Pods follow the wanted counts: removals at once, additions available at once."""
        for rs in self.sets.values():
            n = rs["spec"]["replicas"]
            rs["status"] = {"replicas": n, "availableReplicas": n, "readyReplicas": n}

    def step(self, d: Json) -> rollout.Rollout:
        r = rollout.Rollout(
            d,
            [copy.deepcopy(rs) for rs in self.sets.values()],
            update=self.update,
            create=self.create,
            pods_of=lambda rs: [],
        )
        r.rolling()
        return r


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable"),
    [
        pytest.param(4, "25%", "25%", id="defaults"),
        pytest.param(3, 1, 0, id="surge-only"),
        pytest.param(3, 0, 1, id="unavailable-only"),
        pytest.param(10, "50%", "10%", id="percentages"),
        pytest.param(1, "25%", "25%", id="one-replica"),
    ],
)
def test_rolling_update_stays_within_bounds(replicas: int, surge: Any, unavailable: Any) -> None:
    world = World()
    first = _deployment(replicas, surge, unavailable, "busybox:1")
    for _ in range(3):
        world.step(first)
        world.settle()
    second = _deployment(replicas, surge, unavailable, "busybox:2")
    max_surge, max_unavailable = rollout.fenceposts(second)
    max_unavailable = min(max_unavailable, replicas)
    for _ in range(50):
        r = world.step(second)
        wanted = sum(rs["spec"]["replicas"] for rs in world.sets.values())
        assert wanted <= replicas + max_surge, world.sets
        available = sum(rs["status"]["availableReplicas"] for rs in world.sets.values())
        assert available >= replicas - max_unavailable, world.sets
        world.settle()
        if r.complete():
            break
    new = next(rs for rs in world.sets.values() if "busybox:2" in str(rs["spec"]["template"]))
    old = next(rs for rs in world.sets.values() if "busybox:1" in str(rs["spec"]["template"]))
    assert new["spec"]["replicas"] == replicas
    assert old["spec"]["replicas"] == 0
    assert new["metadata"]["annotations"][rollout.REVISION] == "2"
    assert (
        new["spec"]["selector"]["matchLabels"][rollout.HASH_LABEL]
        == (new["spec"]["template"]["metadata"]["labels"][rollout.HASH_LABEL])
    )


def test_rolling_back_reuses_the_replicaset_with_a_new_revision() -> None:
    world = World()
    for image in ("busybox:1", "busybox:2", "busybox:1"):
        d = _deployment(2, "25%", "25%", image)
        for _ in range(20):
            r = world.step(d)
            world.settle()
            if r.complete():
                break
    assert len(world.sets) == 2
    revisions = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["metadata"]["annotations"][
            rollout.REVISION
        ]
        for rs in world.sets.values()
    }
    assert revisions == {"busybox:1": "3", "busybox:2": "2"}


def test_recreate_waits_for_old_pods() -> None:
    world = World()
    d = _deployment(2, "25%", "25%", "busybox:1")
    world.step(d)
    world.settle()
    d2 = _deployment(2, "25%", "25%", "busybox:2")
    d2["spec"]["strategy"] = {"type": "Recreate"}
    old_pods = [{"metadata": {"name": "p"}, "status": {"phase": "Running"}}]
    r = rollout.Rollout(
        d2,
        [copy.deepcopy(rs) for rs in world.sets.values()],
        update=world.update,
        create=world.create,
        pods_of=lambda rs: old_pods,
    )
    r.recreate()
    assert len(world.sets) == 1, "no new ReplicaSet while an old pod runs"
    assert next(iter(world.sets.values()))["spec"]["replicas"] == 0
    old_pods.clear()
    r.recreate()
    assert sorted(rs["spec"]["replicas"] for rs in world.sets.values()) == [0, 2]
