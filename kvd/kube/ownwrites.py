"""A daemon's own last write per object, so a reconcile that runs before the informer has seen
that write works from it instead of from the stale cached copy.

Without it, a second reconcile right after a status patch (a launcher's domain event, say)
computes the same change again from the old copy and sends it with the old resourceVersion: a 409
Conflict, a GET, and a reconcile that then finds nothing to write. With it, the second reconcile
starts from the object the patch returned and, when nothing else changed, writes nothing.

`wrote(key, replaced=…, result=…)` records a write: the resourceVersion it replaced and the object
it returned. `latest(key, cached)` is the cached object, or the written one while the cache still
shows the version that write replaced. Once the cache moves past it, the entry is dropped. Only
equality of resourceVersions is used (they are opaque), and nothing here mutates what it holds.
"""

from __future__ import annotations

import threading
from typing import Any

Json = dict[str, Any]


class OwnWrites:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, tuple[str, Json]] = {}

    def wrote(self, key: str, *, replaced: str, result: Json) -> None:
        with self._lock:
            self._by_key[key] = (replaced, result)

    def latest(self, key: str, cached: Json | None) -> Json | None:
        """The newest copy of `key` this daemon knows: `cached`, or its own write over it."""
        with self._lock:
            if cached is None:
                self._by_key.pop(key, None)
                return None
            entry = self._by_key.get(key)
            if entry is None:
                return cached
            replaced, result = entry
            if (cached.get("metadata") or {}).get("resourceVersion") == replaced:
                return result
            del self._by_key[key]  # the cache has caught up (or someone else wrote since)
            return cached

    def __len__(self) -> int:
        return len(self._by_key)
