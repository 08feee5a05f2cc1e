"""Requests counted as kube-apiserver counts them: `apiserver_request_total` by verb, group,
version, resource, subresource and code, served on `GET /metrics` (authenticated, as there).

So `kubectl get --raw /metrics` answers "how many writes did that take" for the local cluster
the way it does for a real one; `bench/controller.py` reads it. Only resource requests are
counted (discovery, OpenAPI and health checks are not), with kube's verbs: a GET is `get`,
`list` or `watch`, a DELETE of a collection is `deletecollection`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Request(NamedTuple):
    verb: str
    group: str
    version: str
    resource: str
    subresource: str


def classify(method: str, path: str, query: Mapping[str, str]) -> Request | None:
    """The request as kube-apiserver's metrics name it; None when it is not about a resource."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        rest = rest[2:]  # namespaced: /namespaces/<ns>/<resource>[/<name>[/<sub>]]
    resource = rest[0]
    named = len(rest) >= 2
    subresource = rest[2] if len(rest) >= 3 else ""
    if method == "GET":
        watching = query.get("watch", "").lower() in ("1", "true")
        verb = "watch" if watching else ("get" if named else "list")
    elif method == "DELETE":
        verb = "delete" if named else "deletecollection"
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())
    return Request(verb, group, version, resource, subresource)


class Accounting:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.total = Counter(
            "apiserver_request",
            "Requests by verb, group, version, resource, subresource and HTTP code.",
            ["verb", "group", "version", "resource", "subresource", "code"],
            registry=self.registry,
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        seen = classify(request.method, request.path, request.query)
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        finally:
            if seen is not None:
                self.total.labels(*seen, str(code)).inc()

    def response(self) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
