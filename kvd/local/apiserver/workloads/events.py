"""core/v1 Events of the workload controllers, as kube-controller-manager's recorders write them
(`kubectl describe deploy|rs|ds` shows `ScalingReplicaSet`, `SuccessfulCreate`, …), written in
process. Best effort, as client-go's recorder: one that cannot be written is logged and dropped."""

from __future__ import annotations

import secrets
from typing import Any

from kvd import logs
from kvd.local.apiserver import errors, meta
from kvd.local.apiserver.objects import Objects, Target

log = logs.get_logger(__name__)

NORMAL, WARNING = "Normal", "Warning"


def record(
    objects: Objects,
    obj: dict[str, Any],
    *,
    component: str,
    reason: str,
    message: str,
    kind: str = NORMAL,
) -> None:
    """An Event on `obj` (a stored namespaced object with apiVersion and kind)."""
    resource = objects.registry.get("", "events")
    assert resource is not None
    m = obj["metadata"]
    now = meta.now()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{m['name']}.{secrets.token_hex(8)}"},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion", ""),
            "kind": obj.get("kind", ""),
            "name": m["name"],
            "namespace": m["namespace"],
            "uid": m["uid"],
            "resourceVersion": m.get("resourceVersion", ""),
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        objects.create(
            Target(resource, "v1", m["namespace"]),
            event,
            validation="Ignore",
            dry_run=False,
            manager=component,
        )
    except errors.APIError as exc:
        log.info("event_dropped", reason=reason, error=str(exc))
