"""The node watchdog: a node whose handler stopped beating is taken out of scheduling, and its
VMIs that no longer have a running launcher pod end `Failed` with reason `NodeUnresponsive`.

Each handler annotates its node with `kubevirt.io/heartbeat` (RFC 3339) every minute. A node
whose heartbeat is older than the threshold (5 min, as KubeVirt) gets
`kubevirt.io/schedulable=false`, so no new launcher pod lands there; the handler sets it back
when it returns. A VMI on such a node whose launcher pod still runs is left alone (its guest
may well be fine); one whose pod is gone or ended can never be finished by anyone else.
A node that never had a heartbeat has never had a handler, and is not judged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kvd import logs, timestamps
from kvd.api import keys, kinds, phases
from kvd.kube import events, informer
from kvd.kube.client import ApiError, Json, Raw

log = logs.get_logger(__name__)

REASON = "NodeUnresponsive"


def heartbeat_age(node: Json, now: float) -> float | None:
    """Seconds since the node's handler last beat; None when it never did (or unreadable)."""
    value = ((node.get("metadata") or {}).get("annotations") or {}).get(keys.HEARTBEAT)
    if not value:
        return None
    then = timestamps.parse(str(value))
    return None if then is None else max(0.0, now - then.timestamp())


def orphaned(vmi: Json, pods: list[Json]) -> bool:
    """A VMI, not final, none of whose launcher pods is running."""
    if phases.is_final((vmi.get("status") or {}).get("phase") or ""):
        return False
    return not any(
        (p.get("status") or {}).get("phase") == "Running"
        and not (p.get("metadata") or {}).get("deletionTimestamp")
        for p in pods
    )


@dataclass(kw_only=True)
class NodeWatchdog:
    raw: Raw
    nodes: informer.Informer
    vmis: informer.Informer
    pods_of: Callable[[str], list[Json]]  # a VMI uid → its launcher pods
    recorder: events.Recorder
    threshold: float = 300.0

    def check(self, now: float) -> None:
        for node in self.nodes.items():
            age = heartbeat_age(node, now)
            if age is None or age <= self.threshold:
                continue
            name = node["metadata"]["name"]
            try:
                self._unresponsive(node, name, age)
            except ApiError as exc:
                log.warning("watchdog_failed", node=name, error=exc.message)

    def _unresponsive(self, node: Json, name: str, age: float) -> None:
        labels = node["metadata"].get("labels") or {}
        if labels.get(keys.SCHEDULABLE) != "false":
            self.raw.merge_patch(
                f"/api/v1/nodes/{name}", {"metadata": {"labels": {keys.SCHEDULABLE: "false"}}}
            )
            log.warning("node_unresponsive", node=name, heartbeat_age=round(age))
            self.recorder.event(
                {"apiVersion": "v1", "kind": "Node", **node},
                events.WARNING,
                REASON,
                f"no heartbeat from the handler for {age:.0f}s; the node is not schedulable",
            )
        for vmi in self.vmis.items():
            status = vmi.get("status") or {}
            if status.get("nodeName") != name:
                continue
            meta = vmi["metadata"]
            if not orphaned(vmi, self.pods_of(meta["uid"])):
                continue
            changed = phases.move(status, phases.FAILED, reason=REASON, now=timestamps.now())
            message = f"node {name} is unresponsive and the VMI's launcher pod is not running"
            self.raw.merge_patch(
                kinds.VMI.path(meta["namespace"], meta["name"]),
                {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": changed},
            )
            log.warning("vmi_phase", vmi=informer.key_of(vmi), phase=phases.FAILED, reason=REASON)
            self.recorder.event(vmi, events.WARNING, REASON, message)
