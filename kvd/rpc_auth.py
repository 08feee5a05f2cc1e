"""Bearer tokens on kvd's gRPC calls: the wire format and the caller's side.

A daemon's gRPC service (the handler's HandlerService today) accepts a call only when it carries
call metadata `authorization: Bearer <token>`, the token being a shared secret (a Secret mounted
into caller and callee; in the local cluster, a file `kvd local up` makes). This module is what
any caller needs — the controller, `kvdctl`, tests — so none of them imports the daemon it
calls: reading the token file, and a channel that attaches the token to every call. The check
itself stays with the service that makes it (`kvd.handler.auth`), as KubeVirt keeps a
contract's client with its caller and its server with its callee.

Call credentials (`grpc.access_token_call_credentials`) are only sent over TLS channels, so
the token is attached by a client interceptor (`authorized_channel`), which works over
plaintext and TLS alike.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import grpc

METADATA_KEY = "authorization"
SCHEME = "Bearer"


class TokenError(Exception):
    """The token file is missing, unreadable or empty."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def load_token(path: Path) -> str:
    """The token stored in `path` (e.g. a mounted Secret key), without surrounding whitespace."""
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        raise TokenError(f"token file {path} does not exist") from None
    except OSError as exc:
        raise TokenError(f"cannot read token file {path}: {exc.strerror or exc}") from None
    if not token:
        raise TokenError(f"token file {path} is empty")
    return token


def call_metadata(token: str) -> list[tuple[str, str]]:
    """Metadata to pass as `metadata=` on a call, for a caller that does not use
    `authorized_channel`."""
    return [(METADATA_KEY, f"{SCHEME} {token}")]


def authorized_channel(channel: grpc.Channel, token: str) -> grpc.Channel:
    """`channel` with the bearer token attached to every call made through it."""
    return grpc.intercept_channel(channel, BearerToken(token))


class _ClientCallDetails(grpc.ClientCallDetails):  # type: ignore[misc]  # grpc is untyped
    def __init__(self, details: grpc.ClientCallDetails, metadata: list[tuple[str, str]]) -> None:
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = details.wait_for_ready
        self.compression = details.compression


class BearerToken(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]  # grpc is untyped
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Client interceptor adding `authorization: Bearer <token>` to every call (replacing any
    `authorization` the call itself carries)."""

    def __init__(self, token: str) -> None:
        self._metadata = call_metadata(token)

    def _details(self, details: grpc.ClientCallDetails) -> _ClientCallDetails:
        others = [(k, v) for k, v in details.metadata or () if k != METADATA_KEY]
        return _ClientCallDetails(details, [*others, *self._metadata])

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)
