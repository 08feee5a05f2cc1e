"""Bearer-token authentication for HandlerService, both ends.

The handler and the controller share one token (a Secret mounted into both): the controller
sends it as call metadata `authorization: Bearer <token>`, and `TokenInterceptor` checks every
call before a servicer sees it, comparing in constant time. A call that fails the check ends
with UNAUTHENTICATED and a message saying what was wrong with it (missing, malformed, or not
this handler's token); the token itself is never echoed or logged. Health checks are exempt so
that kubelet's gRPC probes, which cannot send metadata, still work; they reveal nothing.

Call credentials (`grpc.access_token_call_credentials`) are only sent over TLS channels, so
the client side attaches the header with a client interceptor (`authorized_channel`), which
works over plaintext and TLS alike.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

from kvd import logs

log = logs.get_logger(__name__)

METADATA_KEY = "authorization"
SCHEME = "Bearer"
# Methods callable without a token: the standard health service only.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)


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
    """Metadata to pass as `metadata=` on each call to a handler."""
    return [(METADATA_KEY, f"{SCHEME} {token}")]


def check(token: str, metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """Why a call with this metadata is not authenticated by `token`; None when it is."""
    values = [value for key, value in metadata or () if key == METADATA_KEY]
    if not values:
        return (
            f"missing credentials: the call has no `{METADATA_KEY}` metadata; "
            f"send `{METADATA_KEY}: {SCHEME} <token>`"
        )
    if len(values) > 1:
        return f"malformed credentials: the call has {len(values)} `{METADATA_KEY}` entries"
    value = values[0]
    header = value.decode(errors="replace") if isinstance(value, bytes) else value
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != SCHEME.lower() or not presented.strip():
        return f"malformed credentials: `{METADATA_KEY}` must be `{SCHEME} <token>`"
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        return "invalid credentials: the bearer token is not this handler's token"
    return None


class TokenInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Rejects, with UNAUTHENTICATED, every call that does not carry the expected token."""

    def __init__(
        self, token: str, *, open_method_prefixes: tuple[str, ...] = OPEN_METHOD_PREFIXES
    ) -> None:
        if not token:
            raise ValueError("an empty token would let anyone in")
        self._token = token
        self._open = open_method_prefixes

    def intercept_service(
        self,
        continuation: Callable[[Any], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        handler = continuation(handler_call_details)
        if handler is None or method.startswith(self._open):
            return handler
        problem = check(self._token, handler_call_details.invocation_metadata)
        if problem is None:
            return handler
        log.info("call_unauthenticated", method=method, reason=problem)
        return _refusal(handler, problem)


def _refusal(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that only aborts with UNAUTHENTICATED."""

    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    shapes = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = shapes[(bool(handler.request_streaming), bool(handler.response_streaming))]
    return make(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


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
    """Client interceptor adding `authorization: Bearer <token>` to every call."""

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


def authorized_channel(channel: grpc.Channel, token: str) -> grpc.Channel:
    """`channel` with the bearer token attached to every call made through it."""
    return grpc.intercept_channel(channel, BearerToken(token))
