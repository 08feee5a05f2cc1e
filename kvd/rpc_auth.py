"""Bearer tokens on kvd's gRPC calls: the wire format, the caller's side, and reading it back.

Every call to a kvd daemon's gRPC API (the handler's HandlerService, the controller's
ControllerService) carries call metadata `authorization: Bearer <token>`, the token being a
Kubernetes one: a user's from their kubeconfig, or a daemon's ServiceAccount token. The callee
has the API server review it (`kvd.kube.reviews`); the check and what it allows stay with each
service (`kvd.handler.auth`, `kvd.controller.service`), as KubeVirt keeps a contract's client
with its caller and its server with its callee. This module is what both sides share, so no
caller imports the daemon it calls:

- `authorized_channel`: a channel that attaches a token to every call. The token comes from a
  function, so a caller whose token rotates (a projected ServiceAccount token, `TokenFile`)
  sends the current one. A client interceptor, not `grpc.access_token_call_credentials`, so
  that the same code serves TLS channels and the unix sockets of tests.
- `bearer_token`: the token a call carries, or why it carries none usable; `caller`: who sent
  it, by the callee's authenticator (a cached TokenReview), or `Refused` with the status code
  the contracts give: UNAUTHENTICATED for no, bad, expired or wrong-audience credentials,
  UNAVAILABLE when the API server cannot be asked.

`HANDLER_AUDIENCE` is the audience a token for HandlerService must be issued for: the handler
accepts no other, so a token stolen from the controller's API client (or any user's) is useless
against a node, and a handler's token is useless against the API server.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc

from kvd.kube.authenticator import AuthenticationError
from kvd.kube.client import ApiError
from kvd.kube.reviews import UserInfo

METADATA_KEY = "authorization"
SCHEME = "Bearer"
HANDLER_AUDIENCE = "kvd-handler"


class TokenError(Exception):
    """The token file is missing, unreadable or empty."""


class CredentialsError(Exception):
    """A call carries no usable bearer token; the message says what is wrong, never the token."""


class Refused(Exception):
    """A call that may not proceed: the status code to end it with, and why."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def caller(
    metadata: Iterable[tuple[str, str | bytes]] | None, authenticate: Callable[[str], UserInfo]
) -> UserInfo:
    """Who sent a call with this metadata, by `authenticate` (`TokenAuthenticator`'s); Refused
    when no one can be told."""
    try:
        token = bearer_token(metadata)
    except CredentialsError as exc:
        raise Refused(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
    try:
        return authenticate(token)
    except AuthenticationError as exc:
        raise Refused(grpc.StatusCode.UNAUTHENTICATED, f"invalid credentials: {exc}") from None
    except ApiError as exc:
        raise Refused(
            grpc.StatusCode.UNAVAILABLE,
            f"cannot verify the credentials: the API server's TokenReview failed: {exc.message}",
        ) from None


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The bearer token in a call's metadata; CredentialsError when missing or malformed."""
    values = [value for key, value in metadata or () if key == METADATA_KEY]
    if not values:
        raise CredentialsError(
            f"missing credentials: the call has no `{METADATA_KEY}` metadata; "
            f"send `{METADATA_KEY}: {SCHEME} <token>`"
        )
    if len(values) > 1:
        raise CredentialsError(
            f"malformed credentials: the call has {len(values)} `{METADATA_KEY}` entries"
        )
    value = values[0]
    header = value.decode(errors="replace") if isinstance(value, bytes) else value
    scheme, _, token = header.partition(" ")
    if scheme.lower() != SCHEME.lower() or not token.strip():
        raise CredentialsError(
            f"malformed credentials: `{METADATA_KEY}` must be `{SCHEME} <token>`"
        )
    return token.strip()


class TokenFile:
    """A token kept in a file that is replaced as it rotates (a projected ServiceAccount token,
    which the kubelet swaps by symlink): read again whenever the file changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._token = ""

    def __call__(self) -> str:
        """The current token; TokenError when the file cannot be read or is empty."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            raise TokenError(f"token file {self.path} does not exist") from None
        except OSError as exc:
            raise TokenError(f"cannot read token file {self.path}: {exc.strerror or exc}") from None
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        with self._lock:
            if seen != self._seen:
                self._token = load_token(self.path)
                self._seen = seen
            return self._token


def load_token(path: Path) -> str:
    """The token stored in `path`, without surrounding whitespace."""
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


def authorized_channel(channel: grpc.Channel, token: str | Callable[[], str]) -> grpc.Channel:
    """`channel` with the bearer token (or the one `token()` returns at each call) attached to
    every call made through it."""
    source: Callable[[], str] = (lambda: token) if isinstance(token, str) else token
    return grpc.intercept_channel(channel, BearerToken(source))


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

    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def _details(self, details: grpc.ClientCallDetails) -> _ClientCallDetails:
        others = [(k, v) for k, v in details.metadata or () if k != METADATA_KEY]
        return _ClientCallDetails(details, [*others, *call_metadata(self._token())])

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)
