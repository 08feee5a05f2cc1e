"""Bearer-token authentication for HandlerService: the server's check.

The handler and its callers share one token (a Secret mounted into both): a caller sends it as
call metadata `authorization: Bearer <token>` (`kvd.rpc_auth`, the caller's side, which the
controller and `kvdctl` use without importing the handler), and `TokenInterceptor` checks every
call before a servicer sees it, comparing in constant time. A call that fails the check ends
with UNAUTHENTICATED and a message saying what was wrong with it (missing, malformed, or not
this handler's token); the token itself is never echoed or logged. Health checks are exempt so
that kubelet's gRPC probes, which cannot send metadata, still work; they reveal nothing.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from kvd import logs
from kvd.rpc_auth import METADATA_KEY, SCHEME

log = logs.get_logger(__name__)

# Methods callable without a token: the standard health service only.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)


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
