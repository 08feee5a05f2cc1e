"""One watch response: initial events, then live ones, as a chunked stream of JSON lines, or of
length-prefixed protobuf WatchEvent frames for a client that asked for protobuf.

What a watch sends, as kube-apiserver's watch cache sends it:

- From resourceVersion N (a number): every event after N, in order, as it happened; N older
  than the kept history ends the stream with an ERROR event holding a 410 `Expired` Status
  ("too old resource version"), which clients answer with a relist.
- With no resourceVersion, or "0": ADDED for every object there is now, then every change.
  `sendInitialEvents=true` (with `resourceVersionMatch=NotOlderThan`, the watch-list that
  client-go's reflectors use) does the same from any N; `sendInitialEvents=false` starts at now
  (or N) with no initial events. With `allowWatchBookmarks`, a watch that sent initial events
  ends them with a BOOKMARK annotated `k8s.io/initial-events-end`.
- Selectors are applied to both sides of each change (the store's events carry the object's
  state before it): an object that starts matching arrives as ADDED, one that stops as DELETED
  (its last matching state, with the event's resourceVersion), so a client's cache of "what
  matches" stays exact from any starting version.
- Bookmarks (when allowed) carry the revision the watch has read up to, once it has moved past
  what the client last saw, so a quiet watch resumes without replaying.

An object that cannot travel in protobuf (a value its message cannot hold) ends a protobuf
stream rather than go missing from it: the client relists, and a list falls back to JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from kvd import logs
from kvd.local.apiserver import errors, tables
from kvd.local.apiserver.errors import Cause
from kvd.local.apiserver.objects import Objects, Target
from kvd.local.apiserver.protobuf import convert, envelope
from kvd.local.apiserver.store import Closed, Event, Gone

log = logs.get_logger(__name__)

BOOKMARK_SECONDS = 10.0
# How long a watch-list from a resourceVersion not yet written waits for it (kube's cacher: 3 s),
# before a 504 tells the client to retry.
FRESHNESS_SECONDS = 3.0
NOT_OLDER_THAN = "NotOlderThan"
_TRUE = ("1", "true", "True")


class WatchStream:
    def __init__(
        self,
        objects: Objects,
        t: Target,
        query: Any,
        selected: Callable[[dict[str, Any]], bool],
        *,
        table: bool,
        protobuf: bool = False,
    ) -> None:
        self.objects, self.store, self.t = objects, objects.store, t
        self.selected = selected
        # with no selector every object matches, and the previous states need no parsing
        self.filtered = bool(query.get("labelSelector") or query.get("fieldSelector"))
        self.timeout = float(query.get("timeoutSeconds") or 0) or 1800.0
        self.bookmarks = query.get("allowWatchBookmarks") in _TRUE
        self.rv = query.get("resourceVersion") or ""
        self.initial_events = _initial_events(query, self.rv)
        self.include = query.get("includeObject", "Metadata")
        self.table = table
        self.defs, self.cells = tables.columns_for(t.resource, t.version)
        self.protobuf = protobuf
        self.sent = 0  # the revision the client has seen everything up to
        content_type = envelope.WATCH_MEDIA_TYPE if protobuf else "application/json"
        self.response = web.StreamResponse(headers={"Content-Type": content_type})

    async def serve(self, request: web.Request) -> web.StreamResponse:
        since = self._since()
        if self.initial_events and since is not None:
            await self._wait_fresh(since)
        self.response.enable_chunked_encoding()
        await self.response.prepare(request)
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError, _Unencodable):
            if self.initial_events:
                since = await self._initial()
            elif since is None:
                since = self.store.revision
            self.sent = since
            await self._live(since)
        with contextlib.suppress(ConnectionResetError):
            await self.response.write_eof()
        return self.response

    def _since(self) -> int | None:
        """The resourceVersion asked for; None for "" and "0" (now, or any: the same here)."""
        if self.rv in ("", "0"):
            return None
        try:
            since = int(self.rv)
        except ValueError:
            raise errors.bad_request(f"invalid resourceVersion {self.rv!r}") from None
        if since < 0:
            raise errors.bad_request(f"invalid resourceVersion {self.rv!r}")
        return since

    async def _wait_fresh(self, since: int) -> None:
        """A watch-list promises state not older than `since`: wait a little for a revision
        not written yet, as kube's cacher waits for its cache, then give up with its 504."""
        if since <= self.store.revision:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FRESHNESS_SECONDS
        while self.store.revision < since and (left := deadline - loop.time()) > 0:
            waiter = self.store.watch(None, None, self.store.revision)
            try:
                await waiter.next(timeout=left)  # any write: look at the revision again
            except (Gone, Closed):
                break  # a flood of writes, or the server stopping: look once more, no longer
            finally:
                waiter.close()
        if self.store.revision < since:
            raise errors.APIError(
                504,
                "Timeout",
                f"Timeout: Too large resource version: {since}, current: {self.store.revision}",
                causes=[Cause("ResourceVersionTooLarge", "Too large resource version", "")],
                retry_after_seconds=1,
            )

    async def _initial(self) -> int:
        """ADDED for every matching object now; returns the revision they are current at."""
        items, revision = self.store.list(self.t.resource.key, self.t.namespace or None)
        for obj in items:
            if self.selected(obj):
                await self._send("ADDED", obj)
        if self.bookmarks:
            await self._bookmark(revision, end_of_initial=True)
        return revision

    async def _live(self, since: int) -> None:
        try:
            watcher = self.store.watch(self.t.resource.key, self.t.namespace or None, since)
        except Gone as exc:
            await self._expired(since, exc.oldest)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        try:
            while (remaining := deadline - loop.time()) > 0:
                wait = min(remaining, BOOKMARK_SECONDS) if self.bookmarks else remaining
                try:
                    event = await watcher.next(timeout=wait)
                except Gone as exc:
                    await self._expired(watcher.revision, exc.oldest)
                    return
                except Closed:
                    return  # the server is shutting down
                if event is None:
                    if self.bookmarks and watcher.revision > self.sent:
                        await self._bookmark(watcher.revision)
                    continue
                await self._deliver(event)
        finally:
            watcher.close()

    async def _deliver(self, event: Event) -> None:
        """The event as this watch sees it through its selectors (kube's cacheWatcher):
        matching after and before → MODIFIED, only after → ADDED, only before → DELETED."""
        if not self.filtered:
            await self._send(event.type, event.object)
            return
        now = event.object if event.type != "DELETED" else None
        before = event.previous
        matches_now = now is not None and self.selected(now)
        matched_before = before is not None and self.selected(before)
        if matches_now and now is not None:
            await self._send("MODIFIED" if matched_before else "ADDED", now)
        elif matched_before and before is not None:
            # its last matching state, at the revision where it stopped matching
            before["metadata"]["resourceVersion"] = str(event.revision)
            await self._send("DELETED", before)

    async def _expired(self, since: int, oldest: int) -> None:
        status = errors.gone(f"too old resource version: {since} ({oldest - 1})").status()
        await self._write("ERROR", status)

    async def _bookmark(self, revision: int, *, end_of_initial: bool = False) -> None:
        metadata: dict[str, Any] = {"resourceVersion": str(revision)}
        if end_of_initial:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        r = self.t.resource
        self.sent = max(self.sent, revision)
        await self._write(
            "BOOKMARK",
            {"kind": r.kind, "apiVersion": r.api_version(self.t.version), "metadata": metadata},
        )

    async def _send(self, kind: str, stored: dict[str, Any]) -> None:
        obj = self.objects.present(self.t, stored)
        self.sent = max(self.sent, int(obj["metadata"]["resourceVersion"]))
        if self.table:
            obj = {
                "kind": "Table",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "columnDefinitions": self.defs,
                "rows": [tables.row(obj, self.cells, include=self.include)],
            }
        await self._write(kind, obj)

    async def _write(self, kind: str, obj: dict[str, Any]) -> None:
        if not self.protobuf:
            await self.response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
            return
        try:
            frame = envelope.watch_frame(kind, obj)
        except convert.ConversionError as exc:
            log.warning("watch_ended_unencodable_object", kind=obj.get("kind"), error=str(exc))
            raise _Unencodable from None
        assert frame is not None  # the stream is protobuf only for kinds that have a message
        await self.response.write(frame)


