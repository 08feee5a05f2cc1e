"""Proxying a request to the server behind an APIService, as kube-aggregator's proxy handler.

By the time a request gets here this server has authenticated it, audited it and authorized
it (RBAC, on the same attributes kube's RequestInfo gives, e.g. `get` on
`virtualmachineinstances/console` in `subresources.kubevirt.io`): kube-apiserver's filter
chain runs before its aggregator's handler, so a caller the backend would never hear of is
refused here. Then, unless the APIService is not Available (503 "service unavailable", kube's
plain-text answer), the request goes to a ready endpoint (`endpoints`) over `transport`, with:

- the caller's Authorization and any Impersonate-*, X-Remote-* headers it sent removed,
- `X-Remote-User`, one `X-Remote-Group` per group and `X-Remote-Extra-<key>` (key
  percent-escaped, as kube escapes it) per extra value, naming the user the request acts as,
- hop-by-hop headers dropped, the rest (Accept, Content-Type, …) and the body as sent.

The answer streams back as it comes, whatever its status. A backend that cannot be reached is
a 503 with the dial error. A WebSocket upgrade (virtctl's console and VNC: subprotocol
`plain.kubevirt.io`) is opened to the backend first with the offered subprotocols, so a
refusal reaches the client as the backend's own response; then the client's upgrade is
accepted with the protocol the backend chose and messages are relayed both ways until either
side closes (`kubelet.relay`). Other upgrades (SPDY) are refused.
"""

from __future__ import annotations

import ssl
import urllib.parse
from typing import Any

import aiohttp
from aiohttp import hdrs, web
from multidict import CIMultiDict

from kvd import logs
from kvd.local.apiserver import audit, auth, kubelet
from kvd.local.apiserver.aggregation import endpoints
from kvd.local.apiserver.aggregation.availability import available
from kvd.local.apiserver.aggregation.transport import Transport
from kvd.local.apiserver.registry import Registry
from kvd.local.apiserver.store import Store

log = logs.get_logger(__name__)

GROUP = "apiregistration.k8s.io"
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
STRIPPED_PREFIXES = ("impersonate-", "x-remote-", "audit-id")
WEBSOCKET_HEADERS = frozenset(
    h.lower()
    for h in (
        "Sec-WebSocket-Key",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions",
    )
)


class Proxy:
    def __init__(self, store: Store, registry: Registry, transport: Transport) -> None:
        self.store = store
        self.registry = registry
        self.transport = transport
        resource = registry.get(GROUP, "apiservices")
        assert resource is not None
        self._key = resource.key

    def apiservice(self, group: str, version: str) -> dict[str, Any] | None:
        """The APIService that sends `/apis/<group>/<version>` elsewhere, if one does."""
        found = self.store.get(self._key, "", f"{version}.{group}")
        if found is None or endpoints.service_ref(found) is None:
            return None
        return found

    async def handle(
        self, request: web.Request, apiservice: dict[str, Any], user: auth.User
    ) -> web.StreamResponse:
        if not available(apiservice):
            return _plain(503, "service unavailable")
        try:
            target = endpoints.resolve(self.store, self.registry, apiservice)
            context = self.transport.context(target)
        except endpoints.Unresolved as exc:
            log.info(
                "apiservice_unresolved", apiservice=apiservice["metadata"]["name"], why=exc.message
            )
            return _plain(503, "service unavailable")
        except (ssl.SSLError, ValueError) as exc:
            return _plain(503, f"invalid caBundle: {exc}")
        headers = forwarded_headers(request.headers, user)
        # the backend's audit events carry this request's id, as kube's proxy passes it on
        headers["Audit-ID"] = request.get(audit.AUDIT_ID, "")
        url = self.transport.url(target, request.rel_url.raw_path_qs)
        upgrade = request.headers.get(hdrs.UPGRADE, "")
        if upgrade:
            if upgrade.lower() != "websocket":
                return _plain(400, f"upgrading to {upgrade} is not supported: use websocket")
            return await self._websocket(request, url, headers, target, context)
        body = await request.read()
        try:
            backend = await self.transport.session().request(
                request.method,
                url,
                headers=headers,
                data=body if body else None,
                ssl=context,
                server_hostname=target.server_name,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError) as exc:
            return _unreachable(target, exc)
        try:
            return await _stream_back(request, backend)
        finally:
            backend.release()

    async def _websocket(
        self,
        request: web.Request,
        url: str,
        headers: CIMultiDict[str],
        target: endpoints.Target,
        context: ssl.SSLContext,
    ) -> web.StreamResponse:
        if request.method != "GET":
            return _plain(400, "a WebSocket upgrade must be a GET request")
        offered = [
            p.strip()
            for p in request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "").split(",")
            if p.strip()
        ]
        for name in list(headers):
            if name.lower() in WEBSOCKET_HEADERS:
                del headers[name]
        try:
            backend = await self.transport.session().ws_connect(
                url,
                protocols=offered,
                headers=headers,
                ssl=context,
                server_hostname=target.server_name,
                autoping=True,
                max_msg_size=0,
            )
        except aiohttp.WSServerHandshakeError as exc:
            return _plain(exc.status, exc.message or f"the backend answered {exc.status}")
        except (aiohttp.ClientError, OSError) as exc:
            return _unreachable(target, exc)
        try:
            client = web.WebSocketResponse(
                protocols=(backend.protocol,) if backend.protocol else (), max_msg_size=0
            )
            await client.prepare(request)
            await kubelet.relay(client, backend)
        finally:
            await backend.close()
        return client


def forwarded_headers(incoming: Any, user: auth.User) -> CIMultiDict[str]:
    """The request's headers as the backend gets them (see the module docstring)."""
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        lower = name.lower()
        if lower in HOP_BY_HOP or lower == "authorization" or lower.startswith(STRIPPED_PREFIXES):
            continue
        out.add(name, value)
    out.add("X-Remote-User", user.name)
    for group in user.groups:
        out.add("X-Remote-Group", group)
    for key, values in user.extra:
        for value in values:
            out.add("X-Remote-Extra-" + urllib.parse.quote(key, safe=""), value)
    return out


async def _stream_back(request: web.Request, backend: aiohttp.ClientResponse) -> web.StreamResponse:
    response = web.StreamResponse(status=backend.status, reason=backend.reason)
    for name, value in backend.headers.items():
        if name.lower() == "audit-id":
            continue  # this server answers with its own (the same, from a kube backend)
        if name.lower() not in HOP_BY_HOP or name.lower() == "content-length":
            response.headers.add(name, value)
    if hdrs.CONTENT_LENGTH not in response.headers:
        response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        async for chunk in backend.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
    except (ConnectionError, aiohttp.ClientPayloadError) as exc:
        log.info("aggregated_stream_ended", path=request.path, why=str(exc))
    return response


def _unreachable(target: endpoints.Target, exc: Exception) -> web.Response:
    why = getattr(exc, "os_error", None) or exc
    return _plain(503, f"dial tcp {target.authority}: {why}")


def _plain(status: int, text: str) -> web.Response:
    """Go's http.Error: the text and a newline, as text/plain."""
    return web.Response(
        status=status,
        text=text + "\n",
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )
