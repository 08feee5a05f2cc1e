"""How each in-process workload controller runs: level-triggered, event-driven from the store.

A `Reconciler` says which objects an event concerns (`keys_for`: the owner of a changed pod, the
Services selecting it, …) and brings one object to its wanted state (`sync`), reading everything
from the store afresh, never from the event. `run` reads the store's watch and, once the events
pending have been read, syncs every key they marked, each once. A sync may ask to be looked at
again after some seconds (a pod becoming available after `minReadySeconds`, a progress deadline);
one that fails (a conflict: someone wrote meanwhile) is retried with a growing delay. A full pass
every `RESYNC_SECONDS` and one at start catch anything else, as an informer's resync does.

The store is read and written on the event loop's thread, synchronously, so what a sync created
is in the next sync's reads: no expectations are needed, unlike client-go controllers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from kvd import logs
from kvd.local.apiserver.errors import APIError
from kvd.local.apiserver.store import Event, Gone, ResourceKey, Store

log = logs.get_logger(__name__)

RESYNC_SECONDS = 30.0
RETRY_FIRST, RETRY_MAX = 0.1, 10.0
Key = tuple[str, str]  # (namespace, name); namespace "" for a cluster-scoped object


class Reconciler(Protocol):
    name: str
    watched: frozenset[ResourceKey]  # the resources whose events may concern a key

    def keys(self) -> Iterable[Key]:
        """Every object this controller manages (for the passes at start and resync)."""
        ...

    def keys_for(self, event: Event) -> Iterable[Key]:
        """The objects an event of a watched resource concerns."""
        ...

    def sync(self, key: Key) -> float | None:
        """Bring `key` to its wanted state; seconds after which to look again, or None."""
        ...


async def run(reconciler: Reconciler, store: Store) -> None:
    loop = asyncio.get_running_loop()
    later: dict[Key, float] = {}  # key -> loop time it is due again
    failures: dict[Key, int] = {}
    while True:
        since = store.revision
        dirty = set(reconciler.keys())
        watcher = store.watch(None, None, since)
        resync_at = loop.time() + RESYNC_SECONDS
        try:
            while True:
                for key in sorted(dirty):
                    again = _sync(reconciler, key, failures)
                    if again is not None:
                        due = loop.time() + again
                        later[key] = min(later.get(key, due), due)
                dirty.clear()
                now = loop.time()
                wake = min([resync_at, *later.values()])
                event = await watcher.next(timeout=max(0.0, wake - now))
                while event is not None:  # read what is pending, then one sync per key
                    if event.key in reconciler.watched:
                        dirty.update(reconciler.keys_for(event))
                    event = await watcher.next(timeout=0)
                now = loop.time()
                for key, due in list(later.items()):
                    if due <= now:
                        dirty.add(key)
                        del later[key]
                if now >= resync_at:
                    dirty.update(reconciler.keys())
                    resync_at = now + RESYNC_SECONDS
        except Gone:
            log.info("controller_relisting", controller=reconciler.name)
        finally:
            watcher.close()


def _sync(reconciler: Reconciler, key: Key, failures: dict[Key, int]) -> float | None:
    try:
        again: float | None = reconciler.sync(key)
    except APIError as exc:
        # lost a race with another writer, or the object went: its event brings us back, and
        # the retry makes sure of it
        n = failures[key] = failures.get(key, 0) + 1
        log.info("controller_sync_retry", controller=reconciler.name, key=key, error=str(exc))
        return float(min(RETRY_MAX, RETRY_FIRST * 2 ** (n - 1)))
    except Exception:
        n = failures[key] = failures.get(key, 0) + 1
        log.exception("controller_sync_failed", controller=reconciler.name, key=key)
        return float(min(RETRY_MAX, RETRY_FIRST * 2 ** (n - 1)))
    failures.pop(key, None)
    return again
