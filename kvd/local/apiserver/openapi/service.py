"""Serving /openapi/v2 and /openapi/v3 the way kube-openapi's handlers do, so clients can cache.

- Documents are rendered once per state of the registry (a CRD added, changed or removed moves
  its `revision`) and kept as bytes, with their gzip form and their ETag: the upper-case hex
  SHA-512 of the JSON document, quoted in the `ETag` header. `If-None-Match` with that value
  answers 304 without a body.
- /openapi/v2 is negotiated on `Accept`: JSON, or gnostic's protobuf
  (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, answered with the
  `...spec.v2.v1.0+protobuf` content type), 406 when neither is acceptable.
- /openapi/v3 lists every group-version with `serverRelativeURL` `/openapi/v3/<gv>?hash=<ETag>`.
  A request for a document with the current hash is marked `Cache-Control: public, immutable`
  (client-go then keeps it on disk); one with an old hash is redirected (301) to the current URL.
  Only the JSON form of 3.0 documents is served (kubectl asks for JSON).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from kvd.local.apiserver.errors import APIError
from kvd.local.apiserver.openapi import documents, gnostic
from kvd.local.apiserver.openapi.definitions import Definitions
from kvd.local.apiserver.registry import Registry

JSON = "application/json"
V2_PROTOBUF_ACCEPTED = (
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
)
V2_PROTOBUF = V2_PROTOBUF_ACCEPTED[1]


@dataclass(frozen=True)
class Body:
    data: bytes
    gzipped: bytes
    etag: str  # kube's: the SHA-512 of the JSON form, upper-case hex

    @classmethod
    def of(cls, data: bytes, etag: str) -> Body:
        return cls(data, gzip.compress(data, compresslevel=6, mtime=0), etag)


def _etag(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest().upper()


def _json_bytes(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class OpenAPIService:
    def __init__(self, registry: Registry, definitions: Callable[[], Definitions]) -> None:
        self.registry = registry
        self._definitions = definitions
        self._lock = threading.RLock()  # the index renders the documents it lists
        self._revision = -1
        self._cache: dict[str, Body | None] = {}
        self._modified = datetime.now(UTC)

    def _cached(self, key: str, make: Callable[[], Body | None]) -> Body | None:
        with self._lock:
            if self._revision != self.registry.revision:
                self._revision = self.registry.revision
                self._cache.clear()
                self._modified = datetime.now(UTC)
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

    # --- the documents -----------------------------------------------------------------------

    def v2_json(self) -> Body:
        def make() -> Body:
            data = _json_bytes(documents.v2_document(self.registry, self._definitions()))
            return Body.of(data, _etag(data))

        body = self._cached("v2", make)
        assert body is not None
        return body

    def v2_protobuf(self) -> Body:
        etag = self.v2_json().etag

        def make() -> Body:
            doc = documents.v2_document(self.registry, self._definitions())
            return Body.of(gnostic.document(doc), etag)

        body = self._cached("v2.pb", make)
        assert body is not None
        return body

    def v3_group_version(self, key: str) -> Body | None:
        """The document of `api/v1` or `apis/<group>/<version>`, None when not served."""
        parts = key.split("/")
        if parts[0] == "api" and len(parts) == 2:
            group, version = "", parts[1]
        elif parts[0] == "apis" and len(parts) == 3:
            group, version = parts[1], parts[2]
        else:
            return None

        def make() -> Body | None:
            doc = documents.v3_document(self.registry, group, version, self._definitions())
            if doc is None:
                return None
            data = _json_bytes(doc)
            return Body.of(data, _etag(data))

        return self._cached(f"v3:{key}", make)

    def v3_root(self) -> Body:
        def make() -> Body:
            paths = {}
            for group, versions in sorted(self.registry.group_versions().items()):
                for version in versions:
                    key = f"apis/{group}/{version}" if group else f"api/{version}"
                    body = self.v3_group_version(key)
                    if body is not None:
                        url = f"/openapi/v3/{key}?hash={body.etag}"
                        paths[key] = {"serverRelativeURL": url}
            data = _json_bytes({"paths": paths})
            return Body.of(data, _etag(data))

        body = self._cached("v3", make)
        assert body is not None
        return body

    # --- HTTP --------------------------------------------------------------------------------

    def handle(self, request: web.Request, parts: list[str]) -> web.StreamResponse:
        """GET /openapi/v2, /openapi/v3 and /openapi/v3/<group-version>."""
        if parts == ["openapi", "v2"]:
            return self._v2(request)
        if parts == ["openapi", "v3"]:
            return self._respond(request, self.v3_root(), JSON)
        if parts[:2] == ["openapi", "v3"]:
            key = "/".join(parts[2:])
            body = self.v3_group_version(key)
            if body is None:
                raise APIError(404, "NotFound", "the server could not find the requested resource")
            if not _acceptable(request, (JSON,)):
                raise web.HTTPNotAcceptable()
            wanted = request.query.get("hash")
            if wanted and wanted != body.etag:
                raise web.HTTPMovedPermanently(f"/openapi/v3/{key}?hash={body.etag}")
            extra = {}
            if wanted:
                expires = datetime.now(UTC) + timedelta(days=365)
                extra = {
                    "Cache-Control": "public, immutable",
                    "Expires": format_datetime(expires, usegmt=True),
                }
            return self._respond(request, body, JSON, extra)
        raise APIError(404, "NotFound", "the server could not find the requested resource")

    def _v2(self, request: web.Request) -> web.StreamResponse:
        choice = _negotiate(request, (JSON, *V2_PROTOBUF_ACCEPTED))
        if choice is None:
            raise web.HTTPNotAcceptable()
        if choice == JSON:
            return self._respond(request, self.v2_json(), JSON)
        return self._respond(request, self.v2_protobuf(), V2_PROTOBUF)

    def _respond(
        self,
        request: web.Request,
        body: Body,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        headers = {
            "ETag": f'"{body.etag}"',
            "Vary": "Accept",
            "Last-Modified": format_datetime(self._modified, usegmt=True),
            **(extra or {}),
        }
        if body.etag in _none_match(request):
            return web.Response(status=304, headers=headers)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=body.gzipped, content_type=content_type, headers=headers)
        return web.Response(body=body.data, content_type=content_type, headers=headers)


def _none_match(request: web.Request) -> set[str]:
    header = request.headers.get("If-None-Match", "")
    return {tag.strip().removeprefix("W/").strip('"') for tag in header.split(",") if tag.strip()}


def _clauses(request: web.Request) -> list[str]:
    """The Accept header's media ranges, most preferred first (q=0 ones dropped)."""
    ranked = []
    for index, clause in enumerate((request.headers.get("Accept") or "*/*").split(",")):
        media, *params = (p.strip() for p in clause.split(";"))
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media and q > 0:
            ranked.append((-q, index, media.lower()))
    return [media for _, _, media in sorted(ranked)]


def _negotiate(request: web.Request, offered: tuple[str, ...]) -> str | None:
    for media in _clauses(request):
        kind, _, sub = media.partition("/")
        for candidate in offered:
            ckind, _, csub = candidate.partition("/")
            if kind in (ckind, "*") and sub in (csub, "*"):
                return candidate
    return None


def _acceptable(request: web.Request, offered: tuple[str, ...]) -> bool:
    return _negotiate(request, offered) is not None
