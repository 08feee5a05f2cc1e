"""client-go's ControllerExpectations: what a controller is still waiting to see in its caches.

A controller that creates a pod for a VMI records that it expects one creation; the informer's add
handler lowers the count when the pod shows up. Until then `satisfied` is False and the reconcile
of that VMI waits, so a cache that lags behind the controller's own writes never makes it create
the pod twice. A record older than the TTL counts as satisfied: a lost watch event must not stall a
key forever (the controller then recomputes from the caches, which are level-triggered anyway).

`expect_*` replace the record and restart its TTL; `raise_`/`lower_expectations` and the
`*_observed` calls adjust an existing record and keep its timestamp, as client-go does.
Thread-safe: informer handlers and workers call it concurrently.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

TTL = 5 * 60.0  # client-go's ExpectationsTimeout


@dataclass
class _Record:
    adds: int
    deletes: int
    timestamp: float


class Expectations:
    def __init__(self, *, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}

    def expect_creations(self, key: str, count: int) -> None:
        self._set(key, adds=count, deletes=0)

    def expect_deletions(self, key: str, count: int) -> None:
        self._set(key, adds=0, deletes=count)

    def raise_expectations(self, key: str, *, adds: int = 0, deletes: int = 0) -> None:
        """Add to an existing record (a no-op without one)."""
        self._adjust(key, adds, deletes)

    def lower_expectations(self, key: str, *, adds: int = 0, deletes: int = 0) -> None:
        """Subtract from an existing record, e.g. for a creation that failed and will never be
        observed (a no-op without one)."""
        self._adjust(key, -adds, -deletes)

    def creation_observed(self, key: str) -> None:
        self._adjust(key, -1, 0)

    def deletion_observed(self, key: str) -> None:
        self._adjust(key, 0, -1)

    def satisfied(self, key: str) -> bool:
        """True when nothing is pending for `key`: no record, every expected creation and
        deletion observed, or the record has outlived the TTL."""
        with self._lock:
            record = self._records.get(key)
            if record is None:
                return True
            if record.adds <= 0 and record.deletes <= 0:
                return True
            return self._clock() - record.timestamp > self._ttl

    def pending(self, key: str) -> tuple[int, int] | None:
        """(creations, deletions) still expected for `key`, or None without a record."""
        with self._lock:
            record = self._records.get(key)
            return None if record is None else (record.adds, record.deletes)

    def delete(self, key: str) -> None:
        """Forget `key`, e.g. once the VMI itself is gone."""
        with self._lock:
            self._records.pop(key, None)

    def _set(self, key: str, *, adds: int, deletes: int) -> None:
        with self._lock:
            self._records[key] = _Record(adds, deletes, self._clock())

    def _adjust(self, key: str, adds: int, deletes: int) -> None:
        with self._lock:
            record = self._records.get(key)
            if record is not None:
                record.adds += adds
                record.deletes += deletes
