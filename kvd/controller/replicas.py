"""What a VirtualMachineInstanceReplicaSet needs done, as pure functions: which VMIs are its,
how many to create, which to delete, and its status (KubeVirt's
pkg/virt-controller/watch/replicaset).

- Its VMIs: those it controls (owner reference with its uid) whose labels its selector still
  matches; an orphan the selector matches is adopted, a VMI it controls that no longer matches
  is released (client-go's ControllerRefManager, as KubeVirt uses it).
- Active VMIs (not ended, not being deleted) count towards `replicas`. Too few: create the
  difference; too many: delete the excess, VMIs that do not run yet first, then the newest (as
  kube's ReplicaSet picks them), at most `BURST` at a time. A VMI that ended is deleted (and so
  replaced); one deleted by hand no longer counts, so its replacement starts at once.
- `paused: true` stops creating and deleting; the ReplicaPaused condition says so.
- Status: `replicas` (active VMIs), `readyReplicas` (those whose Ready condition is True),
  `labelSelector` (the selector as text, for the scale subresource), and a ReplicaFailure
  condition while creating or deleting fails (reason FailedCreate or FailedDelete).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from kvd.api import labels, phases
from kvd.controller import vmtemplate

Json = dict[str, Any]

BURST: Final = 250  # KubeVirt's default burstReplicas: creations or deletions per reconcile
PAUSED, FAILURE = "ReplicaPaused", "ReplicaFailure"
KIND: Final = "VirtualMachineInstanceReplicaSet"


class InvalidReplicaSet(Exception):
    """The spec cannot be acted on (KubeVirt logs it and does not retry)."""


def selector(rs: Json) -> labels.Selector:
    """The set's selector; InvalidReplicaSet when it has none, it is invalid, or it does not
    match the template's labels (the API refuses such a set; this guards what got past)."""
    spec = rs.get("spec") or {}
    raw = spec.get("selector")
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if raw is None or not template_labels:
        raise InvalidReplicaSet("a selector and template labels are required")
    try:
        parsed = labels.label_selector(
            raw.get("matchLabels") or {},
            [
                (e.get("key", ""), e.get("operator", ""), e.get("values"))
                for e in raw.get("matchExpressions") or []
            ],
        )
    except labels.InvalidRequirement as exc:
        raise InvalidReplicaSet(f"invalid selector: {exc}") from None
    if not parsed.matches(template_labels):
        raise InvalidReplicaSet("the selector does not match the template's labels")
    return parsed


@dataclass(frozen=True)
class Claimed:
    mine: tuple[Json, ...]  # its VMIs, adopted ones included
    adopt: tuple[Json, ...]  # orphans to take (an owner reference to add)
    release: tuple[Json, ...]  # VMIs it controls that its selector no longer matches


def claim(rs: Json, vmis: list[Json], chosen: labels.Selector) -> Claimed:
    """Sort the namespace's VMIs into the set's own, orphans to adopt and VMIs to release."""
    uid = rs["metadata"]["uid"]
    deleting = bool(rs["metadata"].get("deletionTimestamp"))
    mine, adopt, release = [], [], []
    for vmi in vmis:
        ref = vmtemplate.controller_of(vmi)
        matches = chosen.matches(vmi["metadata"].get("labels") or {})
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches or deleting:
                mine.append(vmi)
            else:
                release.append(vmi)
        elif matches and not deleting and not vmi["metadata"].get("deletionTimestamp"):
            adopt.append(vmi)
            mine.append(vmi)
    return Claimed(tuple(mine), tuple(adopt), tuple(release))


def final(vmi: Json) -> bool:
    return phases.is_final(str((vmi.get("status") or {}).get("phase") or ""))


def deleting(vmi: Json) -> bool:
    return bool(vmi["metadata"].get("deletionTimestamp"))


def active(vmis: tuple[Json, ...] | list[Json]) -> list[Json]:
    return [v for v in vmis if not final(v) and not deleting(v)]


