"""LauncherService: decode the request, call the manager, encode the answer.

Error handling lives in one place, `_errors`: the launcher's exception taxonomy maps to the
contract's status codes, anything else is logged once and becomes INTERNAL. Each RPC binds
its name to the log context, and every domain-changing command asks the event dispatcher to
look again, so watchers see metadata changes libvirt sends no event for.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from kvd import logs
from kvd.launcher.broadcast import Subscription
from kvd.launcher.console import ConsoleRelay, Displaced, WriterLease
from kvd.launcher.errors import Conflict, InvalidSpec, LauncherError, NotDefined, Unavailable
from kvd.launcher.events import Dispatcher
from kvd.launcher.model import Event, Snapshot
from kvd.launcher.virt.manager import DomainManager
from kvd.launcher.vnc import VncSession, vnc_socket_in
from kvd.rpc.launcher.v1 import domain_pb2, launcher_pb2, launcher_pb2_grpc
from kvd.version import kvd_version

log = logs.get_logger(__name__)

CONTRACT_VERSIONS = (1,)


class _TooSlow(LauncherError):
    """A stream consumer fell behind its bounded queue (RESOURCE_EXHAUSTED)."""


class _TakenOver(LauncherError):
    """A console writer was displaced by one that took the console over (ABORTED)."""


_CODES: dict[type[LauncherError], grpc.StatusCode] = {
    InvalidSpec: grpc.StatusCode.INVALID_ARGUMENT,
    NotDefined: grpc.StatusCode.NOT_FOUND,
    Conflict: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    _TooSlow: grpc.StatusCode.RESOURCE_EXHAUSTED,
    _TakenOver: grpc.StatusCode.ABORTED,
}
F = TypeVar("F", bound=Callable[..., Any])
# Domain states in which QEMU runs, and so serves the display (a paused guest's screen too).
_DISPLAYING = frozenset(
    {
        domain_pb2.DOMAIN_STATE_RUNNING,
        domain_pb2.DOMAIN_STATE_PAUSED,
        domain_pb2.DOMAIN_STATE_BLOCKED,
        domain_pb2.DOMAIN_STATE_SHUTTING_DOWN,
    }
)


class _ForVmi(Protocol):
    """A command request: it names the VMI whose domain it is for."""

    vmi_uid: str


@contextlib.contextmanager
def _status_codes(name: str, context: grpc.ServicerContext) -> Iterator[None]:
    """Map launcher errors to status codes; log the unexpected ones once, here."""
    with logs.bound(rpc=name):
        try:
            yield
        except LauncherError as exc:
            code = _CODES.get(type(exc), grpc.StatusCode.INTERNAL)
            log.info("rpc_failed", code=code.name, error=str(exc))
            context.abort(code, str(exc))
        except Exception as exc:
            log.exception("rpc_crashed")
            context.abort(grpc.StatusCode.INTERNAL, f"unexpected launcher error: {exc}")


def _errors(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        with _status_codes(method.__name__, context):
            return method(self, request, context)

    return wrapper  # type: ignore[return-value]  # same signature, by functools.wraps


def _streaming_errors(method: F) -> F:
    """As `_errors`, for RPCs that return a stream: errors may surface while iterating."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        with _status_codes(method.__name__, context):
            yield from method(self, request, context)

    return wrapper  # type: ignore[return-value]  # same signature, by functools.wraps


