"""core/v1 Events on kvd's objects, as `kubectl describe` shows them.

Best effort, as client-go's recorder: an Event that cannot be written is logged and dropped, the
status already carries the state. Events name their object by reference, so one can still be
written for an object that is gone (the handler reports a deleted VMI's shutdown this way).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from kvd import logs, timestamps
from kvd.kube.client import ApiError, Json, Raw

log = logs.get_logger(__name__)

NORMAL, WARNING = "Normal", "Warning"


@dataclass(frozen=True, kw_only=True)
class Recorder:
    raw: Raw
    component: str  # "kvd-controller", "kvd-handler"
    host: str = ""

    def event(self, obj: Json, kind: str, reason: str, message: str) -> None:
        """An Event of `kind` (NORMAL or WARNING) on `obj`, which needs apiVersion, kind and
        metadata name and uid (and namespace, unless cluster-scoped: its Events go to
        `default`, as kube's recorder puts them)."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") or ""
        home = namespace or "default"
        now = timestamps.now()
        source: Json = {"component": self.component}
        if self.host:
            source["host"] = self.host
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{secrets.token_hex(8)}",
                "namespace": home,
            },
            "involvedObject": {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": namespace,
                "uid": meta["uid"],
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.raw.create(f"/api/v1/namespaces/{home}/events", event)
        except ApiError as exc:
            log.warning("event_failed", reason=reason, error=exc.message)
