"""Plain HTTPS requests to a test server with its admin token: for what a typed client never
sends (hostile bodies, odd media types and methods) and what it hides (status codes, headers
such as ETag, Warning, Cache-Control, Location and Audit-Id, content negotiation, raw bodies)."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from tests.local.apiserver.conftest import Server


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage  # case-insensitive, and keeps repeated headers (get_all)
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def __iter__(self) -> Iterator[Any]:
        """`status, headers, body = request(...)`."""
        return iter((self.status, self.headers, self.body))


def token(server: Server) -> str:
    return (server.data_dir / "token").read_text().strip()


def context(server: Server) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.data_dir / "pki" / "ca.crt"))


def request(
    server: Server,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    content_type: str | None = "application/json",
    authenticated: bool = True,
    timeout: float = 30,
) -> Answer:
    """One request; redirects are not followed. A body goes as `content_type` unless `headers`
    name one; `content_type=None` sends none (http.client adds nothing of its own)."""
    sent = dict(headers or {})
    if authenticated:
        sent["Authorization"] = f"Bearer {token(server)}"
    named = any(k.lower() == "content-type" for k in sent)
    if content_type is not None and body is not None and not named:
        sent["Content-Type"] = content_type
    url = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPSConnection(
        url.hostname or "127.0.0.1", url.port, timeout=timeout, context=context(server)
    )
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()
