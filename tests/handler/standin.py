"""A launcher with no libvirt, for the handler's tests of how it drives launchers: a
LauncherService served over real gRPC on a unix socket, whose domain is a state in memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from kvd.rpc.launcher.v1 import domain_pb2, launcher_pb2, launcher_pb2_grpc


@dataclass
class StandIn(launcher_pb2_grpc.LauncherServiceServicer):
    """A launcher with no libvirt: defines and launches on request, after the barrier."""

    uid: str
    barrier: threading.Barrier | None = None  # DefineDomain waits on it, when given
    state: int = domain_pb2.DOMAIN_STATE_NOSTATE
    defines: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _domain(self) -> domain_pb2.Domain:
        reason = {  # as a real launcher says it
            domain_pb2.DOMAIN_STATE_RUNNING: domain_pb2.DOMAIN_STATE_REASON_BOOTED,
            domain_pb2.DOMAIN_STATE_NOSTATE: domain_pb2.DOMAIN_STATE_REASON_NON_EXISTENT,
        }.get(self.state, domain_pb2.DOMAIN_STATE_REASON_UNSPECIFIED)
        return domain_pb2.Domain(name=self.uid, state=self.state, reason=reason, emulated=True)

    def GetInfo(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC's names
        return launcher_pb2.GetInfoResponse(supported_contract_versions=[1], emulated=True)

    def GetDomain(self, request: Any, context: Any) -> Any:  # noqa: N802
        if self.state == domain_pb2.DOMAIN_STATE_NOSTATE:
            context.abort(grpc.StatusCode.NOT_FOUND, "no domain defined")
        return launcher_pb2.GetDomainResponse(domain=self._domain())

    def DefineDomain(self, request: Any, context: Any) -> Any:  # noqa: N802
        with self.lock:
            self.defines += 1
        try:
            if self.barrier is not None:
                self.barrier.wait()
        except threading.BrokenBarrierError:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the other launchers never got theirs")
        self.state = domain_pb2.DOMAIN_STATE_SHUTOFF
        return launcher_pb2.DefineDomainResponse(domain=self._domain())

    def LaunchDomain(self, request: Any, context: Any) -> Any:  # noqa: N802
        self.state = domain_pb2.DOMAIN_STATE_RUNNING
        return launcher_pb2.LaunchDomainResponse(domain=self._domain())

    def WatchDomain(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: N802
        yield launcher_pb2.WatchDomainResponse(domain=self._domain())
        threading.Event().wait(timeout=1.0)  # then end: the handler watches again


def serve(stand_in: StandIn, socket: Path) -> grpc.Server:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    launcher_pb2_grpc.add_LauncherServiceServicer_to_server(stand_in, server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(f"unix:{socket}")
    server.start()
    return server
