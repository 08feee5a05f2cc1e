"""The API server's client of the local node's API (kvd/local/node/kubelet_api.py), and the pod
checks kube-apiserver makes before it proxies `pods/log` and `pods/exec` to a kubelet.

The node serves a unix socket (`kvd local apiserver --kubelet-socket`); one aiohttp session with
a `UnixConnector` reaches it. Logs are streamed through as they come. Exec is relayed frame by
frame: the node's WebSocket is opened first, with the subprotocols the client offered, so a
refusal (container not running, …) reaches the client as an ordinary error response before its
own upgrade, with the node's message; then the client's upgrade is accepted with the protocol the
node chose, and messages are copied both ways verbatim until either side closes.

kubectl tries WebSocket first and falls back to SPDY when the upgrade fails. kvd speaks no SPDY:
that fallback gets the same checks (and the node's own verdict, through a plain GET the node
answers with 426 when the container is fine), so a real error still reads as itself, and
otherwise a message saying SPDY is not served.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import hdrs, web

from kvd import logs
from kvd.local.apiserver import errors
from kvd.local.apiserver.errors import APIError

log = logs.get_logger(__name__)

STATUS_HEADER = "Kvd-Status"  # the node repeats its error Status here (kubelet_api.py)
SPDY_MESSAGE = (
    "kvd's local API server serves exec over WebSocket only (v5.channel.k8s.io), not SPDY: use "
    "kubectl 1.30 or newer, and do not set KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false"
)
CLIENT_CHECK_SECONDS = 1.0  # how often an idle log stream checks that its client is still there
LOG_OPTIONS = (
    "follow",
    "tailLines",
    "previous",
    "timestamps",
    "limitBytes",
    "sinceSeconds",
    "sinceTime",
)


class Kubelet:
    """The node API on `socket_path`; sessions are made on first use, inside the server's loop."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=str(self.socket_path)),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- logs ----------------------------------------------------------------------------------

    async def logs(self, pod: dict[str, Any], query: Any) -> AsyncGenerator[bytes, None]:
        """The container's log as chunks; raises APIError for what is refused before any."""
        name = pod["metadata"]["name"]
        container = choose_container(pod, query.get("container"))
        if not (pod.get("spec") or {}).get("nodeName"):
            return _nothing()  # as kube-apiserver: an unscheduled pod has no logs yet
        params = {k: query[k] for k in LOG_OPTIONS if k in query}
        url = _url("containerLogs", pod, container, params)
        try:
            response = await self._client().get(url)
        except (aiohttp.ClientConnectorError, FileNotFoundError) as exc:
            raise errors.bad_request(
                f'logs of pod "{name}" are not available: no node serves them '
                f"(nothing answers on {self.socket_path}: {_why(exc)})"
            ) from None
        if response.status != 200:
            body = await response.text()
            response.release()
            raise _node_error(response.status, body)
        return _chunks(response)

    # --- exec ----------------------------------------------------------------------------------

    async def exec(self, request: web.Request, pod: dict[str, Any]) -> web.StreamResponse:
        container = check_exec(pod, request.query.get("container"))
        upgrade = request.headers.get(hdrs.UPGRADE, "").lower()
        if upgrade != "websocket":
            if not upgrade:
                raise errors.bad_request("Upgrade request required")
            await self._check_exec(request, pod, container)  # SPDY: report a real error first
            raise errors.bad_request(SPDY_MESSAGE)
        if request.method != "GET":
            raise errors.bad_request("a WebSocket upgrade must be a GET request")
        offered = [
            p.strip()
            for p in request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "").split(",")
            if p.strip()
        ]
        url = _url("exec", pod, container, _exec_params(request))
        try:
            node = await self._client().ws_connect(
                url, protocols=offered, autoping=True, max_msg_size=0
            )
        except aiohttp.WSServerHandshakeError as exc:
            refusal = exc.headers.get(STATUS_HEADER, "") if exc.headers is not None else ""
            raise _node_error(exc.status, refusal) from None
        except (aiohttp.ClientConnectorError, FileNotFoundError) as exc:
            raise self._unreachable(pod, exc) from None
        try:
            client = web.WebSocketResponse(
                protocols=(node.protocol,) if node.protocol else (), max_msg_size=0
            )
            await client.prepare(request)
            await relay(client, node)
        finally:
            await node.close()
        return client

    async def _check_exec(self, request: web.Request, pod: dict[str, Any], container: str) -> None:
        url = _url("exec", pod, container, _exec_params(request))
        try:
            async with self._client().get(url) as response:
                if response.status != 426:  # 426: the node would run it, given an upgrade
                    raise _node_error(response.status, await response.text())
        except (aiohttp.ClientConnectorError, FileNotFoundError) as exc:
            raise self._unreachable(pod, exc) from None

    def _unreachable(self, pod: dict[str, Any], exc: Exception) -> APIError:
        return errors.bad_request(
            f'unable to upgrade connection: no node serves pod "{pod["metadata"]["name"]}" '
            f"(nothing answers on {self.socket_path}: {_why(exc)})"
        )


