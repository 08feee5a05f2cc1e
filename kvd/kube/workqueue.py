"""A rate-limited work queue with client-go's guarantees, for level-triggered reconcilers.

Event handlers `add` keys; workers `get` a key, reconcile it and call `done` (in a `finally`).
Guarantees, as client-go's `workqueue`: a key is queued at most once however often it is added
(the *dirty* set); a key is never handed to two workers at once — adding a key that is being
processed marks it dirty and it comes back after `done`; `add_after` delays; `add_rate_limited`
delays exponentially per key (base * 2^failures, capped) until `forget` resets it. `shutdown`
wakes every waiting worker with `None`.

The clock is injectable so the delay logic is testable without sleeping. `work` is the worker
loop the daemons run on it.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from kvd import logs
from kvd.metrics import DaemonMetrics

log = logs.get_logger(__name__)

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(
        self,
        *,
        base_delay: float = 0.005,
        max_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = base_delay
        self._max = max_delay
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiting: list[tuple[float, int, K]] = []  # heap of (due, seq, key)
        self._seq = itertools.count()
        self._failures: dict[K, int] = {}
        self._shutting_down = False

    def add(self, key: K) -> None:
        with self._cond:
            self._add_locked(key)

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutting_down:
                return
            heapq.heappush(self._waiting, (self._clock() + delay, next(self._seq), key))
            self._cond.notify()

    def add_rate_limited(self, key: K) -> None:
        """Requeue after a failure: the delay doubles with each failure since the last `forget`."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        self.add_after(key, self.backoff(failures))

    def backoff(self, failures: int) -> float:
        return min(self._max, self._base * float(2 ** min(failures, 32)))

    def forget(self, key: K) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def get(self, timeout: float | None = None) -> K | None:
        """The next key to process, or None on shutdown (or when `timeout` passes)."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                self._promote_due_locked()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                if self._shutting_down:
                    return None
                wait = self._next_wait_locked()
                if deadline is not None:
                    left = deadline - self._clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._shutting_down = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    # --- internals (lock held) ---------------------------------------------------------------

    def _add_locked(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._cond.notify()

    def _promote_due_locked(self) -> None:
        now = self._clock()
        while self._waiting and self._waiting[0][0] <= now:
            _, _, key = heapq.heappop(self._waiting)
            self._add_locked(key)

    def _next_wait_locked(self) -> float | None:
        if not self._waiting:
            return None
        return max(0.0, self._waiting[0][0] - self._clock())


def work(
    queue: WorkQueue[K],
    reconcile: Callable[[K], float | None],
    *,
    metrics: DaemonMetrics,
    log_key: str = "key",
) -> None:
    """A worker: reconcile keys until the queue shuts down. `reconcile` returns when to look
    again (None: not until an event); an exception requeues the key with back-off."""
    while True:
        key = queue.get()
        if key is None:
            return
        try:
            with metrics.time_reconcile() as timing:
                again = reconcile(key)
                timing.requeue = again is not None
        except Exception as exc:
            log.exception("reconcile_failed", **{log_key: key}, error=str(exc))
            queue.add_rate_limited(key)
        else:
            queue.forget(key)
            if again is not None:
                queue.add_after(key, again)
        finally:
            queue.done(key)
