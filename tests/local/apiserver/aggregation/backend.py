"""A toy aggregated API server for the tests: HTTPS on loopback, in a thread of the test.

It trusts what a real backend trusts: the requestheader CA and allowed names it is given
(read by the test from `kube-system/extension-apiserver-authentication`), so a request whose
connection presents no client certificate chaining to that CA, or one with another name, is
refused with 401 before its X-Remote-* headers are believed. Every request it accepts is
recorded (`seen`) with the identity it got; it answers:

- `GET /apis/<GROUP>/v1`: an APIResourceList (a top-level resource and two subresources, as
  KubeVirt's virt-api lists `subresources.kubevirt.io/v1`);
- a WebSocket upgrade (`…/console`): accepts `plain.kubevirt.io`, echoes each message
  upper-cased, and closes when the client does;
- `…/stream`: three chunks, the last after the test sets `release`;
- anything else: a JSON echo of what it got (method, path, query, user, groups, extra, body,
  whether an Authorization header arrived, the Audit-ID).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

GROUP = "subresources.kubevirt.io"


def _resource(name: str, verb: str) -> dict[str, Any]:
    return {"name": name, "singularName": "", "namespaced": True, "kind": "", "verbs": [verb]}


RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": f"{GROUP}/v1",
    "resources": [
        _resource("expand-vm-spec", "update"),
        _resource("virtualmachineinstances/console", "get"),
        _resource("virtualmachines/start", "update"),
    ],
}


@dataclass
class Seen:
    method: str
    path: str
    user: str
    groups: list[str]
    extra: dict[str, list[str]]
    authorization: bool
    body: str
    client_cn: str
    audit_id: str


@dataclass
class Backend:
    cert: Path
    key: Path
    requestheader_ca: bytes
    allowed_names: list[str]
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    streamed: threading.Event = field(default_factory=threading.Event)  # `…/stream` ended
    port: int = 0
    refused: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    def start(self, port: int = 0) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._serve(port))
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, name="toy-backend", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the toy backend did not start"

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    async def _serve(self, port: int) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        context.load_verify_locations(cadata=self.requestheader_ca.decode())
        context.verify_mode = ssl.CERT_OPTIONAL  # the probe's and the proxy's, both must present
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        peer: Any = request.transport.get_extra_info("peercert") if request.transport else None
        names = [v for rdn in (peer or {}).get("subject", ()) for k, v in rdn if k == "commonName"]
        if not names or names[0] not in self.allowed_names:
            self.refused += 1
            return web.Response(status=401, text="no front-proxy client certificate")
        extra: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            if name.lower().startswith("x-remote-extra-"):
                extra.setdefault(name[len("X-Remote-Extra-") :].lower(), []).append(value)
        seen = Seen(
            request.method,
            request.path_qs,
            request.headers.get("X-Remote-User", ""),
            request.headers.getall("X-Remote-Group", []),
            extra,
            "Authorization" in request.headers,
            (await request.read()).decode(errors="replace"),
            names[0],
            request.headers.get("Audit-ID", ""),
        )
        self.seen.append(seen)
        if request.path == f"/apis/{GROUP}/v1":
            return web.json_response(RESOURCES)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse(protocols=("plain.kubevirt.io",))
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data.upper())
                elif msg.type == WSMsgType.TEXT:
                    await ws.send_str(msg.data.upper())
            return ws
        if request.path.endswith("/stream"):
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            await response.write(b"one\n")
            await response.write(b"two\n")
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 30)
            await response.write(b"three\n")
            await response.write_eof()
            self.streamed.set()
            return response
        return web.json_response(
            {
                "kind": "Echo",
                "method": seen.method,
                "path": seen.path,
                "user": seen.user,
                "groups": seen.groups,
                "extra": seen.extra,
                "authorization": seen.authorization,
                "body": seen.body,
                "auditID": seen.audit_id,
            },
            status=201 if request.method == "POST" else 200,
        )