# --- kube-apiserver's checks --------------------------------------------------------------------


def choose_container(pod: dict[str, Any], container: str | None) -> str:
    """The named container, which must exist; else the only one (as kube-apiserver)."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    names = [
        c.get("name", "")
        for key in ("initContainers", "containers", "ephemeralContainers")
        for c in spec.get(key) or []
    ]
    if container:
        if container not in names:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        return container
    main = spec.get("containers") or []
    if len(main) == 1:
        return str(main[0].get("name", ""))
    if not main:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    raise errors.bad_request(
        f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
    )


def check_exec(pod: dict[str, Any], container: str | None) -> str:
    chosen = choose_container(pod, container)
    name = pod["metadata"]["name"]
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise errors.bad_request(
            f"cannot exec into a container in a completed pod; current phase is {phase}"
        )
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    return chosen


# --- plumbing ------------------------------------------------------------------------------------


def _url(kind: str, pod: dict[str, Any], container: str, params: Any) -> str:
    quote = urllib.parse.quote
    meta = pod["metadata"]
    path = (
        f"/{kind}/{quote(meta['namespace'], '')}/{quote(meta['name'], '')}/{quote(container, '')}"
    )
    query = urllib.parse.urlencode(params, doseq=True)
    return f"http://localhost{path}" + (f"?{query}" if query else "")


def _exec_params(request: web.Request) -> list[tuple[str, str]]:
    keep = ("command", "stdin", "stdout", "stderr", "tty")
    return [(k, v) for k, v in request.query.items() if k in keep]


def _node_error(status: int, body: str) -> APIError:
    """The node's refusal as an API error, with the node's own message."""
    try:
        message = str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        message = body.strip() or f"the node answered {status}"
    if status == 404:
        return APIError(404, "NotFound", message)
    if status == 400:
        return errors.bad_request(message)
    return APIError(500, "InternalError", f"Internal error occurred: {message}")


def _why(exc: Exception) -> str:
    return str(getattr(exc, "os_error", None) or exc)


async def _nothing() -> AsyncGenerator[bytes, None]:
    return
    yield


async def _chunks(response: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    finally:
        response.release()


async def stream(request: web.Request, chunks: AsyncGenerator[bytes, None]) -> web.StreamResponse:
    """Send `chunks` as a chunked text/plain response. A client that goes away is noticed
    even while the log is idle (a follow), and closing `chunks` then ends the node's stream."""
    response = web.StreamResponse(headers={hdrs.CONTENT_TYPE: "text/plain"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        while True:
            following = asyncio.ensure_future(anext(chunks))
            while not following.done():
                await asyncio.wait({following}, timeout=CLIENT_CHECK_SECONDS)
                if not following.done() and _gone(request):
                    following.cancel()
                    await asyncio.wait({following})  # the generator is done with before aclose
                    return response
            try:
                chunk = following.result()
            except StopAsyncIteration:
                break
            await response.write(chunk)
        await response.write_eof()
    except ConnectionError:
        log.info("log_client_gone", path=request.path)
    finally:
        await chunks.aclose()
    return response


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


async def relay(client: web.WebSocketResponse, node: aiohttp.ClientWebSocketResponse) -> None:
    """Copy messages both ways until one side closes; then close the other with its code."""

    async def copy(
        source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
        sink: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    ) -> None:
        async for msg in source:
            if msg.type == aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                await sink.send_str(msg.data)
        await sink.close(code=source.close_code or aiohttp.WSCloseCode.OK)

    tasks = [asyncio.create_task(copy(client, node)), asyncio.create_task(copy(node, client))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