def finished(vmis: tuple[Json, ...] | list[Json]) -> list[Json]:
    return [v for v in vmis if final(v) and not deleting(v)]


def ready(vmi: Json) -> bool:
    conditions = (vmi.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def wanted(rs: Json) -> int:
    replicas = (rs.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


@dataclass(frozen=True)
class Scale:
    create: int = 0
    delete: tuple[Json, ...] = ()  # VMIs to delete, in order


def scale(rs: Json, running: list[Json], ended: list[Json], *, burst: int = BURST) -> Scale:
    """What to create and delete so that `running` (its active VMIs) matches `replicas`; the
    `ended` VMIs are deleted too (KubeVirt deletes them after a successful scale)."""
    diff = len(running) - wanted(rs)
    if diff < 0:
        return Scale(create=min(-diff, burst), delete=tuple(ended[:burst]))
    excess = tuple(deletion_order(running)[: min(diff, burst)])
    return Scale(delete=excess + tuple(ended[: max(0, burst - len(excess))]))


def deletion_order(vmis: list[Json]) -> list[Json]:
    """Which VMIs go first on a scale-down: those not Running yet, then those not ready, then
    the newest (creation time, then name, descending)."""

    def rank(vmi: Json) -> tuple[int, int, str, str]:
        status = vmi.get("status") or {}
        is_running = status.get("phase") == phases.RUNNING
        meta = vmi["metadata"]
        return (int(is_running), int(ready(vmi)), meta.get("creationTimestamp") or "", meta["name"])

    newest_first = sorted(vmis, key=lambda v: rank(v)[2:], reverse=True)
    return sorted(newest_first, key=lambda v: rank(v)[:2])


def base_name(rs: Json) -> str:
    """The generateName of its VMIs: the template's name or generateName, else the set's name
    (as KubeVirt names them: no separator, the API server appends five characters)."""
    template_meta = ((rs.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return str(
        template_meta.get("name") or template_meta.get("generateName") or rs["metadata"]["name"]
    )


def vmi_for(rs: Json) -> Json:
    """One VMI to create from the set's template."""
    template = rs["spec"]["template"]
    template_meta = template.get("metadata") or {}
    meta: Json = {
        "generateName": base_name(rs),
        "namespace": rs["metadata"]["namespace"],
        "ownerReferences": [vmtemplate.owner_reference(rs)],
    }
    for field in ("labels", "annotations"):
        if template_meta.get(field):
            meta[field] = dict(template_meta[field])
    return {
        "apiVersion": rs.get("apiVersion") or "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": meta,
        "spec": template["spec"],
    }


def status(
    rs: Json,
    running: list[Json],
    chosen: labels.Selector,
    *,
    error: tuple[str, str] | None,
    now: str,
) -> Json:
    """The set's status now (KubeVirt keeps a condition it already has as it is)."""
    old: Json = rs.get("status") or {}
    new: Json = {
        **old,
        "replicas": len(running),
        "readyReplicas": sum(1 for v in running if ready(v)),
        "labelSelector": str(chosen),
    }
    conditions = [c for c in old.get("conditions") or []]
    have = {c.get("type") for c in conditions}
    paused = bool((rs.get("spec") or {}).get("paused"))
    if paused and PAUSED not in have:
        conditions.append(_condition(PAUSED, "Paused", "Controller got paused", now))
    elif not paused:
        conditions = [c for c in conditions if c.get("type") != PAUSED]
    if error is not None and FAILURE not in have:
        conditions.append(_condition(FAILURE, error[0], error[1], now))
    elif error is None:
        conditions = [c for c in conditions if c.get("type") != FAILURE]
    if conditions:
        new["conditions"] = conditions
    else:
        new.pop("conditions", None)
    return new


def _condition(kind: str, reason: str, message: str, now: str) -> Json:
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": now,
    }
