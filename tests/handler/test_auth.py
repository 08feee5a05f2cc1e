"""Who HandlerService admits: `CallerCheck`'s decisions with a fake authenticator (pure logic),
and `CallerInterceptor` on a real gRPC server (what a refused caller sees). The same checks
against a real API server's TokenReview are in test_service.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from kvd import rpc_auth
from kvd.handler import auth
from kvd.kube.authenticator import AuthenticationError
from kvd.kube.client import ApiError
from kvd.kube.reviews import UserInfo

CONTROLLER = "system:serviceaccount:kvd:kvd-controller"
TIMEOUT = 10.0


def authenticate(token: str) -> UserInfo:
    """The API server's answers, as TokenAuthenticator passes them on."""
    if token == "controller-token":
        return UserInfo(CONTROLLER, uid="c-1")
    if token == "alice-token":
        return UserInfo("alice")
    if token == "down":
        raise ApiError(0, "ConnectionError", "connection refused")
    raise AuthenticationError('the token is not for audience "kvd-handler"')


CHECK = auth.CallerCheck(authenticate, [CONTROLLER])


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def test_the_controller_is_admitted() -> None:
    assert CHECK.check(bearer("controller-token")).username == CONTROLLER


@pytest.mark.parametrize(
    ("metadata", "code", "message"),
    [
        pytest.param([], grpc.StatusCode.UNAUTHENTICATED, "missing credentials", id="no-token"),
        pytest.param(
            [("authorization", "Basic x")],
            grpc.StatusCode.UNAUTHENTICATED,
            "malformed credentials",
            id="malformed",
        ),
        pytest.param(
            bearer("api-audience-token"),
            grpc.StatusCode.UNAUTHENTICATED,
            'invalid credentials: the token is not for audience "kvd-handler"',
            id="invalid-or-wrong-audience",
        ),
        pytest.param(
            bearer("alice-token"),
            grpc.StatusCode.PERMISSION_DENIED,
            f'User "alice" cannot call HandlerService: only "{CONTROLLER}" may',
            id="someone-else",
        ),
        pytest.param(
            bearer("down"),
            grpc.StatusCode.UNAVAILABLE,
            "cannot verify the credentials: the API server's TokenReview failed",
            id="api-server-down",
        ),
    ],
)
def test_refusals(metadata: list[tuple[str, str]], code: grpc.StatusCode, message: str) -> None:
    with pytest.raises(rpc_auth.Refused) as refused:
        CHECK.check(metadata)
    assert refused.value.code == code
    assert message in refused.value.message
    for _, value in metadata:  # never echoed
        assert value.partition(" ")[2] not in refused.value.message


def test_no_allowed_user_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="no user is allowed"):
        auth.CallerCheck(authenticate, [])


# --- the interceptor, on a real server --------------------------------------------------------


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[grpc.Channel, list[str]]]:
    """An echo service behind CallerInterceptor(CHECK), plus health; the names of the threads
    the check ran on."""
    threads: list[str] = []

    def check(metadata: auth.Metadata) -> object:
        threads.append(threading.current_thread().name)
        return CHECK.check(metadata)

    def echo_stream(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        yield from requests

    identity: dict[str, Any] = {"request_deserializer": None, "response_serializer": None}
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(lambda r, c: b"ok:" + r, **identity),
        "Stream": grpc.stream_stream_rpc_method_handler(echo_stream, **identity),
    }
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="t-rpc"),
        interceptors=[auth.CallerInterceptor(check)],
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Echo", handlers),))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel, threads
    finally:
        channel.close()
        server.stop(None).wait(5)


def test_an_admitted_call_reaches_the_method_on_a_worker_thread(
    served: tuple[grpc.Channel, list[str]],
) -> None:
    channel, threads = served
    threads.clear()
    unary = channel.unary_unary("/t.Echo/Unary")
    assert unary(b"x", metadata=bearer("controller-token"), timeout=TIMEOUT) == b"ok:x"
    stream = channel.stream_stream("/t.Echo/Stream")
    echoed = stream(iter([b"a", b"b"]), metadata=bearer("controller-token"), timeout=TIMEOUT)
    assert list(echoed) == [b"a", b"b"]
    # never on gRPC's polling thread, which a TokenReview would stall for every call
    assert threads and all(name.startswith("t-rpc") for name in threads), threads


@pytest.mark.parametrize("method", ["Unary", "Stream"])
def test_a_refused_call_ends_with_the_refusal(
    served: tuple[grpc.Channel, list[str]], method: str
) -> None:
    channel, _ = served
    with pytest.raises(grpc.RpcError) as failed:
        if method == "Unary":
            channel.unary_unary("/t.Echo/Unary")(b"x", metadata=bearer("alice-token"), timeout=10)
        else:
            call = channel.stream_stream("/t.Echo/Stream")
            list(call(iter([b"a"]), metadata=bearer("alice-token"), timeout=TIMEOUT))
    assert failed.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert 'User "alice"' in (failed.value.details() or "")


def test_health_needs_no_token(served: tuple[grpc.Channel, list[str]]) -> None:
    channel, _ = served
    stub = health_pb2_grpc.HealthStub(channel)
    answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
