"""The aggregation layer as the API server holds it: one object wiring the front-proxy
credentials, the transport, the proxy and the availability controller (see the package's
docstring), with the few calls the server's routing makes."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from kvd.local.apiserver import auth, tls
from kvd.local.apiserver.aggregation import availability, discovery, frontproxy, proxy, transport
from kvd.local.apiserver.objects import Objects


class Aggregator:
    def __init__(self, objects: Objects, certificates: tls.Certificates) -> None:
        self.objects = objects
        self.front_proxy = frontproxy.FrontProxy(certificates.dir)
        self.transport = transport.Transport(self.front_proxy)
        self.proxy = proxy.Proxy(objects.store, objects.registry, self.transport)
        self.availability = availability.AvailabilityController(objects, self.transport)
        self._client_ca = certificates.ca_cert.read_bytes()

    def publish(self) -> None:
        """The front-proxy trust ConfigMap (kube-apiserver writes it at every start)."""
        data = frontproxy.authentication_data(self._client_ca, self.front_proxy)
        frontproxy.publish(self.objects, data)

    def apiservice(self, group: str, version: str) -> dict[str, Any] | None:
        return self.proxy.apiservice(group, version)

    async def handle(
        self, request: web.Request, apiservice: dict[str, Any], user: auth.User
    ) -> web.StreamResponse:
        return await self.proxy.handle(request, apiservice, user)

    def group_list(self, local: dict[str, Any]) -> dict[str, Any]:
        return discovery.merge_group_list(local, self.objects.store, self.objects.registry)

    def api_group(self, name: str) -> dict[str, Any] | None:
        return discovery.api_group(name, self.objects.store, self.objects.registry)

    async def run(self) -> None:
        await self.availability.run()

    async def close(self) -> None:
        await self.transport.close()
