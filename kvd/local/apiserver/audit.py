"""Audit ids and the audit log: one JSON line per request, as kube-apiserver writes with
`--audit-log-path`.

Every request gets an id (`AUDIT_ID`), answered in the `Audit-Id` header as kube-apiserver does
(a client's own well-formed `Audit-ID` is kept); the log's events and the server's failure
lines carry it.

Events are `audit.k8s.io/v1` Events at level `Metadata` (who, which verb on which object, the
answer's code; never a body), so the tools that read kube's audit logs read this one. A request
gets a `ResponseComplete` event when it ends; one that streams (watch, follow, exec) also gets a
`ResponseStarted` event when its headers go out, so a watch still open when the log is read is
in it. As in kube's log, `user` is who authenticated, and `impersonatedUser` whom the request
acted as when it impersonated someone.

The file is rotated as kube's `--audit-log-maxsize`/`--audit-log-maxbackup` do: past `max_bytes`
it becomes `<path>.1` (older ones shift up to `<path>.<max_backups>`, the oldest is dropped), so a
local cluster left running for weeks does not fill the disk with Lease renewals.

What reads it: `tests/e2e/test_daemon_roles.py` derives each daemon's API calls from the log of
an e2e run and compares them with the daemon's ClusterRole.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import threading
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from kvd.local.apiserver import accounting, auth

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AUDIT_ID = web.RequestKey("kvd.audit_id", str)
_WELL_FORMED_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,254}[A-Za-z0-9])?")
LONG_RUNNING = frozenset({"watch", "log", "exec", "attach", "portforward", "proxy"})
RECEIVED = web.RequestKey("kvd.audit_received", str)
STARTED = web.RequestKey("kvd.audit_started", bool)


@web.middleware
async def id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get("Audit-ID", "")
    request[AUDIT_ID] = given if _WELL_FORMED_ID.fullmatch(given) else str(uuid.uuid4())
    return await handler(request)


async def send_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every response carries its request's id, errors and streams included."""
    if "Audit-Id" not in response.headers:
        response.headers["Audit-Id"] = request.get(AUDIT_ID) or str(uuid.uuid4())


class AuditLog:
    """Appends events to `path` (mode 0600: the log names every user and object)."""

    def __init__(
        self,
        path: Path,
        *,
        user: web.RequestKey[auth.User],
        caller: web.RequestKey[auth.User] | None = None,
        max_bytes: int = 100 * 2**20,
        max_backups: int = 1,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._max_bytes = max_bytes
        self._max_backups = max_backups
        self._file = self._open()
        self._lock = threading.Lock()
        self._user = user
        self._caller = caller

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request[RECEIVED] = _now()
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        finally:
            self._write(request, "ResponseComplete", code)

    async def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """A long-running request is in the log from the moment it is answered."""
        if RECEIVED in request and _long_running(request) and not request.get(STARTED):
            request[STARTED] = True
            self._write(request, "ResponseStarted", response.status)

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def _open(self) -> IO[str]:
        return open(self.path, "a", encoding="utf-8", buffering=1, opener=_private)

    def _write(self, request: web.Request, stage: str, code: int) -> None:
        line = json.dumps(self.event(request, stage, code), separators=(",", ":"))
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line + "\n")
            if self._file.tell() >= self._max_bytes:
                self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        for n in range(self._max_backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self._max_backups > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self._file = self._open()

    def event(self, request: web.Request, stage: str, code: int) -> dict[str, Any]:
        user = request.get(self._user)
        caller = request.get(self._caller) if self._caller is not None else None
        seen = accounting.classify(request.method, request.path, request.query)
        event: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": request.get(AUDIT_ID, ""),
            "stage": stage,
            "requestURI": request.path_qs,
            "verb": seen.verb if seen else request.method.lower(),
            "user": _user(caller or user),
            "sourceIPs": [request.remote] if request.remote else [],
            "userAgent": request.headers.get("User-Agent", ""),
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": request.get(RECEIVED, ""),
            "stageTimestamp": _now(),
        }
        if caller is not None and user is not None and caller != user:
            event["impersonatedUser"] = _user(user)
        if seen is not None:
            event["objectRef"] = _object_ref(request.path, seen)
        return event


def _object_ref(path: str, seen: accounting.Request) -> dict[str, str]:
    parts = [p for p in path.split("/") if p]
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    ref = {"resource": seen.resource, "apiGroup": seen.group, "apiVersion": seen.version}
    if rest[0] == "namespaces" and len(rest) >= 2:
        if seen.resource == "namespaces":
            ref["name"] = rest[1]
        else:
            ref["namespace"] = rest[1]
            if len(rest) >= 4:
                ref["name"] = rest[3]
    elif len(rest) >= 2:
        ref["name"] = rest[1]
    if seen.subresource:
        ref["subresource"] = seen.subresource
    return ref


def _user(user: auth.User | None) -> dict[str, Any]:
    if user is None:
        return {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
    out: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        out["uid"] = user.uid
    return out


def _long_running(request: web.Request) -> bool:
    seen = accounting.classify(request.method, request.path, request.query)
    if seen is None:
        return False
    return (
        seen.verb in LONG_RUNNING
        or seen.subresource in LONG_RUNNING
        or (seen.subresource == "log" and request.query.get("follow") in ("true", "1"))
    )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
