"""The local node's HTTP API for container logs and exec: the kubelet's :10250 API, on a socket.

The API server proxies `pods/log` and `pods/exec` here, as kube-apiserver does to the kubelet:

- `GET /containerLogs/{namespace}/{pod}/{container}?follow=&tailLines=&previous=&limitBytes=`
  streams the container attempt's log file (chunked). Follow ends once the attempt has ended and
  the file is drained, or when the client goes away. `timestamps`, `sinceSeconds` and `sinceTime`
  are refused (400): the runtime keeps raw bytes with no per-line time, and kvd never ignores an
  option silently.
- `GET /exec/{namespace}/{pod}/{container}?command=…&stdin=&stdout=&stderr=&tty=` upgrades to a
  WebSocket speaking Kubernetes' channel protocol (`exec_session`). A plain GET (no upgrade) only
  checks the container and answers 426 Upgrade Required: the API server uses that to report the
  node's own error when kubectl falls back to SPDY, which kvd does not speak.

It serves a unix socket (mode 0600, so only root reaches it; no TLS, no tokens) from one asyncio
loop. The node agent is thread-based, so `serve_in_thread` runs that loop in a thread of its own;
`KubeletAPI.start`/`stop` serve from a loop the caller already runs. The runtime is reached only
through `PodLocator`, which the node implements; its methods are called on the API's loop thread
and must be quick and thread-safe (look-ups, no waiting).

Errors are JSON `Status` objects with the code the kubelet would use; the same JSON is repeated
in the `Kvd-Status` header because an aiohttp WebSocket client sees a refused upgrade's headers,
never its body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from aiohttp import hdrs, web

from kvd import logs
from kvd.local.node import exec_session

SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes with the NUL

log = logs.get_logger(__name__)

STATUS_HEADER = "Kvd-Status"  # the API server's kvd/local/apiserver/kubelet.py reads it
CHUNK = 32 * 1024
FOLLOW_POLL_SECONDS = 0.1  # how often a followed log file is checked for growth


@dataclass(frozen=True)
class ContainerLog:
    path: Path  # the container attempt's log file (stdout+stderr, appended as written)
    running: Callable[[], bool]  # false once that attempt has ended


class ContainerUnavailable(Exception):
    """The container cannot serve this request; the message is phrased as the kubelet does
    (`container "c" in pod "p" is waiting to start: ContainerCreating`)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class PodLocator(Protocol):
    def container_log(
        self, namespace: str, pod: str, container: str | None, *, previous: bool
    ) -> ContainerLog: ...

    def container_pid(self, namespace: str, pod: str, container: str | None) -> int:
        """A process of the running container (its main pid)."""
        ...


