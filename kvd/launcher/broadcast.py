"""Fan-out of one producer's items to any number of subscribers, each with a bounded queue.

Used for domain events (WatchDomain) and console output (Console). A subscriber that falls
more than `capacity` items behind is cut off (`overflowed`) instead of slowing the producer or
growing memory without bound; its stream then ends and the client re-subscribes. The snapshot
for a new subscriber is taken under the same lock as publishing, so nothing falls between the
snapshot and the first live item.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Subscription(Generic[T]):
    _CLOSED = object()

    def __init__(self, owner: Broadcaster[T], capacity: int) -> None:
        self._owner = owner
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity + 1)
        self._capacity = capacity
        self.overflowed = False

    def _offer(self, item: object) -> bool:
        """Queue `item`; False when the subscription has ended (now or before)."""
        if item is not self._CLOSED and self._queue.qsize() < self._capacity:
            self._queue.put_nowait(item)
            return True
        if item is not self._CLOSED:
            self.overflowed = True
        with contextlib.suppress(queue.Full):  # the one slot kept free for the end marker
            self._queue.put_nowait(self._CLOSED)
        return False

    def get(self, timeout: float | None = None) -> T | None:
        """The next item; None when the subscription ended (closed or overflowed)."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if item is self._CLOSED:
            self._queue.put_nowait(item)  # stay ended for further calls
            return None
        return item  # type: ignore[return-value]  # only T or _CLOSED are ever queued

    def items(self, *, poll: float, alive: Callable[[], bool]) -> Iterator[T]:
        """Items until the subscription ends or `alive()` turns false (checked every `poll` s)."""
        while alive():
            try:
                item = self.get(timeout=poll)
            except TimeoutError:
                continue
            if item is None:
                return
            yield item

    def close(self) -> None:
        self._owner.unsubscribe(self)


class Broadcaster(Generic[T]):
    def __init__(self, *, capacity: int = 1024) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscription[T]] = []
        self._capacity = capacity
        self._closed = False

    def subscribe(self, initial: Callable[[], list[T]] | None = None) -> Subscription[T]:
        """A new subscription whose first items are `initial()`, computed atomically."""
        sub: Subscription[T] = Subscription(self, self._capacity)
        with self._lock:
            for item in initial() if initial else []:
                sub._offer(item)
            if self._closed:
                sub._offer(Subscription._CLOSED)
            else:
                self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription[T]) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)
            sub._offer(Subscription._CLOSED)

    def publish(self, item: T, *, before: Callable[[], None] | None = None) -> None:
        """Deliver `item`; `before` runs under the lock (to update a snapshot atomically)."""
        with self._lock:
            if before is not None:
                before()
            for sub in list(self._subscribers):
                if not sub._offer(item):
                    self._subscribers.remove(sub)

    def close(self) -> None:
        """End every subscription; later subscribers get their initial items, then the end."""
        with self._lock:
            self._closed = True
            for sub in self._subscribers:
                sub._offer(Subscription._CLOSED)
            self._subscribers.clear()

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)
