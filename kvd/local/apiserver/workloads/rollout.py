"""A Deployment's rollout over its ReplicaSets, as kube's deployment controller computes it.

`Rollout` holds one Deployment and the ReplicaSets it controls, split into the new one (the
Deployment's template, whatever its `pod-template-hash`) and the old ones, and makes the next
step of a RollingUpdate (`rolling`: the new ReplicaSet up to `replicas + maxSurge` in total, the
old ones down while `replicas - maxUnavailable` pods stay available, unhealthy ones first) or a
Recreate (`recreate`). Writes go through the callbacks the controller gives it (`update` to set a
ReplicaSet's replicas and annotations, `create`), so the arithmetic here reads as kube's.
`status` is the Deployment's status with kube's conditions.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kvd.local.apiserver import meta
from kvd.local.apiserver.kinds import apps
from kvd.local.apiserver.workloads import ownership

Json = dict[str, Any]
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX = "deployment.kubernetes.io/max-replicas"
# annotations of the Deployment not copied to its ReplicaSets (kube's skipCopyAnnotation)
_NOT_COPIED = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        DESIRED,
        MAX,
        "deprecated.deployment.rollback.to",
    }
)
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.SafeEncodeString alphabet

AVAILABLE, PROGRESSING = "Available", "Progressing"


class Collision(Exception):
    """A ReplicaSet of the new one's name exists with another template: bump collisionCount."""


def template_hash(template: Json, collisions: int) -> str:
    """A stable label value for a template (kube hashes its Go struct with FNV-32a, then
    encodes the decimal digits with a vowel-free alphabet; the same shape here)."""
    data = json.dumps(semantic(template), sort_keys=True, separators=(",", ":")).encode()
    if collisions:
        data += str(collisions).encode()
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in str(h))