class KubeletAPI:
    def __init__(self, locator: PodLocator) -> None:
        self.locator = locator
        self._runner: web.AppRunner | None = None
        self._socket: Path | None = None
        self._inode: int | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_route("*", "/exec/{namespace}/{pod}/{container}", self._exec)
        return app

    async def start(self, socket_path: Path) -> None:
        """Serve on `socket_path` (replacing a stale socket there) until `stop`."""
        sock = _bind(socket_path)
        self._socket, self._inode = socket_path, os.stat(socket_path).st_ino
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        log.info("kubelet_api_serving", socket=str(socket_path))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()  # ends open log streams and exec sessions too
            self._runner = None
        if self._socket is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self._socket).st_ino == self._inode:  # not a successor's socket
                    self._socket.unlink()
            self._socket = None

    # --- logs --------------------------------------------------------------------------------

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        q = request.query
        for option in ("timestamps", "sinceSeconds", "sinceTime"):
            if option in q and q[option] not in ("", "false", "0"):
                return _status(
                    400,
                    f"{option} is not supported by kvd's local node: it keeps each container's "
                    "output as raw bytes, without the time each line was written",
                )
        try:
            tail = _non_negative(q, "tailLines")
            limit = _non_negative(q, "limitBytes")
        except ValueError as exc:
            return _status(400, str(exc))
        try:
            source = self.locator.container_log(ns, pod, container, previous=_flag(q, "previous"))
        except ContainerUnavailable as exc:
            return _status(exc.status, exc.message)
        response = web.StreamResponse(headers={hdrs.CONTENT_TYPE: "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        with contextlib.suppress(ConnectionError):
            await _stream_log(
                request, response, source, tail=tail, limit=limit, follow=_flag(q, "follow")
            )
        return response

    # --- exec --------------------------------------------------------------------------------

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        try:
            options = exec_session.ExecOptions.from_query(request.query)
        except ValueError as exc:
            return _status(400, str(exc))
        try:
            pid = self.locator.container_pid(ns, pod, container)
        except ContainerUnavailable as exc:
            return _status(exc.status, exc.message)
        upgrade = request.headers.get(hdrs.UPGRADE, "").lower()
        if upgrade != "websocket":
            if upgrade.startswith("spdy"):
                return _status(400, exec_session.SPDY_MESSAGE)
            return _status(426, "Upgrade request required")
        offered = exec_session.offered_protocols(request)
        if not offered:
            return _status(
                400,
                "requested protocol(s) are not supported: "
                f"{request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, '')!r}; supports "
                f"{list(exec_session.PROTOCOLS)}",
            )
        return await exec_session.run(
            request, pid=pid, options=options, name=f"{ns}/{pod}/{container}"
        )


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_native_id()}")


def _bind(path: Path) -> socket.socket:
    """A listening unix socket at `path`, mode 0600 from the moment it is reachable: bound under
    a temporary name, restricted, then renamed over whatever stale socket is there."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = _temporary(path)
    if len(os.fsencode(temporary)) > SUN_PATH_MAX:
        raise OSError(
            f"the node API socket {path} is too long for a unix socket ({SUN_PATH_MAX} bytes, "
            "with room for a temporary name): use a shorter --data-dir"
        )
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(temporary))
        os.chmod(temporary, 0o600)
        sock.listen(128)
        os.rename(temporary, path)
    except BaseException:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    return sock


async def _stream_log(
    request: web.Request,
    response: web.StreamResponse,
    source: ContainerLog,
    *,
    tail: int | None,
    limit: int | None,
    follow: bool,
) -> None:
    left = limit
    file = _open(source.path)
    try:
        if file is not None and tail is not None:
            file.seek(_tail_offset(file, tail))
        while left is None or left > 0:
            # Ask before reading: whatever the attempt wrote before it ended is then read below.
            running = follow and source.running()
            if file is None:
                file = _open(source.path)  # a follower may come before the first write
            chunk = file.read(CHUNK if left is None else min(CHUNK, left)) if file else b""
            if chunk:
                await response.write(chunk)
                left = None if left is None else left - len(chunk)
                continue
            if not running or request.transport is None or request.transport.is_closing():
                break
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
    finally:
        if file is not None:
            file.close()
    await response.write_eof()


def _open(path: Path) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        return None


def _tail_offset(file: BinaryIO, lines: int) -> int:
    """Where the last `lines` lines start; a last line without its newline counts as one."""
    end = file.seek(0, os.SEEK_END)
    if lines == 0 or end == 0:
        return end
    file.seek(end - 1)
    # the newline that ends the last line does not start another
    stop = end - 1 if file.read(1) == b"\n" else end
    position, found = stop, 0
    while position > 0:
        size = min(CHUNK, position)
        position -= size
        file.seek(position)
        block = file.read(size)
        index = len(block)
        while (index := block.rfind(b"\n", 0, index)) >= 0:
            found += 1
            if found == lines:
                return position + index + 1
    return 0


def _flag(query: Any, name: str) -> bool:
    return str(query.get(name, "")).lower() in ("1", "true")


def _non_negative(query: Any, name: str) -> int | None:
    raw = query.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must be zero or more, got {value}")
    return value


def _status(code: int, message: str) -> web.Response:
    reason = {400: "BadRequest", 404: "NotFound", 426: "BadRequest"}.get(code, "InternalError")
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
    )
    return web.Response(
        status=code,
        text=body,
        content_type="application/json",
        headers={STATUS_HEADER: body},  # json.dumps escapes to ASCII on one line
    )


# --- running it in a thread of its own ------------------------------------------------------


class BackgroundKubeletAPI:
    """`KubeletAPI` on its own event loop in a daemon thread, for the thread-based node agent."""

    def __init__(self, socket_path: Path, locator: PodLocator) -> None:
        self.socket_path = socket_path
        self.api = KubeletAPI(locator)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="kubelet-api", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def start(self, *, timeout: float = 10) -> None:
        """Returns once the socket accepts connections; raises what binding raised."""
        if self._thread.is_alive():
            return
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self.api.start(self.socket_path), self._loop)
        try:
            started.result(timeout)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            raise

    def stop(self, *, timeout: float = 10) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.api.stop(), self._loop).result(timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._loop.close()

    def __enter__(self) -> BackgroundKubeletAPI:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def serve_in_thread(socket_path: Path, locator: PodLocator) -> BackgroundKubeletAPI:
    """Start serving now; call `.stop()` (or use it as a context manager) to end."""
    server = BackgroundKubeletAPI(socket_path, locator)
    server.start()
    return server