class LauncherServicer(launcher_pb2_grpc.LauncherServiceServicer):
    def __init__(
        self, manager: DomainManager, dispatcher: Dispatcher, console: ConsoleRelay
    ) -> None:
        self._manager = manager
        self._dispatcher = dispatcher
        self._console = console
        self.define_received = threading.Event()

    @_errors
    def GetInfo(  # noqa: N802
        self, request: launcher_pb2.GetInfoRequest, context: grpc.ServicerContext
    ) -> launcher_pb2.GetInfoResponse:
        libvirt_version, qemu_version = self._manager.versions()
        identity, emulation = self._manager.identity, self._manager.emulation
        return launcher_pb2.GetInfoResponse(
            supported_contract_versions=CONTRACT_VERSIONS,
            launcher_version=kvd_version(),
            libvirt_version=libvirt_version,
            qemu_version=qemu_version,
            emulated=emulation.emulated,
            emulation_reason=emulation.reason if emulation.emulated else "",
            vmi_namespace=identity.namespace,
            vmi_name=identity.name,
            vmi_uid=identity.uid,
            emulation_allowed=emulation.allowed,
        )

    @_errors
    def DefineDomain(  # noqa: N802
        self, request: launcher_pb2.DefineDomainRequest, context: grpc.ServicerContext
    ) -> launcher_pb2.DefineDomainResponse:
        self.define_received.set()
        xml, snap = self._manager.define(bytes(request.vmi_json))
        self._dispatcher.refresh()
        return launcher_pb2.DefineDomainResponse(domain_xml=xml, domain=encode_domain(snap))

    @_errors
    def LaunchDomain(  # noqa: N802
        self, request: launcher_pb2.LaunchDomainRequest, context: grpc.ServicerContext
    ) -> launcher_pb2.LaunchDomainResponse:
        return launcher_pb2.LaunchDomainResponse(
            domain=self._command(request, self._manager.launch)
        )

    @_errors
    def ShutdownDomain(  # noqa: N802
        self, request: launcher_pb2.ShutdownDomainRequest, context: grpc.ServicerContext
    ) -> launcher_pb2.ShutdownDomainResponse:
        snap = self._command(request, self._manager.shutdown)
        return launcher_pb2.ShutdownDomainResponse(domain=snap)

    @_errors
    def KillDomain(  # noqa: N802
        self, request: launcher_pb2.KillDomainRequest, context: grpc.ServicerContext
    ) -> launcher_pb2.KillDomainResponse:
        return launcher_pb2.KillDomainResponse(domain=self._command(request, self._manager.kill))

    @_errors
    def DeleteDomain(  # noqa: N802
        self, request: launcher_pb2.DeleteDomainRequest, context: grpc.ServicerContext
    ) -> launcher_pb2.DeleteDomainResponse:
        self._manager.check_uid(request.vmi_uid)
        self._manager.delete()
        self._dispatcher.refresh()
        return launcher_pb2.DeleteDomainResponse()

    @_errors
    def PauseDomain(  # noqa: N802
        self, request: launcher_pb2.PauseDomainRequest, context: grpc.ServicerContext
    ) -> launcher_pb2.PauseDomainResponse:
        return launcher_pb2.PauseDomainResponse(domain=self._command(request, self._manager.pause))

    @_errors
    def UnpauseDomain(  # noqa: N802
        self, request: launcher_pb2.UnpauseDomainRequest, context: grpc.ServicerContext
    ) -> launcher_pb2.UnpauseDomainResponse:
        snap = self._command(request, self._manager.unpause)
        return launcher_pb2.UnpauseDomainResponse(domain=snap)

    @_errors
    def GetDomain(  # noqa: N802
        self, request: launcher_pb2.GetDomainRequest, context: grpc.ServicerContext
    ) -> launcher_pb2.GetDomainResponse:
        snap = self._manager.snapshot()
        if not snap.defined:
            raise NotDefined("no domain is defined; call DefineDomain first")
        return launcher_pb2.GetDomainResponse(
            domain_xml=self._manager.xml(), domain=encode_domain(snap)
        )

    @_streaming_errors
    def WatchDomain(  # noqa: N802
        self, request: launcher_pb2.WatchDomainRequest, context: grpc.ServicerContext
    ) -> Iterator[launcher_pb2.WatchDomainResponse]:
        sub = self._dispatcher.subscribe()
        context.add_callback(sub.close)
        for event in sub.items(poll=1.0, alive=context.is_active):
            yield encode_event(event)
        if sub.overflowed:
            raise _TooSlow("this watcher fell too far behind; watch again")

    @_streaming_errors
    def Console(  # noqa: N802
        self,
        request_iterator: Iterator[launcher_pb2.ConsoleRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[launcher_pb2.ConsoleResponse]:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("message") != "open":
            raise InvalidSpec("the first console message must be `open`")
        mode = first.open.mode
        if mode == launcher_pb2.CONSOLE_MODE_UNSPECIFIED:
            raise InvalidSpec("console mode is unspecified: say READ_ONLY or READ_WRITE")
        if not self._manager.snapshot().defined:
            raise NotDefined("no domain is defined; call DefineDomain first")
        if not self._console.attached:
            raise Conflict("the domain does not run, so its console is closed")
        writer = None
        if mode == launcher_pb2.CONSOLE_MODE_READ_WRITE:
            writer = self._console.lease_writer(take_over=first.open.take_over)
        replayed, sub = self._console.follow(first.open.replay_bytes)
        context.add_callback(sub.close)
        if writer is not None:
            writer.on_displaced = sub.close
        problem: list[LauncherError] = []
        pump = threading.Thread(
            target=_pump_input,
            args=(request_iterator, writer, sub, problem),
            name="console-input",
            daemon=True,
        )
        pump.start()
        try:
            yield launcher_pb2.ConsoleResponse(
                opened=launcher_pb2.ConsoleOpened(mode=mode, replay_bytes=replayed)
            )
            for chunk in sub.items(poll=0.5, alive=context.is_active):
                yield launcher_pb2.ConsoleResponse(output=chunk)
        finally:
            if writer is not None:
                writer.release()
        if problem:
            raise problem[0]
        if writer is not None and writer.displaced:
            raise _TakenOver("another client took over the console")
        if sub.overflowed:
            raise _TooSlow("this console reader fell too far behind; open it again")

    @_streaming_errors
    def Vnc(  # noqa: N802
        self,
        request_iterator: Iterator[launcher_pb2.VncRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[launcher_pb2.VncResponse]:
        snap = self._manager.snapshot()
        if not snap.defined:
            raise NotDefined("no domain is defined; call DefineDomain first")
        socket_path = vnc_socket_in(self._manager.xml())
        if socket_path is None:
            raise Conflict(
                "the domain has no VNC display: its VMI sets "
                "spec.domain.devices.autoattachGraphicsDevice to false"
            )
        if snap.state not in _DISPLAYING:
            raise Conflict("the domain does not run, so its VNC display is closed")
        session = VncSession(socket_path)
        if not context.add_callback(session.close):
            session.close()  # the RPC ended already
        session.start_input(_vnc_input(request_iterator))
        log.info("vnc_opened")
        sent = 0
        try:
            for data in session.output():
                sent += len(data)
                yield launcher_pb2.VncResponse(data=data)
        finally:
            session.close()
            log.info("vnc_closed", bytes_sent=sent)

    def _command(self, request: _ForVmi, operation: Callable[[], Snapshot]) -> domain_pb2.Domain:
        self._manager.check_uid(request.vmi_uid)
        snap = operation()
        self._dispatcher.refresh()
        return encode_domain(snap)


def _pump_input(
    requests: Iterator[launcher_pb2.ConsoleRequest],
    writer: WriterLease | None,
    sub: Subscription[bytes],
    problem: list[LauncherError],
) -> None:
    """Forward a writer's input to the guest; end the stream on a protocol violation."""
    try:
        for message in requests:
            kind = message.WhichOneof("message")
            if kind == "open":
                problem.append(InvalidSpec("`open` may only be the first console message"))
            elif writer is None:
                problem.append(InvalidSpec("a READ_ONLY console cannot send input"))
            else:
                try:
                    writer.write(bytes(message.input))
                except Displaced:
                    break
            if problem:
                break
    except grpc.RpcError:
        pass  # the client went away; the output side notices on its own
    finally:
        with contextlib.suppress(Exception):
            if problem:
                sub.close()


def _vnc_input(requests: Iterator[launcher_pb2.VncRequest]) -> Iterator[bytes]:
    try:
        for message in requests:
            yield bytes(message.data)
    except grpc.RpcError:
        return  # the client cancelled; the RPC callback closes the session


def encode_domain(snap: Snapshot) -> domain_pb2.Domain:
    out = domain_pb2.Domain(
        name=snap.name,
        uuid=snap.uuid,
        state=snap.state,
        reason=snap.reason,
        emulated=snap.emulated,
        interfaces=[
            domain_pb2.DomainInterface(
                name=i.name, mac_address=i.mac_address, ip_addresses=i.ip_addresses
            )
            for i in snap.interfaces
        ],
    )
    if snap.metadata is not None:
        meta = snap.metadata
        out.metadata.vmi_uid = meta.uid
        out.metadata.termination_grace_period.CopyFrom(
            duration_pb2.Duration(seconds=meta.grace_period_seconds)
        )
        if meta.shutdown_requested_at is not None:
            out.metadata.shutdown_request_time.CopyFrom(_timestamp(meta.shutdown_requested_at))
    return out


def encode_event(event: Event) -> launcher_pb2.WatchDomainResponse:
    return launcher_pb2.WatchDomainResponse(
        type=event.type,
        domain=encode_domain(event.snapshot),
        observe_time=_timestamp(event.observed_at),
    )


def _timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(when)
    return ts
