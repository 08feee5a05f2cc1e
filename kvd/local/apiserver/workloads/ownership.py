"""Controller references, and pods as the workload controllers see them.

kube-controller-manager's `ControllerRefManager`: an object belongs to the owner named by its one
`controller: true` owner reference. An owner claims what its selector matches: it adopts a
matching object that has no controller (adding its reference), keeps what it owns while it still
matches, and releases (orphans) what it owns but no longer matches. An owner being deleted adopts
nothing. Pods made from a template carry the template's labels and annotations, the owner's
reference (`controller`, `blockOwnerDeletion`) and a generated name `<prefix><5 random>`.

A pod is active until it has a terminal phase or is being deleted; ready when its `Ready`
condition is True; available once it has been ready for `minReadySeconds`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from kvd.local.apiserver import selectors
from kvd.local.apiserver.objects import Objects, Target
from kvd.local.apiserver.registry import ResourceDef

Json = dict[str, Any]
MANAGER = "kube-controller-manager"
TERMINAL = ("Succeeded", "Failed")


def controller_of(obj: Json) -> Json | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller"):
            return ref
    return None


def reference(owner: Json, api_version: str, kind: str) -> Json:
    m = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": m["name"],
        "uid": m["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def selector_of(obj: Json) -> selectors.LabelSelector:
    """The object's `spec.selector` (nothing, for one that cannot be read: validation refused
    it, so only an object stored before that could have it)."""
    try:
        return selectors.from_label_selector_object((obj.get("spec") or {}).get("selector"))
    except selectors.SelectorError:
        return selectors.NOTHING


def labels_of(obj: Json) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def claim(
    objects: Objects,
    resource: ResourceDef,
    owner: Json,
    *,
    ref: Json,
    candidates: Iterable[Json],
    selector: selectors.LabelSelector,
) -> list[Json]:
    """The candidates `owner` controls after adopting and releasing as kube does."""
    uid = owner["metadata"]["uid"]
    deleting = bool(owner["metadata"].get("deletionTimestamp"))
    owned = []
    for obj in candidates:
        current = controller_of(obj)
        matches = selector.matches(labels_of(obj))
        if current is not None and current.get("uid") == uid:
            if matches or deleting:
                owned.append(obj)
            elif not obj["metadata"].get("deletionTimestamp"):
                _set_refs(objects, resource, obj, [r for r in _refs(obj) if r.get("uid") != uid])
        elif (
            current is None
            and matches
            and not deleting
            and not obj["metadata"].get("deletionTimestamp")
        ):
            owned.append(_set_refs(objects, resource, obj, [*_refs(obj), ref]))
    return owned


def _refs(obj: Json) -> list[Json]:
    return list(obj["metadata"].get("ownerReferences") or [])


def _set_refs(objects: Objects, resource: ResourceDef, obj: Json, refs: list[Json]) -> Json:
    updated = copy.deepcopy(obj)
    updated["metadata"]["ownerReferences"] = refs
    if not refs:
        del updated["metadata"]["ownerReferences"]
    t = Target(
        resource, resource.storage_version, obj["metadata"]["namespace"], obj["metadata"]["name"]
    )
    return objects.update(t, updated, validation="Ignore", dry_run=False, manager=MANAGER).object


def from_template(template: Json, *, prefix: str, ref: Json, labels: dict[str, str]) -> Json:
    """A pod of `template`, owned through `ref`, with `labels` added to the template's."""
    meta = template.get("metadata") or {}
    metadata: Json = {
        "generateName": prefix,
        "labels": {**(meta.get("labels") or {}), **labels},
        "ownerReferences": [ref],
    }
    if meta.get("annotations"):
        metadata["annotations"] = dict(meta["annotations"])
    if meta.get("finalizers"):
        metadata["finalizers"] = list(meta["finalizers"])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


# --- pod states --------------------------------------------------------------------------------


def active(pod: Json) -> bool:
    return (pod.get("status") or {}).get("phase") not in TERMINAL and not pod["metadata"].get(
        "deletionTimestamp"
    )


def _ready_condition(pod: Json) -> Json | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c
    return None


def ready(pod: Json) -> bool:
    c = _ready_condition(pod)
    return c is not None and c.get("status") == "True"


def until_available(pod: Json, min_ready: int, now: datetime) -> float | None:
    """Seconds until a ready pod is available (0: it is); None when it is not ready."""
    if not ready(pod):
        return None
    if min_ready <= 0:
        return 0.0
    since = parse_time((_ready_condition(pod) or {}).get("lastTransitionTime"))
    if since is None:
        return 0.0
    return max(0.0, since.timestamp() + min_ready - now.timestamp())


def available(pod: Json, min_ready: int, now: datetime) -> bool:
    return until_available(pod, min_ready, now) == 0.0


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def now() -> datetime:
    return datetime.now(UTC)
