"""How this server reaches aggregated API servers: HTTPS, presenting the front-proxy client
certificate, verifying the backend against the APIService's caBundle as the name
`<service>.<namespace>.svc` (or not at all with insecureSkipTLSVerify), as kube-aggregator's
transport does. One aiohttp session serves every backend (made on first use, inside the
server's loop); TLS contexts are kept per (caBundle, insecure). Bodies pass through as they
are: no decompression, no redirects followed.
"""

from __future__ import annotations

import ssl

import aiohttp

from kvd.local.apiserver.aggregation.endpoints import Target
from kvd.local.apiserver.aggregation.frontproxy import FrontProxy

CONNECT_SECONDS = 5.0


class Transport:
    def __init__(self, front_proxy: FrontProxy) -> None:
        self.front_proxy = front_proxy
        self._session: aiohttp.ClientSession | None = None
        self._contexts: dict[tuple[bytes, bool], ssl.SSLContext] = {}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_SECONDS),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    def context(self, target: Target) -> ssl.SSLContext:
        key = (target.ca_bundle, target.insecure)
        context = self._contexts.get(key)
        if context is None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            if target.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            elif target.ca_bundle:
                # only the bundle: the system's roots must not vouch for a backend that has one
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.load_verify_locations(cadata=target.ca_bundle.decode(errors="replace"))
            context.load_cert_chain(self.front_proxy.cert, self.front_proxy.key)
            self._contexts[key] = context
        return context

    def url(self, target: Target, path_qs: str) -> str:
        return f"https://{target.authority}{path_qs}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