def _initial_events(query: Any, rv: str) -> bool:
    """Whether the watch starts with the current state, after checking the options as
    kube-apiserver's ListOptions validation does (422 for a combination it refuses).

    Unset, it defaults as kube's does: initial events for "" and "0", none from a version."""
    wanted = query.get("sendInitialEvents")
    match = query.get("resourceVersionMatch") or ""
    causes: list[Cause] = []
    field = "resourceVersionMatch"
    if wanted is not None and match != NOT_OLDER_THAN:
        causes.append(
            Cause(
                "FieldValueForbidden",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to "
                + NOT_OLDER_THAN,
                field,
            )
        )
    if match:
        if wanted is None:
            causes.append(
                Cause(
                    "FieldValueForbidden",
                    "Forbidden: resourceVersionMatch is forbidden for watch unless "
                    "sendInitialEvents is provided",
                    field,
                )
            )
        if match != NOT_OLDER_THAN:
            causes.append(
                Cause(
                    "FieldValueNotSupported",
                    f'Unsupported value: "{match}": supported values: "{NOT_OLDER_THAN}"',
                    field,
                )
            )
        if query.get("continue"):
            causes.append(
                Cause(
                    "FieldValueForbidden",
                    "Forbidden: resourceVersionMatch is forbidden when continue is provided",
                    field,
                )
            )
    if causes:
        raise errors.invalid("meta.k8s.io", "ListOptions", "", causes)
    if wanted is None:
        return rv in ("", "0")
    return bool(wanted in _TRUE)


class _Unencodable(Exception):
    """An event whose object has no protobuf form: the stream ends there."""
