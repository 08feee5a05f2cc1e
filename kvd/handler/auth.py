"""Who may call HandlerService: the controller's ServiceAccount, proven by a TokenReview.

A caller sends a Kubernetes bearer token issued for the handler's audience
(`rpc_auth.HANDLER_AUDIENCE`, a projected ServiceAccount token on a real cluster); the handler
has the API server review it for that audience (`kvd.kube.authenticator`, cached briefly), and
admits only the users it is configured with — the controller's ServiceAccount,
`system:serviceaccount:<kvd namespace>:kvd-controller`. End users never reach a node: they go
through the controller, which authorizes them against RBAC. So:

- no token, a malformed one, one the API server rejects (invalid, expired, revoked) or one for
  another audience (the API server's own, say): UNAUTHENTICATED;
- a valid token of anyone else: PERMISSION_DENIED, naming the user;
- the API server cannot be asked: UNAVAILABLE (the caller retries; nothing is admitted).

Messages say what was wrong, never the token. Health checks stay open, so that kubelet's gRPC
probes, which cannot send metadata, still work; they reveal nothing.

gRPC runs server interceptors on its polling thread, under its lock, so a TokenReview there
would stall every call: the interceptor only wraps the method's handler, and the check runs on
the call's own worker thread, before the servicer sees the call.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

import grpc

from kvd import logs, rpc_auth
from kvd.kube.reviews import UserInfo

log = logs.get_logger(__name__)

# Methods callable without a token: the standard health service only.
OPEN_METHOD_PREFIXES = ("/grpc.health.v1.Health/",)

Authenticate = Callable[[str], UserInfo]
"""token → its user (`TokenAuthenticator.authenticate`); raises AuthenticationError or
ApiError."""
Metadata = Iterable[tuple[str, str | bytes]] | None


class CallerCheck:
    """Decides, from a call's metadata, whether the caller may use HandlerService."""

    def __init__(self, authenticate: Authenticate, allowed_users: Collection[str]) -> None:
        if not allowed_users:
            raise ValueError("no user is allowed: HandlerService would refuse every caller")
        self._authenticate = authenticate
        self._allowed = frozenset(allowed_users)

    def check(self, metadata: Metadata) -> UserInfo:
        """The caller, when admitted; `rpc_auth.Refused` otherwise."""
        user = rpc_auth.caller(metadata, self._authenticate)
        if user.username not in self._allowed:
            only = ", ".join(f'"{u}"' for u in sorted(self._allowed))
            raise rpc_auth.Refused(
                grpc.StatusCode.PERMISSION_DENIED,
                f'User "{user.username}" cannot call HandlerService: only {only} may',
            )
        return user


class CallerInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Runs `check` on every call but the open ones, on the call's worker thread; a refused
    call ends with the refusal's code and message before any servicer runs."""

    def __init__(
        self,
        check: Callable[[Metadata], object],
        *,
        open_method_prefixes: tuple[str, ...] = OPEN_METHOD_PREFIXES,
    ) -> None:
        self._check = check
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
        metadata = handler_call_details.invocation_metadata

        def admit(context: grpc.ServicerContext) -> None:
            try:
                self._check(metadata)
            except rpc_auth.Refused as refused:
                log.info("call_refused", method=method, code=refused.code.name, reason=str(refused))
                context.abort(refused.code, refused.message)

        return _checked(handler, admit)


_SHAPES = {
    (False, False): (grpc.unary_unary_rpc_method_handler, "unary_unary"),
    (False, True): (grpc.unary_stream_rpc_method_handler, "unary_stream"),
    (True, False): (grpc.stream_unary_rpc_method_handler, "stream_unary"),
    (True, True): (grpc.stream_stream_rpc_method_handler, "stream_stream"),
}


def _checked(
    handler: grpc.RpcMethodHandler, admit: Callable[[grpc.ServicerContext], None]
) -> grpc.RpcMethodHandler:
    """`handler`, of the same shape, with `admit` run before its behaviour."""
    make, attribute = _SHAPES[(bool(handler.request_streaming), bool(handler.response_streaming))]
    behaviour = getattr(handler, attribute)

    def checked(request: Any, context: grpc.ServicerContext) -> Any:
        admit(context)  # aborts (raises) when refused
        return behaviour(request, context)

    return make(
        checked,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
