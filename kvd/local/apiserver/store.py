"""The API server's storage: objects in SQLite, one global revision, and a watch history in memory.

It reproduces what kube-apiserver gets from etcd (and k3s from kine): every write takes the next
value of one cluster-wide revision, which becomes the object's `metadata.resourceVersion`; a list
carries the revision it was taken at; a watch from revision R delivers exactly the events after R,
in order, then live ones; a watch from before the kept history fails with `Gone` (HTTP 410).

Design, for a single asyncio thread that must never block long:

- SQLite in WAL mode with `synchronous=NORMAL`: a commit is an append to the WAL, no fsync (a
  crash of the process loses nothing, a power cut may lose the last commits but never corrupts).
  Two tables, written in one transaction per write: `objects` (the current state) and `events`
  (the last `history` writes and a margin of a tenth more, trimmed in batches).
- Each event knows the object's state before it (`Event.prev`, which selectors need). In
  memory that is a reference to bytes the store held anyway. On disk an update writes it only
  when the object's previous write is older than the margin: otherwise that write's own row is
  still in the table, and reopening reads it back from there. So the common update (of an
  object written shortly before: statuses, leases) costs no extra bytes.
- Checkpoints (copying the WAL back, with fsyncs of several ms) run in a thread with its own
  connection, so writes that pause now and then, as an API server's do, never wait for the disk.
  Only writes that never pause make the event loop finish a checkpoint itself, once per 8 MiB of
  WAL. SQLite's own checkpointing in the writer's thread stalled it every ~250 writes.
- A lock file (`<path>.lock`, flock) makes a second server on the same database fail at once
  instead of handing out the same revisions twice.
- Everything a read needs is in memory too, as canonical JSON bytes: reads never touch the disk,
  and every read parses a fresh dict, so no caller can mutate what the store keeps (parsing is
  about 4x faster than `copy.deepcopy`). The bytes serve watchers as they are (`Event.raw`), so a
  watch stream can be written without encoding the object once per watcher.
- Fan-out (`history.py`): the last `history` events live in a ring in memory, and a watcher is a
  cursor into it, so an event costs one append however many watch it, and no query.
- An update that changes nothing (same canonical bytes) is not a write, as in kube-apiserver: it
  returns the stored object without a new revision or event, which is what stops a controller that
  always writes status from waking itself forever.

Restarts keep objects, the revision (the newest event is never trimmed) and the kept events, which
are loaded back into the ring, so a watch from a pre-restart revision resumes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from kvd import logs
from kvd.local.apiserver.history import (
    Closed,
    Event,
    EventType,
    Gone,
    ResourceKey,
    StoreError,
    Watcher,
)
from kvd.local.apiserver.history import History as _History

__all__ = [
    "AlreadyExists",
    "Closed",
    "Conflict",
    "Event",
    "EventType",
    "Gone",
    "NotFound",
    "ResourceKey",
    "Store",
    "StoreError",
    "Watcher",
]

log = logs.get_logger(__name__)

# Canonical JSON: sorted keys make equal objects equal bytes (the no-op update check), compact
# separators keep memory and disk small, NaN is refused because it is not JSON.
_encoder = json.JSONEncoder(
    separators=(",", ":"), sort_keys=True, check_circular=False, allow_nan=False
)

# Trim the events table once per this many writes rather than on every write: one DELETE of a
# thousand rows is cheaper than a thousand one-row DELETEs, and the table only ever exceeds the
# window by this much. The in-memory window is exact either way.
_TRIM_EVERY = 1000

# Ask for a checkpoint once per this many writes: a few MiB of WAL, copied back in one go.
_CHECKPOINT_EVERY = 200
# A WAL this many pages long (8 MiB) is caught up with in the event loop's thread. Smaller
# limits stall more often, larger ones longer: the checkpoint's fsync grows with the WAL.
_WAL_LIMIT = 2048
# Requests in a row the checkpointer may leave unanswered before the store checkpoints itself:
# each is _CHECKPOINT_EVERY writes, so a starved thread leaves about _WAL_LIMIT pages behind.
_STARVED_REQUESTS = 4
# How soon the checkpointer looks again for a pause in the writes.
_RECHECK_SECONDS = 0.02

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    grp TEXT NOT NULL, resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    revision INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (grp, resource, namespace, name)
);
CREATE TABLE IF NOT EXISTS events (
    revision INTEGER PRIMARY KEY, type TEXT NOT NULL,
    grp TEXT NOT NULL, resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    data BLOB NOT NULL, prev BLOB
);
"""
# Databases written before events kept the object's previous state get the column on open;
# their old MODIFIED rows have none (see `_previous_states`).
_ADD_PREV = "ALTER TABLE events ADD COLUMN prev BLOB"
_INSERT_OBJECT = (
    "INSERT INTO objects (grp, resource, namespace, name, revision, data) VALUES (?, ?, ?, ?, ?, ?)"
)
_UPDATE_OBJECT = (
    "UPDATE objects SET revision = ?, data = ? "
    "WHERE grp = ? AND resource = ? AND namespace = ? AND name = ?"
)
_DELETE_OBJECT = "DELETE FROM objects WHERE grp = ? AND resource = ? AND namespace = ? AND name = ?"
_INSERT_EVENT = (
    "INSERT INTO events (revision, type, grp, resource, namespace, name, data, prev) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_TRIM_EVENTS = "DELETE FROM events WHERE revision <= ?"


class AlreadyExists(StoreError):
    """Create of a name that is taken (HTTP 409 AlreadyExists)."""


class NotFound(StoreError):
    """Update or delete of an object that does not exist (HTTP 404)."""


class Conflict(StoreError):
    """The caller's resourceVersion is not the stored one: it read a stale copy (HTTP 409)."""


# The current state of one object: its revision and its canonical bytes.
_Entry = tuple[int, bytes]


class Store:
    """Objects, the global revision and the watch history; see the module docstring.

    Not thread-safe: it belongs to the event loop thread of the API server, and its methods
    return without awaiting, so a read-check-write in one handler is atomic.
    """

    def __init__(self, path: Path, *, history: int = 100_000) -> None:
        """Open or create the database at `path`; `history` is how many events watches can
        resume from (each is held in memory as its object's bytes)."""
        if history < 1:
            raise ValueError("history must keep at least one event (it carries the revision)")
        self._size = history
        self._margin = max(1, history // 10)
        self._closed = False
        self._keys: dict[ResourceKey, ResourceKey] = {}
        self._objects: dict[ResourceKey, dict[str, dict[str, _Entry]]] = {}
        self._lock = _lock(path.with_name(path.name + ".lock"))
        db = None
        try:
            # The only other connection is the checkpointer's, which never takes the write
            # lock; the timeout is a safety net, not an expected wait.
            self._db = db = sqlite3.connect(path, isolation_level=None, timeout=1.0)
            self._history = self._load()
        except BaseException as e:
            if db is not None:
                db.close()
            os.close(self._lock)
            if isinstance(e, sqlite3.Error):
                raise StoreError(f"cannot open {path}: {e}") from e
            raise
        self._checkpointer = _Checkpointer(path)
        log.info(
            "store_opened",
            path=str(path),
            revision=self._history.revision,
            oldest=self._history.oldest,
            objects=sum(len(names) for nss in self._objects.values() for names in nss.values()),
        )

    def _load(self) -> _History:
        """Set the journal up, make the schema, and read objects and recent events back."""
        db = self._db
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        # The checkpointer thread copies the WAL back; this connection checkpointing on its own
        # would fsync in the event loop's thread. Left on as a backstop, far above _WAL_LIMIT.
        db.execute(f"PRAGMA wal_autocheckpoint = {8 * _WAL_LIMIT}")
        db.executescript(_SCHEMA)
        if "prev" not in {row[1] for row in db.execute("PRAGMA table_info(events)").fetchall()}:
            db.execute(_ADD_PREV)
        revision = 0
        for grp, resource, namespace, name, rev, data in db.execute(
            "SELECT grp, resource, namespace, name, revision, data FROM objects"
        ):
            key = self._intern(ResourceKey(grp, resource))
            self._objects.setdefault(key, {}).setdefault(namespace, {})[name] = (rev, data)
            revision = max(revision, rev)
        # The newest event is never trimmed, so the revision survives deletes and restarts.
        # fetchall, never fetchone: a statement left unfinished holds a read snapshot, and while
        # any connection holds one the WAL cannot start over.
        ((newest,),) = db.execute("SELECT MAX(revision) FROM events").fetchall()
        revision = max(revision, newest or 0)
        rows = db.execute(
            "SELECT revision, type, grp, resource, namespace, name, data, prev FROM events "
            "WHERE revision > ? ORDER BY revision",
            (revision - self._size - self._margin,),
        ).fetchall()
        return _History(self._size, revision=revision, events=self._previous_states(rows))

    def _previous_states(self, rows: list[tuple[Any, ...]]) -> list[Event]:
        """The loaded events, in order, with each MODIFIED one's previous state taken from the
        object's event before it where the row has none (it was near enough), and shared with
        it where the bytes are the same (as they were in memory before the restart). The
        History keeps only the window; the margin's rows were read for their states."""
        last: dict[tuple[ResourceKey, str, str], bytes] = {}
        events = []
        for rev, type_, grp, resource, namespace, name, data, kept in rows:
            key = self._intern(ResourceKey(grp, resource))
            ident = (key, namespace, name)
            before = last.get(ident)
            prev = before if type_ == "MODIFIED" and kept in (None, before) else kept
            events.append(Event(type_, rev, key, namespace, name, data, prev))
            last[ident] = data
        return events

    @property
    def revision(self) -> int:
        """The revision of the last write: what a list taken now is consistent with."""
        return self._history.revision

    @property
    def oldest(self) -> int:
        """The oldest revision still in the history; a watch needs `since >= oldest - 1`."""
        return self._history.oldest

    def get(self, key: ResourceKey, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as a new dict, or None; namespace is "" for cluster-scoped objects."""
        entry = self._objects.get(key, {}).get(namespace, {}).get(name)
        return None if entry is None else _parse(entry[1])

    def resources(self) -> list[ResourceKey]:
        """The resources that have stored objects."""
        return [key for key, by_namespace in self._objects.items() if by_namespace]

    def list(self, key: ResourceKey, namespace: str | None) -> tuple[list[dict[str, Any]], int]:
        """Objects of `key` in `namespace` (None: all), sorted by (namespace, name), and the
        revision they are consistent with, from which a watch can continue without a gap."""
        by_namespace = self._objects.get(key, {})
        namespaces = sorted(by_namespace) if namespace is None else [namespace]
        items = [
            _parse(names[name][1])
            for ns in namespaces
            if (names := by_namespace.get(ns))
            for name in sorted(names)
        ]
        return items, self._history.revision

    def create(
        self, key: ResourceKey, namespace: str, name: str, obj: dict[str, Any]
    ) -> dict[str, Any]:
        """Store a new object; returns it with its resourceVersion. AlreadyExists if taken."""
        self._check_open()
        key = self._intern(key)
        if name in self._objects.get(key, {}).get(namespace, {}):
            raise AlreadyExists(f"{key} {_path(namespace, name)} already exists")
        revision = self._history.revision + 1
        raw = _encode(obj, revision)
        self._write(Event("ADDED", revision, key, namespace, name, raw))
        self._objects.setdefault(key, {}).setdefault(namespace, {})[name] = (revision, raw)
        return _parse(raw)

    def update(
        self,
        key: ResourceKey,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        *,
        expected: int | None,
    ) -> dict[str, Any]:
        """Replace an object; returns it with its new resourceVersion.

        `expected` is the resourceVersion the caller based the change on (None: unconditional);
        Conflict if another write came in between, NotFound if there is no such object. An
        update that changes nothing returns the stored object as it is, with no new revision.
        """
        self._check_open()
        key = self._intern(key)
        current, old = self._current(key, namespace, name, expected)
        if _encode(obj, current) == old:
            return _parse(old)
        revision = self._history.revision + 1
        raw = _encode(obj, revision)
        far = revision - current >= self._margin  # its previous write may leave the table
        self._write(Event("MODIFIED", revision, key, namespace, name, raw, old), keep_prev=far)
        self._objects[key][namespace][name] = (revision, raw)
        return _parse(raw)

    def delete(
        self, key: ResourceKey, namespace: str, name: str, *, expected: int | None = None
    ) -> dict[str, Any]:
        """Remove an object; returns its final state stamped with the deletion's revision (as
        the DELETED event carries it). NotFound, or Conflict when `expected` is stale."""
        self._check_open()
        key = self._intern(key)
        _, old = self._current(key, namespace, name, expected)
        revision = self._history.revision + 1
        raw = _encode(_parse(old), revision)
        self._write(Event("DELETED", revision, key, namespace, name, raw))
        names = self._objects[key][namespace]
        del names[name]
        if not names:
            del self._objects[key][namespace]
        return _parse(raw)

    def watch(self, key: ResourceKey | None, namespace: str | None, since: int) -> Watcher:
        """Events of `key` (None: every resource) in `namespace` (None: all) after `since`.

        Gone when events after `since` have already left the history. A `since` beyond the
        current revision waits for it, as etcd does.
        """
        self._check_open()
        return self._history.watch(None if key is None else self._intern(key), namespace, since)

    def close(self) -> None:
        """End every watch with Closed and close the database, releasing its lock."""
        if self._closed:
            return
        self._closed = True
        self._history.close()
        self._checkpointer.stop()
        self._db.close()  # checkpoints what is left and removes the WAL
        os.close(self._lock)

    def _check_open(self) -> None:
        if self._closed:
            raise Closed("the store is closed")

    def _intern(self, key: ResourceKey) -> ResourceKey:
        """One instance per key, so watchers filter events by identity."""
        return self._keys.setdefault(key, key)

    def _current(self, key: ResourceKey, namespace: str, name: str, expected: int | None) -> _Entry:
        entry = self._objects.get(key, {}).get(namespace, {}).get(name)
        if entry is None:
            raise NotFound(f"{key} {_path(namespace, name)} not found")
        if expected is not None and expected != entry[0]:
            raise Conflict(
                f"{key} {_path(namespace, name)}: the object has been modified "
                f"(resourceVersion {entry[0]}, not {expected}); read it again and retry"
            )
        return entry

    def _write(self, event: Event, *, keep_prev: bool = False) -> None:
        """Commit the object change and its event in one transaction, then publish the event;
        the previous state goes into the row only if `keep_prev`."""
        key, revision, raw = event.key, event.revision, event.raw
        where = (key.group, key.resource, event.namespace, event.name)
        change: str
        params: tuple[object, ...]
        if event.type == "ADDED":
            change, params = _INSERT_OBJECT, (*where, revision, raw)
        elif event.type == "MODIFIED":
            change, params = _UPDATE_OBJECT, (revision, raw, *where)
        else:
            change, params = _DELETE_OBJECT, where
        db = self._db
        try:
            db.execute("BEGIN")
            try:
                db.execute(change, params)
                prev = event.prev if keep_prev else None
                db.execute(_INSERT_EVENT, (revision, event.type, *where, raw, prev))
                if revision % _TRIM_EVERY == 0:
                    db.execute(_TRIM_EVENTS, (revision - self._size - self._margin,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # a failed COMMIT may have ended it already
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise StoreError(f"cannot write {key} {_path(event.namespace, event.name)}: {e}") from e
        self._history.append(event)
        if revision % _CHECKPOINT_EVERY == 0:
            if self._checkpointer.wal_pages > _WAL_LIMIT or self._checkpointer.starved():
                # Writes have not paused long enough for the thread's checkpoints to catch up,
                # or the thread has not run at all (a machine busy enough to starve it).
                # Copy what they left behind here (a few ms, once per _WAL_LIMIT pages of
                # steady writing), so the next write starts the WAL over.
                with contextlib.suppress(sqlite3.Error):
                    if _checkpoint(db) >= 0:  # -1: the thread's was running; next round
                        self._checkpointer.caught_up()
            self._checkpointer.request()


class _Checkpointer:
    """Copies the WAL back into the database from its own thread and connection.

    A PASSIVE checkpoint runs alongside the writer without blocking it, so the copying and its
    fsyncs cost the event loop nothing. But the WAL only starts over at a write that finds it
    wholly copied, so passes repeat until one finds nothing new: the writes paused, and the next
    one starts the WAL over. `wal_pages` reports its length, for the store to finish the job
    itself when writes never pause.
    """

    def __init__(self, path: Path) -> None:
        self.wal_pages = 0  # written here, read by the store: an int assignment is atomic
        # Checkpoints this thread has run, and what the store saw of that count at each of its
        # requests: a count that does not move means `wal_pages` is stale, however long it is.
        self._passes = 0
        self._seen = 0
        self._unanswered = 0
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(path,), name="store-checkpointer", daemon=True
        )
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def starved(self) -> bool:
        """True once `_STARVED_REQUESTS` requests in a row found that no checkpoint had run since
        the one before (the store's thread: only it calls `request` and this)."""
        passes = self._passes
        self._unanswered = self._unanswered + 1 if passes == self._seen else 0
        self._seen = passes
        return self._unanswered >= _STARVED_REQUESTS

    def caught_up(self) -> None:
        """The store copied the WAL back itself."""
        self.wal_pages = 0
        self._unanswered = 0

    def stop(self) -> None:
        self._stopping.set()
        self._wanted.set()
        self._thread.join()

    def _run(self, path: Path) -> None:
        with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
            while self._wanted.wait() and not self._stopping.is_set():
                self._wanted.clear()
                try:
                    self._catch_up(db)
                except sqlite3.Error as e:  # the WAL grows until the next one; nothing is lost
                    log.warning("store_checkpoint_failed", error=str(e))

    def _catch_up(self, db: sqlite3.Connection) -> None:
        last = -1
        while (pages := _checkpoint(db)) != last:
            self._passes += 1
            if pages >= 0:  # -1: the store's own checkpoint was running
                self.wal_pages = pages
            last = pages
            if self._stopping.wait(_RECHECK_SECONDS):
                return


def _checkpoint(db: sqlite3.Connection) -> int:
    """Copy what is committed in the WAL into the database; returns the WAL's length in pages.

    fetchall, never fetchone: a statement left unfinished holds a read snapshot, and while any
    connection holds one the WAL cannot start over.
    """
    ((_, pages, _),) = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    return int(pages)


def _lock(path: Path) -> int:
    """Hold an exclusive flock on `path` for the store's lifetime (released when the process
    dies, so a crash never leaves a stale lock). A separate file, because closing any
    descriptor of the database itself would drop SQLite's own POSIX locks."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise StoreError(f"cannot open {path}: {e}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(f"{path} is held: another API server uses this database") from None
    return fd


def _encode(obj: dict[str, Any], revision: int) -> bytes:
    """Canonical bytes of `obj` with its resourceVersion set, leaving the caller's dict alone."""
    metadata = obj.get("metadata") or {}
    stamped = {**obj, "metadata": {**metadata, "resourceVersion": str(revision)}}
    return _encoder.encode(stamped).encode()


def _parse(raw: bytes) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(raw)
    return parsed


def _path(namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name
