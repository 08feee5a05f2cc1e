"""One watch response: initial events, then live ones, as a chunked stream of JSON lines, or of
length-prefixed protobuf WatchEvent frames for a client that asked for protobuf.

Selectors are applied as kube-apiserver applies them to watches: an object that starts
matching arrives as ADDED, one that stops matching as DELETED, so a client's cache of "what
matches" stays exact. Bookmarks (when allowed) carry the latest revision through quiet times;
the watch-list protocol (`sendInitialEvents=true`) ends its initial events with a bookmark
annotated `k8s.io/initial-events-end`. A revision older than the kept history ends the
stream with an ERROR event holding a 410 Status, which clients answer with a relist. An object
that cannot travel in protobuf (a value its message cannot hold) ends a protobuf stream rather
than go missing from it: the client relists, and a list falls back to JSON.
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
from kvd.local.apiserver.objects import Objects, Target
from kvd.local.apiserver.protobuf import convert, envelope
from kvd.local.apiserver.store import Closed, Event, Gone

log = logs.get_logger(__name__)

BOOKMARK_SECONDS = 10.0
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
        self.timeout = float(query.get("timeoutSeconds") or 0) or 1800.0
        self.bookmarks = query.get("allowWatchBookmarks") in _TRUE
        self.initial_events = query.get("sendInitialEvents") in _TRUE
        self.rv = query.get("resourceVersion") or ""
        self.include = query.get("includeObject", "Metadata")
        self.table = table
        self.defs, self.cells = tables.columns_for(t.resource, t.version)
        self.matched: set[tuple[str, str]] = set()
        self.protobuf = protobuf
        content_type = envelope.WATCH_MEDIA_TYPE if protobuf else "application/json"
        self.response = web.StreamResponse(headers={"Content-Type": content_type})

    async def serve(self, request: web.Request) -> web.StreamResponse:
        since = self._since()
        self.response.enable_chunked_encoding()
        await self.response.prepare(request)
        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError, _Unencodable):
            since = await self._initial(since)
            await self._live(since)
        with contextlib.suppress(ConnectionResetError):
            await self.response.write_eof()
        return self.response

    def _since(self) -> int | None:
        if self.rv in ("", "0") or self.initial_events:
            return None
        try:
            return int(self.rv)
        except ValueError:
            raise errors.bad_request(f"invalid resourceVersion {self.rv!r}") from None

    async def _initial(self, since: int | None) -> int:
        items, revision = self.store.list(self.t.resource.key, self.t.namespace or None)
        for obj in items:
            if self.selected(obj):
                self.matched.add(_key(obj))
                if since is None:
                    await self._send("ADDED", self.objects.present(self.t, obj))
        if self.initial_events:
            await self._bookmark(revision, end_of_initial=True)
        return revision if since is None else since

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
                    if self.bookmarks:
                        await self._bookmark(max(watcher.revision, since))
                    continue
                await self._deliver(event)
        finally:
            watcher.close()

    async def _deliver(self, event: Event) -> None:
        """The event as this watcher sees it through its selectors."""
        obj = self.objects.present(self.t, event.object)
        key = (event.namespace, event.name)
        was = key in self.matched
        now = event.type != "DELETED" and self.selected(obj)
        if now:
            self.matched.add(key)
            await self._send("MODIFIED" if was else "ADDED", obj)
        elif was:
            self.matched.discard(key)
            await self._send("DELETED", obj)

    async def _expired(self, since: int, oldest: int) -> None:
        status = errors.gone(f"too old resource version: {since} ({oldest})").status()
        await self._write("ERROR", status)

    async def _bookmark(self, revision: int, *, end_of_initial: bool = False) -> None:
        metadata: dict[str, Any] = {"resourceVersion": str(revision)}
        if end_of_initial:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        r = self.t.resource
        await self._write(
            "BOOKMARK",
            {"kind": r.kind, "apiVersion": r.api_version(self.t.version), "metadata": metadata},
        )

    async def _send(self, kind: str, obj: dict[str, Any]) -> None:
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


class _Unencodable(Exception):
    """An event whose object has no protobuf form: the stream ends there."""


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