def semantic(value: Any) -> Any:
    """`value` without the empty and null fields a typed client adds on a round trip
    (`creationTimestamp: null`, `resources: {}`): kube compares templates as Go values, where
    those equal their absence."""
    if isinstance(value, dict):
        out = {k: semantic(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


def _without_hash(template: Json) -> Json:
    t: Json = semantic(copy.deepcopy(template or {}))
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return t


def same_template(rs: Json, other: Json) -> bool:
    a = _without_hash((rs.get("spec") or {}).get("template") or {})
    b = _without_hash((other.get("spec") or {}).get("template") or {})
    return a == b


def revision_of(rs: Json) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def replicas_of(rs: Json | None) -> int:
    return int(((rs or {}).get("spec") or {}).get("replicas") or 0)


def _status_of(rs: Json | None, field: str) -> int:
    return int(((rs or {}).get("status") or {}).get(field) or 0)


def fenceposts(d: Json) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods, never both zero (kube's ResolveFenceposts)."""
    spec = d.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = apps.scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = apps.scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_unavailable(d: Json) -> int:
    spec = d.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    if (spec.get("strategy") or {}).get("type") == "Recreate" or replicas == 0:
        return 0
    return min(fenceposts(d)[1], replicas)


def replica_annotations(d: Json) -> dict[str, str]:
    replicas = int((d.get("spec") or {}).get("replicas", 1))
    surge = 0
    if (d.get("spec") or {}).get("strategy", {}).get("type") != "Recreate":
        surge = fenceposts(d)[0]
    return {DESIRED: str(replicas), MAX: str(replicas + surge)}


Update = Callable[[Json, int, dict[str, str]], Json]


class Rollout:
    def __init__(
        self,
        d: Json,
        owned: list[Json],
        *,
        update: Update,
        create: Callable[[Json], Json],
        pods_of: Callable[[Json], list[Json]],
    ) -> None:
        self.d = d
        self.spec = d.get("spec") or {}
        self.replicas = int(self.spec.get("replicas", 1))
        self.update, self.create, self.pods_of = update, create, pods_of
        owned = sorted(
            owned,
            key=lambda rs: (rs["metadata"].get("creationTimestamp", ""), rs["metadata"]["name"]),
        )
        template = {"spec": {"template": self.spec.get("template") or {}}}
        self.new: Json | None = next((rs for rs in owned if same_template(rs, template)), None)
        self.olds = [rs for rs in owned if rs is not self.new]
        self.created_new = False
        self.collisions = int((d.get("status") or {}).get("collisionCount") or 0)

    @property
    def all(self) -> list[Json]:
        return [*self.olds, *([self.new] if self.new is not None else [])]

    def _set(self, rs: Json, replicas: int, extra: dict[str, str] | None = None) -> Json:
        annotations = {**replica_annotations(self.d), **(extra or {})}
        updated = self.update(rs, replicas, annotations)
        if rs is self.new:
            self.new = updated
        else:
            self.olds = [updated if o is rs else o for o in self.olds]
        return updated

    # --- the new ReplicaSet ------------------------------------------------------------------

    def _next_revision(self) -> str:
        return str(max([0, *(revision_of(rs) for rs in self.olds)]) + 1)

    def ensure_new(self, replicas: int) -> Json:
        """The new ReplicaSet, made with `replicas` if there is none; an existing one is given
        the newest revision (a rollback)."""
        revision = self._next_revision()
        if self.new is not None:
            if revision_of(self.new) < int(revision):
                self._set(self.new, replicas_of(self.new), {REVISION: revision})
            return self.new
        while True:
            rs = self._new_replicaset(replicas, revision)
            try:
                self.new = self.create(rs)
            except Collision:
                self.collisions += 1
                continue
            self.created_new = True
            return self.new

    def _new_replicaset(self, replicas: int, revision: str) -> Json:
        d = self.d
        template = copy.deepcopy(self.spec.get("template") or {})
        h = template_hash(template, self.collisions)
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: h}
        selector = copy.deepcopy(self.spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: h}
        annotations = {
            k: v
            for k, v in (d["metadata"].get("annotations") or {}).items()
            if k not in _NOT_COPIED
        }
        annotations.update(replica_annotations(d))
        annotations[REVISION] = revision
        spec: Json = {"replicas": replicas, "selector": selector, "template": template}
        if self.spec.get("minReadySeconds"):
            spec["minReadySeconds"] = self.spec["minReadySeconds"]
        return {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{d['metadata']['name']}-{h}",
                "namespace": d["metadata"]["namespace"],
                "labels": dict(tmeta["labels"]),
                "annotations": annotations,
                "ownerReferences": [ownership.reference(d, "apps/v1", "Deployment")],
            },
            "spec": spec,
        }

    # --- strategies --------------------------------------------------------------------------

    def rolling(self) -> None:
        if self.new is None:
            self.ensure_new(self._new_replicas())
        else:
            self.ensure_new(replicas_of(self.new))
            assert self.new is not None
            if replicas_of(self.new) > self.replicas:
                self._set(self.new, self.replicas)
            elif replicas_of(self.new) < self.replicas:
                wanted = self._new_replicas()
                if wanted != replicas_of(self.new):
                    self._set(self.new, wanted)
        self._scale_down_olds()

    def _new_replicas(self) -> int:
        surge = fenceposts(self.d)[0]
        current = sum(replicas_of(rs) for rs in self.all)
        have = replicas_of(self.new)
        room = self.replicas + surge - current
        if room <= 0:
            return have
        return have + min(room, self.replicas - have)

    def _scale_down_olds(self) -> None:
        olds = [rs for rs in self.olds if replicas_of(rs) > 0]
        if not olds:
            return
        all_pods = sum(replicas_of(rs) for rs in self.all)
        min_available = self.replicas - max_unavailable(self.d)
        new_unavailable = replicas_of(self.new) - _status_of(self.new, "availableReplicas")
        budget = all_pods - min_available - new_unavailable
        if budget <= 0:
            return
        # first the old pods that are not available anyway
        done = 0
        for rs in olds:
            if done >= budget:
                break
            unhealthy = replicas_of(rs) - _status_of(rs, "availableReplicas")
            if replicas_of(rs) == 0 or unhealthy <= 0:
                continue
            down = min(budget - done, unhealthy)
            self._set(rs, replicas_of(rs) - down)
            done += down
        # then available ones, while enough stay available
        available = sum(_status_of(rs, "availableReplicas") for rs in self.all)
        if available <= min_available:
            return
        total, done = available - min_available, 0
        for rs in [o for o in self.olds if replicas_of(o) > 0]:
            if done >= total:
                break
            down = min(replicas_of(rs), total - done)
            self._set(rs, replicas_of(rs) - down)
            done += down

    def recreate(self) -> None:
        for rs in list(self.olds):
            if replicas_of(rs) > 0:
                self._set(rs, 0)
        running = (
            (p.get("status") or {}).get("phase") not in ownership.TERMINAL
            for rs in self.olds
            for p in self.pods_of(rs)
        )
        if any(running):
            return  # the old pods must be gone first
        new = self.ensure_new(self.replicas)
        if replicas_of(new) != self.replicas:
            self._set(new, self.replicas)

    def scale_paused(self) -> None:
        """A paused Deployment is scaled (the active ReplicaSet, or the newest) but not rolled."""
        active = [rs for rs in self.all if replicas_of(rs) > 0]
        target = active[0] if len(active) == 1 else (self.new if not active else None)
        if target is None and not active and self.olds:
            target = self.olds[-1]
        if target is not None and replicas_of(target) != self.replicas:
            self._set(target, self.replicas)

    # --- status ------------------------------------------------------------------------------

    def complete(self, status: Json | None = None) -> bool:
        s = status if status is not None else self._counts()
        return bool(
            s.get("updatedReplicas", 0) == self.replicas
            and s.get("replicas", 0) == self.replicas
            and s.get("availableReplicas", 0) == self.replicas
        )

    def _counts(self) -> Json:
        every = self.all
        available = sum(_status_of(rs, "availableReplicas") for rs in every)
        return {
            "replicas": sum(_status_of(rs, "replicas") for rs in every),
            "updatedReplicas": _status_of(self.new, "replicas"),
            "readyReplicas": sum(_status_of(rs, "readyReplicas") for rs in every),
            "availableReplicas": available,
            "unavailableReplicas": max(0, sum(replicas_of(rs) for rs in every) - available),
        }

    def status(self, old: Json) -> tuple[Json, float | None]:
        """The new status and, while a rollout runs, when its deadline is to be looked at."""
        counts = self._counts()
        status: Json = {
            **counts,
            "observedGeneration": self.d["metadata"].get("generation", 1),
        }
        if self.collisions:
            status["collisionCount"] = self.collisions
        now = meta.now()
        conditions = {
            c.get("type"): dict(c) for c in old.get("conditions") or () if isinstance(c, dict)
        }
        if counts["availableReplicas"] >= self.replicas - max_unavailable(self.d):
            _condition(
                conditions,
                AVAILABLE,
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now=now,
            )
        else:
            _condition(
                conditions,
                AVAILABLE,
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now=now,
            )
        again = self._progressing(conditions, old, counts, now)
        order = [AVAILABLE, PROGRESSING]
        status["conditions"] = [conditions[t] for t in order if t in conditions] + [
            c for t, c in conditions.items() if t not in order
        ]
        status = {k: v for k, v in status.items() if v != 0}
        return status, again

    def _progressing(
        self, conditions: dict[Any, Json], old: Json, counts: Json, now: str
    ) -> float | None:
        name = self.new["metadata"]["name"] if self.new is not None else ""
        current = conditions.get(PROGRESSING)
        if self.spec.get("paused"):
            if current is None or current.get("reason") != "DeploymentPaused":
                _condition(
                    conditions,
                    PROGRESSING,
                    "Unknown",
                    "DeploymentPaused",
                    "Deployment is paused",
                    now=now,
                )
            return None
        if current is not None and current.get("reason") == "DeploymentPaused":
            _condition(
                conditions,
                PROGRESSING,
                "Unknown",
                "DeploymentResumed",
                "Deployment is resumed",
                now=now,
            )
            current = conditions[PROGRESSING]
        if self.complete(counts):
            if current is None or current.get("reason") != "NewReplicaSetAvailable":
                _condition(
                    conditions,
                    PROGRESSING,
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{name}" has successfully progressed.',
                    now=now,
                )
            return None
        if self.created_new:
            _condition(
                conditions,
                PROGRESSING,
                "True",
                "NewReplicaSetCreated",
                f'Created new replica set "{name}"',
                now=now,
            )
        elif current is None and self.new is not None:
            _condition(
                conditions,
                PROGRESSING,
                "True",
                "FoundNewReplicaSet",
                f'Found new replica set "{name}"',
                now=now,
            )
        elif _progressed(old, counts):
            _condition(
                conditions,
                PROGRESSING,
                "True",
                "ReplicaSetUpdated",
                f'ReplicaSet "{name}" is progressing.',
                now=now,
            )
        deadline = self.spec.get("progressDeadlineSeconds")
        current = conditions.get(PROGRESSING)
        if deadline is None or current is None:
            return None
        if current.get("reason") == "ProgressDeadlineExceeded":
            return None
        since = ownership.parse_time(current.get("lastUpdateTime"))
        if since is None:
            return None
        left = (since + timedelta(seconds=int(deadline)) - ownership.now()).total_seconds()
        if left <= 0:
            _condition(
                conditions,
                PROGRESSING,
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{name}" has timed out progressing.',
                now=now,
            )
            return None
        return left + 1.0


def _progressed(old: Json, new: Json) -> bool:
    """kube's DeploymentProgressing: more updated, ready or available pods, or fewer old."""
    old_old = int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0)
    new_old = new["replicas"] - new["updatedReplicas"]
    return bool(
        new["updatedReplicas"] > int(old.get("updatedReplicas") or 0)
        or new_old < old_old
        or new["readyReplicas"] > int(old.get("readyReplicas") or 0)
        or new["availableReplicas"] > int(old.get("availableReplicas") or 0)
    )


def _condition(
    conditions: dict[Any, Json], kind: str, status: str, reason: str, message: str, *, now: str
) -> None:
    """Set a condition as kube's SetDeploymentCondition: the transition time moves only when
    the status changes; the update time whenever anything does."""
    current = conditions.get(kind)
    if current is not None and (
        current.get("status"),
        current.get("reason"),
        current.get("message"),
    ) == (status, reason, message):
        return
    transition = now
    if current is not None and current.get("status") == status:
        transition = current.get("lastTransitionTime") or now
    conditions[kind] = {
        "type": kind,
        "status": status,
        "lastUpdateTime": now,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    }
