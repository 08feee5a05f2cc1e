"""The aggregated API `subresources.kubevirt.io/v1`, served over HTTPS as KubeVirt's virt-api
serves it, so that a kubeconfig is all `kvdctl` (or an unmodified `virtctl`) needs.

Requests reach it proxied by the Kubernetes API server (an `APIService`), which has already
authenticated the user: `frontproxy` checks the proxy's client certificate and reads the user
from its headers. Then each path maps onto `operations.Operations`, the one implementation
ControllerService shares:

    PUT .../namespaces/NS/virtualmachines/NAME/start|stop|restart     → 202 Accepted
    PUT .../namespaces/NS/virtualmachineinstances/NAME/pause|unpause  → 202 Accepted
    GET .../namespaces/NS/virtualmachineinstances/NAME/console|vnc    → websocket upgrade

The PUT bodies are KubeVirt's StartOptions (`paused`, `dryRun`), StopOptions (`gracePeriod`,
`dryRun`), RestartOptions (`gracePeriodSeconds`, `dryRun`), Pause/UnpauseOptions (`dryRun`); an
empty body means the defaults. The streams use subprotocol `plain.kubevirt.io`: binary messages
carry the raw bytes both ways. A console opened here displaces an earlier writer, as virt-api's
does; `?replayBytes=N` also sends the last N bytes of the console log first. Discovery
(`/apis`, the group, the version's APIResourceList), `version` and `healthz` need no user, as
on virt-api. Failures are `metav1.Status` objects with kube-apiserver's reasons and codes.

Each connection's TLS context is built from the serving certificate files and the current
front-proxy CA, and reused until either changes.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import re
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from kvd import logs
from kvd.api import kinds
from kvd.controller import frontproxy, websocket
from kvd.controller.lifecycle import Kind, Refusal
from kvd.controller.operations import Operations, Stream
from kvd.kube.reviews import UserInfo
from kvd.version import kvd_version

log = logs.get_logger(__name__)

Json = dict[str, Any]
GROUP: Final = "subresources.kubevirt.io"
VERSION: Final = "v1"
PREFIX: Final = f"/apis/{GROUP}/{VERSION}"
PLAIN: Final = "plain.kubevirt.io"
HANDSHAKE_TIMEOUT: Final = 10.0
MAX_BODY: Final = 1 << 20
_OBJECT = re.compile(
    rf"^{re.escape(PREFIX)}/namespaces/([^/]+)/(virtualmachines|virtualmachineinstances)"
    r"/([^/]+)/([a-z]+)$"
)
HTTP_CODES: Final = {
    Kind.INVALID: 400,
    Kind.UNAUTHENTICATED: 401,
    Kind.FORBIDDEN: 403,
    Kind.NOT_FOUND: 404,
    Kind.CONFLICT: 409,
    Kind.ABORTED: 409,
    Kind.UNAVAILABLE: 503,
    Kind.INTERNAL: 500,
}
# (resource, subresource) → (HTTP method, its verb in discovery)
ACTIONS: Final = {
    (kinds.VM.plural, "start"): ("PUT", "update"),
    (kinds.VM.plural, "stop"): ("PUT", "update"),
    (kinds.VM.plural, "restart"): ("PUT", "update"),
    (kinds.VMI.plural, "pause"): ("PUT", "update"),
    (kinds.VMI.plural, "unpause"): ("PUT", "update"),
    (kinds.VMI.plural, "console"): ("GET", "get"),
    (kinds.VMI.plural, "vnc"): ("GET", "get"),
}


def status(code: int, reason: str, message: str) -> Json:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def discovery(path: str) -> Json | None:
    """The discovery document at `path`, if it is one."""
    version = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
    group = {"name": GROUP, "versions": [version], "preferredVersion": version}
    if path == "/apis":
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}
    if path == f"/apis/{GROUP}":
        return {"kind": "APIGroup", "apiVersion": "v1", **group}
    if path == PREFIX:
        resources = [
            {
                "name": f"{resource}/{sub}",
                "singularName": "",
                "namespaced": True,
                "kind": (kinds.VM if resource == kinds.VM.plural else kinds.VMI).kind,
                "verbs": [verb],
            }
            for (resource, sub), (_, verb) in ACTIONS.items()
        ]
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{GROUP}/{VERSION}",
            "resources": resources,
        }
    return None


def version_info() -> Json:
    """What `GET .../version` answers: Kubernetes' version.Info, as virt-api's."""
    return {
        "gitVersion": kvd_version(),
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": "",
        "compiler": "",
        "platform": f"{sys.platform}/{platform.machine()}",
        "implementation": f"kvd (Python {platform.python_version()})",
    }


def _grace(body: Json, key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refusal(Kind.INVALID, f"{key} must be an integer number of seconds, not {value!r}")
    return value


def _dry_run(body: Json) -> bool:
    value = body.get("dryRun") or []
    if not isinstance(value, list) or any(v != "All" for v in value):
        raise Refusal(Kind.INVALID, f'dryRun must be [] or ["All"], not {value!r}')
    return bool(value)


@dataclass(frozen=True)
class ServingFiles:
    cert_file: Path
    key_file: Path


class _Contexts:
    """The TLS server context for new connections: the serving pair, and the front-proxy CA
    as the only client CA (client certificates optional: discovery needs none)."""

    def __init__(self, files: ServingFiles, proxy: frontproxy.FrontProxy) -> None:
        self._files = files
        self._proxy = proxy
        self._lock = threading.Lock()
        self._made: tuple[tuple[Any, ...], ssl.SSLContext] | None = None

    def current(self) -> tuple[ssl.SSLContext, frontproxy.RequestHeaderConfig | None]:
        config = self._proxy.config()
        stamp = (
            os.stat(self._files.cert_file).st_mtime_ns,
            os.stat(self._files.key_file).st_mtime_ns,
            config.client_ca if config else None,
        )
        with self._lock:
            if self._made is None or self._made[0] != stamp:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.minimum_version = ssl.TLSVersion.TLSv1_2
                context.load_cert_chain(self._files.cert_file, self._files.key_file)
                if config is not None:
                    context.load_verify_locations(cadata=config.client_ca)
                    context.verify_mode = ssl.CERT_OPTIONAL
                self._made = (stamp, context)
            return self._made[1], config


class SubresourceServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        *,
        operations: Operations,
        contexts: _Contexts,
    ) -> None:
        self.operations = operations
        self.contexts = contexts
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        context, _ = self.contexts.current()
        return context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            request.do_handshake()
            request.settimeout(None)
        except (OSError, ssl.SSLError) as exc:
            log.debug("tls_handshake_failed", client=str(client_address), error=str(exc))
            return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("subresource_request_failed", client=str(client_address))


class _Handler(BaseHTTPRequestHandler):
    server: SubresourceServer
    protocol_version = "HTTP/1.1"
    server_version = "kvd-controller"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("subresource_request", line=format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        try:
            if method == "GET" and path in ("/healthz", f"{PREFIX}/healthz"):
                return self._send(200, b"ok", "text/plain")
            if method == "GET" and path == f"{PREFIX}/version":
                return self._json(200, version_info())
            found = discovery(path)
            if found is not None and method == "GET":
                return self._json(200, found)
            match = _OBJECT.match(path)
            if match is None or (match[2], match[4]) not in ACTIONS:
                return self._json(404, status(404, "NotFound", f"the server could not find {path}"))
            ns, resource, name, sub = match.groups()
            wanted = ACTIONS[(resource, sub)][0]
            if method != wanted:
                return self._json(
                    405,
                    status(
                        405, "MethodNotAllowed", f"{resource}/{sub} takes {wanted}, not {method}"
                    ),
                )
            user = self._user()
            if user is None:
                return None
            if method == "GET":
                return self._stream(user, ns, name, sub, parse_qs(url.query))
            body = self._body()
            self._act(user, ns, name, sub, body)
            self._send(202, b"", "application/json")
        except Refusal as refusal:
            code = HTTP_CODES[refusal.kind]
            self._json(code, status(code, refusal.kind.value, refusal.message))

    def _act(self, user: UserInfo, ns: str, name: str, sub: str, body: Json) -> None:
        ops, dry = self.server.operations, _dry_run(body)
        if sub == "start":
            ops.start(user, ns, name, paused=bool(body.get("paused")), dry_run=dry)
        elif sub == "stop":
            ops.stop(user, ns, name, grace_period=_grace(body, "gracePeriod"), dry_run=dry)
        elif sub == "restart":
            grace = _grace(body, "gracePeriodSeconds")
            ops.restart(user, ns, name, grace_period=grace, dry_run=dry)
        elif sub == "pause":
            ops.pause(user, ns, name, dry_run=dry)
        else:
            ops.unpause(user, ns, name, dry_run=dry)

    def _user(self) -> UserInfo | None:
        _, config = self.server.contexts.current()
        why = f"the front-proxy configuration ({frontproxy.NAMESPACE}/{frontproxy.NAME}) is missing"
        user = None
        if config is not None:
            peer = (
                self.connection.getpeercert()
                if isinstance(self.connection, ssl.SSLSocket)
                else None
            )
            user, why = frontproxy.proxied_user(config, peer, self.headers)
        if user is None:
            log.info("request_unauthenticated", path=self.path, reason=why)
            self._json(401, status(401, "Unauthorized", f"Unauthorized: {why}"))
        return user

    def _body(self) -> Json:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise Refusal(Kind.INVALID, f"the body is larger than {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise Refusal(Kind.INVALID, f"the body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise Refusal(Kind.INVALID, "the body must be a JSON object")
        return body

    # --- websocket streams ---------------------------------------------------------------------

    def _stream(
        self, user: UserInfo, ns: str, name: str, sub: str, query: dict[str, list[str]]
    ) -> None:
        try:
            answer = websocket.handshake(dict(self.headers.items()), (PLAIN,))
        except websocket.HandshakeError as exc:
            raise Refusal(Kind.INVALID, str(exc)) from None
        inputs: queue.Queue[bytes | None] = queue.Queue()
        feed = _drain(inputs)
        ops = self.server.operations
        if sub == "console":
            replay = _replay_bytes(query)
            stream = ops.console(
                user, ns, name, feed, mode="read-write", replay_bytes=replay, take_over=True
            )
        else:
            stream = ops.vnc(user, ns, name, feed)
        self.close_connection = True
        self.send_response(101)
        for header, value in answer.items():
            self.send_header(header, value)
        self.end_headers()
        self.wfile.flush()
        connection = websocket.Connection(self.rfile, self.wfile)  # type: ignore[arg-type]  # socket files
        reader = threading.Thread(
            target=_read_into, args=(connection, inputs, stream), name=f"ws-{sub}", daemon=True
        )
        reader.start()
        _pump(stream, connection, f"{ns}/{name}", sub)
        inputs.put(None)
        reader.join(timeout=2.0)

    def _json(self, code: int, body: Json) -> None:
        self._send(code, json.dumps(body).encode(), "application/json")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _replay_bytes(query: dict[str, list[str]]) -> int:
    raw = (query.get("replayBytes") or ["0"])[0]
    if not raw.isdigit():
        raise Refusal(Kind.INVALID, f"replayBytes must be a number of bytes, not {raw!r}")
    return int(raw)


def _drain(inputs: queue.Queue[bytes | None]) -> Iterator[bytes]:
    while (chunk := inputs.get()) is not None:
        yield chunk


def _read_into(
    connection: websocket.Connection, inputs: queue.Queue[bytes | None], stream: Stream
) -> None:
    """The client's messages into the stream until it closes; then the stream ends too."""
    try:
        while (message := connection.receive()) is not None:
            inputs.put(message)
    except websocket.ProtocolError as exc:
        connection.close(exc.code, str(exc))
    finally:
        inputs.put(None)
        stream.close()


