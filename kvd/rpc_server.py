"""A daemon's gRPC server: its service, grpc.health.v1 and reflection on one TLS port.

The controller's ControllerService and the handler's HandlerService are served the same way,
so the way is here, beside `rpc_tls` (their credentials) and `rpc_auth` (their callers' side),
and neither daemon imports the other. `serve` binds without SO_REUSEPORT, which gRPC sets by
default: a second daemon on the same port would otherwise bind "successfully" and share the
traffic instead of failing. Health answers SERVING for "" and the service once started, and
NOT_SERVING from the moment `stop` begins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent import futures
from typing import NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection


class RunningService:
    """A started server."""

    def __init__(self, server: grpc.Server, port: int, health: health.HealthServicer) -> None:
        self._server = server
        self.port = port
        self._health = health

    def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, give running ones `grace` seconds (None: end them now), wait."""
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait((grace or 0) + 5)

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._server.wait_for_termination(timeout))


def serve(
    *,
    address: str,
    service_name: str,
    add_servicer: Callable[[grpc.Server], None],
    credentials: grpc.ServerCredentials,
    max_workers: int,
    thread_name_prefix: str,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
) -> RunningService:
    """Serve `service_name` (added by `add_servicer`) over TLS on `address` (port 0: any free
    one), with at most `max_workers` calls at once; started when this returns."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=thread_name_prefix),
        interceptors=list(interceptors),
        maximum_concurrent_rpcs=max_workers,
        options=[("grpc.so_reuseport", 0)],
    )
    add_servicer(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (service_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    server.start()
    for name in ("", service_name):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningService(server, port, health_servicer)


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the call with `code` (context.abort raises; this says so to the type checker)."""
    context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover
