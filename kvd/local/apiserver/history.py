"""The watch history: the last N events in memory, and the watchers reading them.

Revisions are contiguous (every revision is exactly one write), so the history is a ring indexed
by `revision % size`: appending is one slot assignment, and a watch from revision R starts at a
slot without searching. A `Watcher` is a cursor into the ring that filters for its resource and
namespace itself; catch-up and live events come from the same ring, so many watchers on one
resource cost one append per event and no database query. Watchers blocked in `next()` park a
future under the resource they watch, and an append wakes only those (and the watch-everything
ones, such as the garbage collector), not every watcher in the server.

The store (`store.py`) owns persistence and fills the ring at start from its `events` table; the
types callers see are re-exported there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class ResourceKey:
    """A kind of object by its REST identity: ("", "pods"), ("kubevirt.io", "virtualmachines")."""

    group: str
    resource: str

    def __str__(self) -> str:
        return f"{self.resource}.{self.group}" if self.group else self.resource


@dataclass(frozen=True, slots=True)
class Event:
    """One write, as a watcher sees it.

    The object is kept as the stored JSON bytes (`raw`), shared by every watcher: a watch stream
    can splice them into its output unparsed, and `object` parses a fresh dict on each access,
    so no watcher can change what another one sees.

    A MODIFIED event also carries the object as it was before (`prev`, the very bytes the store
    held, so keeping them costs a reference), as etcd's watch does: a watch with a selector
    needs both sides to tell an object that starts matching (ADDED) or stops (DELETED) from
    one that changes (MODIFIED), whatever revision the watch started from. A DELETED event's
    `raw` is already the state before the delete (with the deletion's revision); an ADDED one
    has no before.
    """

    type: EventType
    revision: int
    key: ResourceKey
    namespace: str
    name: str
    raw: bytes
    prev: bytes | None = None

    @property
    def object(self) -> dict[str, Any]:
        """A new dict of the object, the caller's to mutate; for DELETED, its final state."""
        parsed: dict[str, Any] = json.loads(self.raw)
        return parsed

    @property
    def previous(self) -> dict[str, Any] | None:
        """A new dict of the object before this event: None for ADDED, the final state for
        DELETED (with the deletion's revision, as a watch delivers it)."""
        if self.type == "DELETED":
            return self.object
        if self.prev is None:
            return None
        parsed: dict[str, Any] = json.loads(self.prev)
        return parsed

    @property
    def replayable(self) -> bool:
        """False for a MODIFIED event whose before-state is unknown (one loaded from a database
        written before events kept it): a watch cannot start before it."""
        return self.type != "MODIFIED" or self.prev is not None


class StoreError(Exception):
    """Anything the store refuses or fails at; the API server maps subclasses to HTTP statuses."""


class Gone(StoreError):
    """The revision asked for is older than the kept history (HTTP 410); relist and watch again.

    `oldest` is the oldest revision still kept: a watch from `oldest - 1` would succeed.
    """

    def __init__(self, since: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {since} ({oldest})")
        self.since = since
        self.oldest = oldest


class Closed(StoreError):
    """The store or the watcher was closed; a watch stream ends on it."""


# Fills the ring before any event lands in a slot, so the ring is a plain list[Event].
_NO_EVENT = Event("ADDED", 0, ResourceKey("", ""), "", "", b"{}")


class History:
    """The ring of the last `size` events, the current revision, and the parked watchers.

    Used from the event loop's thread only; `append` may be called outside a running loop (there
    can be no parked watchers then).
    """

    def __init__(self, size: int, *, revision: int = 0, events: Iterable[Event] = ()) -> None:
        """`events` are the persisted ones, in any order; `revision` the last one written."""
        if size < 1:
            raise ValueError("the history must keep at least one event")
        self._size = size
        self._ring: list[Event] = [_NO_EVENT] * size
        self._revision = revision
        self._closed = False
        self._waiters: dict[ResourceKey | None, set[asyncio.Future[None]]] = {}
        for event in events:
            if event.revision > revision - size:
                self._ring[event.revision % size] = event
        # The kept history is the contiguous run of replayable events ending at the current
        # revision; walking back through the ring (rather than trusting the lowest one loaded)
        # never serves a gap, or an event whose before-state is lost, as history.
        oldest, floor = revision + 1, max(1, revision - size + 1)
        while oldest > floor:
            event = self._ring[(oldest - 1) % size]
            if event.revision != oldest - 1 or not event.replayable:
                break
            oldest -= 1
        self._oldest = oldest

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def oldest(self) -> int:
        return self._oldest

    def append(self, event: Event) -> None:
        """Publish the event of the next revision and wake the watchers it concerns."""
        if event.revision != self._revision + 1:
            raise ValueError(f"revision {event.revision} does not follow {self._revision}")
        self._ring[event.revision % self._size] = event
        self._revision = event.revision
        self._oldest = max(self._oldest, event.revision - self._size + 1)
        for waiting in (event.key, None):
            for future in self._waiters.pop(waiting, ()):
                if not future.done():
                    future.set_result(None)

    def watch(self, key: ResourceKey | None, namespace: str | None, since: int) -> Watcher:
        """A cursor after `since`; `key` must be the store's interned instance (or None)."""
        if self._closed:
            raise Closed("the store is closed")
        if since < self._oldest - 1:
            raise Gone(since, self._oldest)
        return Watcher(self, key, namespace, since)

    def close(self) -> None:
        """End every watch: parked ones wake and raise Closed, the others on their next call."""
        self._closed = True
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)
        self._waiters.clear()


class Watcher:
    """A cursor into the history, filtering for one resource (None: all) and namespace.

    A watcher that is not read fast enough to stay inside the window gets Gone, as an etcd watch
    past compaction does; its client relists.
    """

    def __init__(
        self, history: History, key: ResourceKey | None, namespace: str | None, since: int
    ) -> None:
        self._history = history
        self._key = key
        self._namespace = namespace
        self._next = since + 1
        self._closed = False
        self._future: asyncio.Future[None] | None = None

    @property
    def revision(self) -> int:
        """Every matching event up to this revision has been returned: a bookmark's value."""
        return min(self._next - 1, self._history.revision)

    async def next(self, timeout: float | None) -> Event | None:
        """The next matching event, or None if none came within `timeout` seconds (None: wait
        for ever). Gone if the watcher fell out of the history, Closed once closed."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        history = self._history
        while True:
            if self._closed or history._closed:
                raise Closed("the watch is closed")
            event = self._scan()
            if event is not None:
                return event
            if deadline is not None and loop.time() >= deadline:
                return None
            future: asyncio.Future[None] = loop.create_future()
            waiters = history._waiters.setdefault(self._key, set())
            waiters.add(future)
            self._future = future
            try:
                async with asyncio.timeout_at(deadline):
                    await future
            except TimeoutError:
                return None
            finally:
                waiters.discard(future)  # a timed-out future must not pile up
                self._future = None

    def poll(self) -> Event | None:
        """The next matching event already written, or None; never waits (for readers that
        catch up synchronously, such as the RBAC index). Gone and Closed as `next`."""
        if self._closed or self._history._closed:
            raise Closed("the watch is closed")
        return self._scan()

    def close(self) -> None:
        """Stop watching; a next() blocked in another task raises Closed."""
        self._closed = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    def _scan(self) -> Event | None:
        """Advance the cursor to the next matching event: no awaiting, no copying."""
        history = self._history
        if self._next < history._oldest:
            raise Gone(self._next - 1, history._oldest)
        ring, size, last = history._ring, history._size, history._revision
        key, namespace = self._key, self._namespace
        revision = self._next
        while revision <= last:
            event = ring[revision % size]
            revision += 1
            if (key is None or event.key is key) and (
                namespace is None or event.namespace == namespace
            ):
                self._next = revision
                return event
        self._next = revision
        return None