def _pump(stream: Stream, connection: websocket.Connection, vmi: str, what: str) -> None:
    """The guest's bytes to the client until either side ends; the close says why."""
    try:
        for chunk in stream:
            if not connection.send(chunk):
                break
    except Refusal as refusal:
        log.info("stream_failed", vmi=vmi, stream=what, error=refusal.message)
        connection.close(websocket.INTERNAL_ERROR, refusal.message)
    else:
        connection.close(websocket.NORMAL)
    finally:
        stream.close()
    log.info("stream_closed", vmi=vmi, stream=what)


@dataclass
class RunningServer:
    server: SubresourceServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(
    *,
    address: str,
    operations: Operations,
    files: ServingFiles,
    proxy: frontproxy.FrontProxy,
) -> RunningServer:
    """Serve the aggregated API on `address` (`HOST:PORT`, port 0: any free one); started
    when this returns. Unusable serving files raise `OSError`/`ssl.SSLError` here."""
    host, _, port = address.rpartition(":")
    contexts = _Contexts(files, proxy)
    contexts.current()  # fail now, naming the files, rather than on the first connection
    server = SubresourceServer(
        (host.strip("[]") or "0.0.0.0", int(port)), operations=operations, contexts=contexts
    )
    thread = threading.Thread(target=server.serve_forever, name="subresources", daemon=True)
    thread.start()
    log.info("subresources_serving", address=address, port=server.server_address[1])
    return RunningServer(server, thread)
