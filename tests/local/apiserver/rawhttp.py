"""Plain HTTPS requests to a test server, for what the clients hide: status codes, headers
(ETag, Warning, Cache-Control, Location), content negotiation and raw bodies."""

from __future__ import annotations

import http.client
import ssl
from urllib.parse import urlsplit

from tests.local.apiserver.conftest import Server


def token(server: Server) -> str:
    return server.kubeconfig.read_text().split("token: ")[1].split()[0]


def request(
    server: Server,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """(status, headers, body) of one request; redirects are not followed."""
    url = urlsplit(server.url)
    context = ssl.create_default_context(cafile=str(server.data_dir / "pki" / "ca.crt"))
    conn = http.client.HTTPSConnection(url.hostname or "", url.port, context=context, timeout=30)
    try:
        conn.request(
            method,
            path,
            body=body,
            headers={"Authorization": f"Bearer {token(server)}", **(headers or {})},
        )
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()
