"""`pods/binding`: how a scheduler assigns a pod to a node, as kube-apiserver does it.

POSTing a `Binding` sets `spec.nodeName` (and the pod's `PodScheduled=True` condition) in one
write, once: a pod that is already bound answers 409 Conflict, so two schedulers never both win.
The answer is a `Status` Success with code 201.
"""

from __future__ import annotations

import copy
from typing import Any

from kvd.local.apiserver import errors, meta
from kvd.local.apiserver.objects import Objects, Target


def bind(objects: Objects, t: Target, body: Any, *, dry_run: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be a JSON or YAML object")
    if body.get("kind") not in (None, "", "Binding"):
        raise errors.bad_request(f"the kind in the data ({body.get('kind')}) must be Binding")
    given = (body.get("metadata") or {}).get("name")
    if given not in (None, "", t.name):
        raise errors.bad_request("name in URL does not match name in Binding object")
    target = body.get("target") or {}
    node = target.get("name") if isinstance(target, dict) else None
    if not node:
        raise errors.invalid(
            "",
            "Binding",
            t.name,
            [errors.Cause("FieldValueRequired", "Required value", "target.name")],
        )
    if target.get("kind") not in (None, "", "Node"):
        raise errors.invalid(
            "",
            "Binding",
            t.name,
            [errors.Cause("FieldValueNotSupported", 'must be empty or "Node"', "target.kind")],
        )
    pod = objects.store.get(t.resource.key, t.namespace, t.name)
    if pod is None:
        raise errors.not_found(t.resource.group, t.resource.plural, t.name)
    if pod["metadata"].get("deletionTimestamp"):
        raise errors.conflict(
            "",
            "pods/binding",
            t.name,
            f"pod {t.name} is being deleted, cannot be assigned to a host",
        )
    current = (pod.get("spec") or {}).get("nodeName")
    if current:
        raise errors.conflict(
            "", "pods/binding", t.name, f'pod {t.name} is already assigned to node "{current}"'
        )
    bound = copy.deepcopy(pod)
    bound.setdefault("spec", {})["nodeName"] = node
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    if annotations:
        bound["metadata"].setdefault("annotations", {}).update(annotations)
    _set_scheduled(bound)
    if not dry_run:
        # straight to the store, as kube-apiserver's binding does: the pod update rules (spec
        # only, generation) are not for this write, which also sets the status condition;
        # get and update run with no await between them, so nothing else writes meanwhile
        objects.store.update(t.resource.key, t.namespace, t.name, bound, expected=_rv(pod))
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def _rv(obj: dict[str, Any]) -> int:
    return int(obj["metadata"]["resourceVersion"])


def _set_scheduled(pod: dict[str, Any]) -> None:
    conditions = pod.setdefault("status", {}).setdefault("conditions", [])
    for condition in conditions:
        if condition.get("type") == "PodScheduled":
            if condition.get("status") != "True":
                condition.update(status="True", lastTransitionTime=meta.now())
                condition.pop("reason", None)
                condition.pop("message", None)
            return
    conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": meta.now()})
