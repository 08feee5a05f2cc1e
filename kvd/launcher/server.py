"""The launcher's gRPC server on a pod-local unix socket, with health and reflection.

The socket is bound under a temporary name, made mode 0600, and renamed into place only once
the server answers, so a socket that is visible always answers (a handler that polls the
socket directory never talks to a half-started launcher). `create_server` is separate from
`main` so tests can bind a temporary socket.
"""

from __future__ import annotations

import os
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kvd.rpc.launcher.v1 import launcher_pb2, launcher_pb2_grpc

SERVICE_NAME = launcher_pb2.DESCRIPTOR.services_by_name["LauncherService"].full_name
# Streams (WatchDomain, Console) each hold a worker thread for their lifetime.
MAX_WORKERS = 32


class LauncherServer:
    def __init__(self, server: grpc.Server, socket_path: Path, health: health.HealthServicer):
        self._server = server
        self.socket_path = socket_path
        self._health = health

    def stop(self, grace: float) -> None:
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait(grace + 1)
        self.socket_path.unlink(missing_ok=True)

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._server.wait_for_termination(timeout))


def create_server(
    socket_path: Path, servicer: launcher_pb2_grpc.LauncherServiceServicer
) -> LauncherServer:
    """Serve `servicer` on `socket_path` (0600), started and visible when this returns."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_WORKERS))
    launcher_pb2_grpc.add_LauncherServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]  # generated, unannotated
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = socket_path.with_name(f".{socket_path.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    old_umask = os.umask(0o177)  # the socket is created 0600, never briefly wider
    try:
        server.add_insecure_port(f"unix:{temporary}")
        server.start()
    finally:
        os.umask(old_umask)
    os.chmod(temporary, 0o600)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    os.replace(temporary, socket_path)
    return LauncherServer(server, socket_path, health_servicer)
