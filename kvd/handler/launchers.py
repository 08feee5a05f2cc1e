"""Talking to launchers: one gRPC channel per launcher socket, the contract version agreed once
(`GetInfo`, the highest version both sides serve), and a background `WatchDomain` follower per
launcher that hands every domain it sees to a callback and watches again after any end."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from kvd import logs
from kvd.rpc.launcher.v1 import domain_pb2, launcher_pb2, launcher_pb2_grpc

log = logs.get_logger(__name__)

SUPPORTED_VERSIONS = (1,)
RPC_TIMEOUT = 30.0
DEFINE_TIMEOUT = 120.0  # disks are prepared (overlays, cloud-init ISO) before it answers
WATCH_RETRY = (0.1, 2.0)  # back-off bounds between watches
SOCKET_POLL = 0.1  # how often a follower looks for a launcher socket that is not there yet
# gRPC backs off between connection attempts from 1 s up to 120 s by default: a channel that
# tried a launcher still starting (seconds, on a loaded node) then failed every call for
# seconds after the launcher answered. Calls are only made once the socket exists (and a
# launcher's socket answers once visible), so a failed attempt is rare: retry it soon.
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)


class LauncherUnavailable(Exception):
    """The launcher's socket does not answer (yet, or any more)."""


class LauncherRejected(Exception):
    """The launcher answered with an error; `code` is the gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Info:
    version: int
    emulated: bool
    launcher_version: str


class Launcher:
    """One launcher, by its socket. Thread-safe; the channel reconnects by itself."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self._channel = grpc.insecure_channel(f"unix:{socket}", options=CHANNEL_OPTIONS)
        self._stub = launcher_pb2_grpc.LauncherServiceStub(self._channel)  # type: ignore[no-untyped-call]
        self.info: Info | None = None

    def close(self) -> None:
        self._channel.close()

    def negotiate(self) -> Info:
        if self.info is None:
            answer = self._call(self._stub.GetInfo, launcher_pb2.GetInfoRequest())
            common = set(answer.supported_contract_versions) & set(SUPPORTED_VERSIONS)
            if not common:
                raise LauncherRejected(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "the launcher serves contract versions "
                    f"{list(answer.supported_contract_versions)}, this handler "
                    f"{list(SUPPORTED_VERSIONS)}: none in common",
                )
            self.info = Info(max(common), answer.emulated, answer.launcher_version)
        return self.info

    def define(self, vmi_json: bytes) -> domain_pb2.Domain:
        request = launcher_pb2.DefineDomainRequest(vmi_json=vmi_json)
        answer: launcher_pb2.DefineDomainResponse = self._call(
            self._stub.DefineDomain, request, timeout=DEFINE_TIMEOUT
        )
        return answer.domain

    def launch(self, uid: str) -> domain_pb2.Domain:
        request = launcher_pb2.LaunchDomainRequest(vmi_uid=uid)
        answer: launcher_pb2.LaunchDomainResponse = self._call(
            self._stub.LaunchDomain, request, timeout=DEFINE_TIMEOUT
        )
        return answer.domain

    def shutdown(self, uid: str) -> None:
        self._call(self._stub.ShutdownDomain, launcher_pb2.ShutdownDomainRequest(vmi_uid=uid))

    def kill(self, uid: str) -> None:
        self._call(self._stub.KillDomain, launcher_pb2.KillDomainRequest(vmi_uid=uid))

    def delete(self, uid: str) -> None:
        self._call(self._stub.DeleteDomain, launcher_pb2.DeleteDomainRequest(vmi_uid=uid))

    def domain(self) -> domain_pb2.Domain | None:
        """The domain now; None when none is defined."""
        try:
            answer: launcher_pb2.GetDomainResponse = self._call(
                self._stub.GetDomain, launcher_pb2.GetDomainRequest()
            )
        except LauncherRejected as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return answer.domain

    def _call(self, method, request, *, timeout: float = RPC_TIMEOUT):  # type: ignore[no-untyped-def]
        if not self.socket.exists():
            raise LauncherUnavailable(f"no launcher socket at {self.socket}")
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise LauncherUnavailable(f"launcher at {self.socket}: {details}") from None
            raise LauncherRejected(code, details) from None

    def follow(
        self, on_domain: Callable[[domain_pb2.Domain | None], None], stop: threading.Event
    ) -> threading.Thread:
        """Follow WatchDomain in a thread until `stop`: `on_domain` gets every domain seen (None
        for 'none defined'); after any end of the stream, it watches again (back-off while the
        socket does not answer; no attempt at all while there is no socket)."""

        def run() -> None:
            delay = WATCH_RETRY[0]
            while not stop.is_set():
                if not self.socket.exists():  # a failed connection would delay the next one
                    if stop.wait(SOCKET_POLL):
                        return
                    continue
                call = None
                try:
                    call = self._stub.WatchDomain(launcher_pb2.WatchDomainRequest())
                    stopper = threading.Thread(target=_cancel_on, args=(stop, call), daemon=True)
                    stopper.start()
                    for event in call:
                        delay = WATCH_RETRY[0]
                        on_domain(_present(event.domain))
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.CANCELLED:
                        log.debug("watch_ended", socket=str(self.socket), code=exc.code().name)
                finally:
                    if call is not None:
                        call.cancel()
                if stop.wait(delay):
                    return
                delay = min(delay * 2, WATCH_RETRY[1])

        thread = threading.Thread(target=run, name=f"watch-{self.socket.parent.name}", daemon=True)
        thread.start()
        return thread


def _cancel_on(stop: threading.Event, call: grpc.Future) -> None:
    while not stop.wait(0.5):
        if call.done():
            return
    call.cancel()


def _present(domain: domain_pb2.Domain) -> domain_pb2.Domain | None:
    """The INITIAL message of a launcher with no domain is NOSTATE / NON_EXISTENT."""
    if (
        domain.state == domain_pb2.DOMAIN_STATE_NOSTATE
        and domain.reason == domain_pb2.DOMAIN_STATE_REASON_NON_EXISTENT
    ):
        return None
    return domain
