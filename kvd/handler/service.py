"""HandlerService: the node API the controller calls, proxied to the VMIs' launchers.

Each call names a VMI by namespace, name and uid; `locate` (the handler's knowledge of the
launchers on this node) turns that into the launcher's unix socket, or None, which is
NOT_FOUND. The handler talks to the launcher only through the generated kvd.rpc stubs, on a
channel opened per call and closed with it, so nothing outlives a call: a launcher that went
away leaves no cached channel behind. The launcher's status codes pass through unchanged.

The console and the VNC display are proxies between two bidirectional streams, one shape for
both (`_StreamProxy`; VNC's bytes pass unchanged, its `open` stops here since a launcher serves
one domain). The output side runs on the servicer's thread (launcher responses re-encoded as
handler responses); the input side is one `console-input` (`vnc-input`) thread that reads the
client's stream into a queue the launcher call consumes.
Whichever side ends first ends the other: a client that cancels cancels the launcher call (an
RPC callback), a launcher that ends the stream ends the client's with the same status, and
the input thread ends when the client's stream does, which gRPC ends with the RPC.

The server speaks TLS only (`kvd.rpc_tls`, its certificate reloaded as it is renewed), and
admits only the callers `auth.CallerCheck` admits (the controller's ServiceAccount); it also
serves grpc.health.v1 (without a token, for probes) and reflection, as the launcher does.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc

from kvd import logs, rpc_server
from kvd.handler import auth
from kvd.rpc.handler.v1 import handler_pb2, handler_pb2_grpc
from kvd.rpc.launcher.v1 import launcher_pb2, launcher_pb2_grpc
from kvd.version import kvd_version

log = logs.get_logger(__name__)

Locate = Callable[[str, str, str], Path | None]
"""(namespace, name, uid) -> the VMI's launcher socket, or None when this node has no such VMI."""

SERVICE_NAME = handler_pb2.DESCRIPTOR.services_by_name["HandlerService"].full_name
CONTRACT_VERSIONS = (1,)
# Each console holds a worker for its lifetime; beyond this many concurrent calls a new one
# gets RESOURCE_EXHAUSTED at once instead of queueing behind open consoles.
MAX_WORKERS = 64
# Deadline for a unary launcher call when the caller set none (the contract says callers do).
LAUNCHER_TIMEOUT = 30.0
# How often the launcher-bound input generator looks whether the proxy has ended.
INPUT_POLL = 0.5


@dataclass(frozen=True)
class VmiRef:
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


# The two contracts' console modes, one for one: two enums with the same names and numbers.
_TO_LAUNCHER_MODE: dict[handler_pb2.ConsoleMode, launcher_pb2.ConsoleMode] = {
    handler_pb2.CONSOLE_MODE_UNSPECIFIED: launcher_pb2.CONSOLE_MODE_UNSPECIFIED,
    handler_pb2.CONSOLE_MODE_READ_ONLY: launcher_pb2.CONSOLE_MODE_READ_ONLY,
    handler_pb2.CONSOLE_MODE_READ_WRITE: launcher_pb2.CONSOLE_MODE_READ_WRITE,
}
_FROM_LAUNCHER_MODE: dict[launcher_pb2.ConsoleMode, handler_pb2.ConsoleMode] = {
    launcher: handler for handler, launcher in _TO_LAUNCHER_MODE.items()
}

_VmiRequest = (
    handler_pb2.PauseVirtualMachineInstanceRequest
    | handler_pb2.UnpauseVirtualMachineInstanceRequest
)
"""A unary request that names a VMI (namespace, name, uid)."""


class _StreamCall(Protocol):
    """The launcher's Console or Vnc call, as the proxy uses it (a grpc stream-stream call)."""

    def __iter__(self) -> Iterator[Any]: ...

    def cancel(self) -> bool: ...


class _Failed(Exception):
    """Ends an RPC with `code` and `message` (raised inside helpers, aborted in one place)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class HandlerServicer(handler_pb2_grpc.HandlerServiceServicer):
    def __init__(self, *, locate: Locate, node_name: str) -> None:
        self._locate = locate
        self._node_name = node_name

    def GetInfo(  # noqa: N802
        self, request: handler_pb2.GetInfoRequest, context: grpc.ServicerContext
    ) -> handler_pb2.GetInfoResponse:
        return handler_pb2.GetInfoResponse(
            node_name=self._node_name,
            handler_version=kvd_version(),
            supported_contract_versions=CONTRACT_VERSIONS,
        )

    def PauseVirtualMachineInstance(  # noqa: N802
        self,
        request: handler_pb2.PauseVirtualMachineInstanceRequest,
        context: grpc.ServicerContext,
    ) -> handler_pb2.PauseVirtualMachineInstanceResponse:
        def pause(stub: launcher_pb2_grpc.LauncherServiceStub, vmi: VmiRef, timeout: float) -> None:
            stub.PauseDomain(launcher_pb2.PauseDomainRequest(vmi_uid=vmi.uid), timeout=timeout)

        self._unary("pause", request, context, pause)
        return handler_pb2.PauseVirtualMachineInstanceResponse()

    def UnpauseVirtualMachineInstance(  # noqa: N802
        self,
        request: handler_pb2.UnpauseVirtualMachineInstanceRequest,
        context: grpc.ServicerContext,
    ) -> handler_pb2.UnpauseVirtualMachineInstanceResponse:
        def unpause(
            stub: launcher_pb2_grpc.LauncherServiceStub, vmi: VmiRef, timeout: float
        ) -> None:
            stub.UnpauseDomain(launcher_pb2.UnpauseDomainRequest(vmi_uid=vmi.uid), timeout=timeout)

        self._unary("unpause", request, context, unpause)
        return handler_pb2.UnpauseVirtualMachineInstanceResponse()

    def Console(  # noqa: N802
        self,
        request_iterator: Iterator[handler_pb2.ConsoleRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[handler_pb2.ConsoleResponse]:
        try:
            first = next(request_iterator, None)
        except grpc.RpcError:
            return  # the client went away before saying anything
        if first is None or first.WhichOneof("message") != "open":
            rpc_server.abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first console message must be `open`",
            )
        vmi = VmiRef(first.open.namespace, first.open.name, first.open.uid)
        try:
            socket = self._socket(vmi)
        except _Failed as failed:
            rpc_server.abort(context, failed.code, str(failed))
        mode = _TO_LAUNCHER_MODE.get(first.open.mode)
        if mode is None:
            rpc_server.abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"unknown console mode {first.open.mode}: say READ_ONLY or READ_WRITE",
            )
        opened = launcher_pb2.ConsoleOpen(
            mode=mode,
            replay_bytes=first.open.replay_bytes,
            take_over=first.open.take_over,
        )
        proxy = _ConsoleProxy(vmi, socket, opened, self._session_log("console", vmi))
        yield from _proxied(proxy, request_iterator, context)

    def Vnc(  # noqa: N802
        self, request_iterator: Iterator[handler_pb2.VncRequest], context: grpc.ServicerContext
    ) -> Iterator[handler_pb2.VncResponse]:
        try:
            first = next(request_iterator, None)
        except grpc.RpcError:
            return  # the client went away before saying anything
        if first is None or first.WhichOneof("message") != "open":
            rpc_server.abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "the first VNC message must be `open`"
            )
        vmi = VmiRef(first.open.namespace, first.open.name, first.open.uid)
        try:
            socket = self._socket(vmi)
        except _Failed as failed:
            rpc_server.abort(context, failed.code, str(failed))
        proxy = _VncProxy(vmi, socket, self._session_log("vnc", vmi))
        yield from _proxied(proxy, request_iterator, context)

    def _session_log(self, rpc: str, vmi: VmiRef) -> Any:
        # A bound logger rather than logs.bound: context variables set here would be reset
        # wherever gRPC drops the generator, possibly in another context.
        return log.bind(rpc=rpc, vmi=str(vmi), uid=vmi.uid, node=self._node_name)

    def _unary(
        self,
        name: str,
        request: _VmiRequest,
        context: grpc.ServicerContext,
        call: Callable[[launcher_pb2_grpc.LauncherServiceStub, VmiRef, float], None],
    ) -> None:
        vmi = VmiRef(request.namespace, request.name, request.uid)
        with logs.bound(rpc=name, vmi=str(vmi), uid=vmi.uid, node=self._node_name):
            try:
                socket = self._socket(vmi)
                # The caller's deadline, or ours when it set none (then time_remaining is huge).
                timeout = min(context.time_remaining(), LAUNCHER_TIMEOUT)
                with _launcher_channel(socket) as channel:
                    try:
                        call(_stub(channel), vmi, timeout)
                    except grpc.RpcError as exc:
                        raise _from_launcher(exc, vmi, socket) from None
            except _Failed as failed:
                log.info("rpc_failed", code=failed.code.name, error=str(failed))
                rpc_server.abort(context, failed.code, str(failed))
            log.info(f"vmi_{name}d")

    def _socket(self, vmi: VmiRef) -> Path:
        missing = [f for f in ("namespace", "name", "uid") if not getattr(vmi, f)]
        if missing:
            raise _Failed(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the VMI is not fully named: {', '.join(missing)} missing",
            )
        socket = self._locate(vmi.namespace, vmi.name, vmi.uid)
        if socket is None:
            raise _Failed(
                grpc.StatusCode.NOT_FOUND,
                f"no VMI {vmi} with uid {vmi.uid} runs on node {self._node_name}",
            )
        return socket


class _StreamProxy:
    """One streaming session (console, VNC): a launcher call fed from, and feeding, a client's
    stream. Subclasses say how the two contracts' messages map onto each other."""

    what = "stream"

    def __init__(self, vmi: VmiRef, socket: Path, session_log: Any) -> None:
        self._vmi = vmi
        self._log = session_log
        self._socket = socket
        self._inbox: queue.Queue[bytes | None] = queue.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._channel = _launcher_channel(socket)
        self._call: _StreamCall | None = None
        self.failure: _Failed | None = None

    # --- what differs between streams ---------------------------------------------------------

    def _open(
        self, stub: launcher_pb2_grpc.LauncherServiceStub, requests: Iterator[Any]
    ) -> _StreamCall:
        raise NotImplementedError

    def _first(self) -> Any | None:
        """The launcher call's first request, if it has one of its own."""
        return None

    def _to_launcher_request(self, data: bytes) -> Any:
        raise NotImplementedError

    def _client_data(self, message: Any) -> bytes:
        """The bytes a client's message carries; raises `_Failed` on a protocol violation."""
        raise NotImplementedError

    def _to_client(self, response: Any) -> Any:
        raise NotImplementedError

    # --- the proxy --------------------------------------------------------------------------

    def run(self, client_requests: Iterator[Any]) -> Iterator[Any]:
        """Launcher output as handler responses; sets `failure` when the session ends badly."""
        with self._lock:
            if self._closed.is_set():
                return
            self._call = self._open(_stub(self._channel), self._to_launcher())
        threading.Thread(
            target=self._pump, args=(client_requests,), name=f"{self.what}-input", daemon=True
        ).start()
        try:
            for response in self._call:
                yield self._to_client(response)
        except grpc.RpcError as exc:
            if self.failure is None and exc.code() != grpc.StatusCode.CANCELLED:
                self.failure = _from_launcher(exc, self._vmi, self._socket)
        self._log.info(f"{self.what}_closed", error=str(self.failure) if self.failure else None)

    def close(self) -> None:
        """End the session from any thread; idempotent."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            call = self._call
        self._inbox.put(None)
        if call is not None:
            call.cancel()
        self._channel.close()

    def _to_launcher(self) -> Iterator[Any]:
        first = self._first()
        if first is not None:
            yield first
        # Polls so that gRPC's request-consuming thread never waits on a session that ended.
        while not self._closed.is_set():
            try:
                data = self._inbox.get(timeout=INPUT_POLL)
            except queue.Empty:
                continue
            if data is None:
                return
            yield self._to_launcher_request(data)

    def _pump(self, client_requests: Iterator[Any]) -> None:
        try:
            for message in client_requests:
                try:
                    data = self._client_data(message)
                except _Failed as failed:
                    self.failure = failed
                    self.close()
                    return
                self._inbox.put(data)
        except grpc.RpcError:
            self.close()  # the client cancelled; the RPC callback does the same
            return
        self._inbox.put(None)  # the client half-closed: so does the launcher call


class _ConsoleProxy(_StreamProxy):
    what = "console"

    def __init__(
        self, vmi: VmiRef, socket: Path, opened: launcher_pb2.ConsoleOpen, session_log: Any
    ) -> None:
        super().__init__(vmi, socket, session_log)
        self._opened = opened
        self._log.info("console_opened", mode=opened.mode, take_over=opened.take_over)

    def _open(
        self, stub: launcher_pb2_grpc.LauncherServiceStub, requests: Iterator[Any]
    ) -> _StreamCall:
        return stub.Console(requests)  # type: ignore[no-any-return]  # generated, unannotated

    def _first(self) -> launcher_pb2.ConsoleRequest:
        return launcher_pb2.ConsoleRequest(open=self._opened)

    def _to_launcher_request(self, data: bytes) -> launcher_pb2.ConsoleRequest:
        return launcher_pb2.ConsoleRequest(input=data)

    def _client_data(self, message: handler_pb2.ConsoleRequest) -> bytes:
        if message.WhichOneof("message") == "open":
            raise _Failed(
                grpc.StatusCode.INVALID_ARGUMENT, "`open` may only be the first console message"
            )
        return bytes(message.input)

    def _to_client(self, response: launcher_pb2.ConsoleResponse) -> handler_pb2.ConsoleResponse:
        if response.WhichOneof("message") == "opened":
            return handler_pb2.ConsoleResponse(
                opened=handler_pb2.ConsoleOpened(
                    mode=_FROM_LAUNCHER_MODE.get(
                        response.opened.mode, handler_pb2.CONSOLE_MODE_UNSPECIFIED
                    ),
                    replay_bytes=response.opened.replay_bytes,
                )
            )
        return handler_pb2.ConsoleResponse(output=response.output)


class _VncProxy(_StreamProxy):
    """RFB bytes, unchanged both ways: the launcher's Vnc has no `open` of its own (it serves
    one domain), so the client's `open` stops here."""

    what = "vnc"

    def __init__(self, vmi: VmiRef, socket: Path, session_log: Any) -> None:
        super().__init__(vmi, socket, session_log)
        self._log.info("vnc_opened")

    def _open(
        self, stub: launcher_pb2_grpc.LauncherServiceStub, requests: Iterator[Any]
    ) -> _StreamCall:
        return stub.Vnc(requests)  # type: ignore[no-any-return]  # generated, unannotated

    def _to_launcher_request(self, data: bytes) -> launcher_pb2.VncRequest:
        return launcher_pb2.VncRequest(data=data)

    def _client_data(self, message: handler_pb2.VncRequest) -> bytes:
        if message.WhichOneof("message") == "open":
            raise _Failed(
                grpc.StatusCode.INVALID_ARGUMENT, "`open` may only be the first VNC message"
            )
        return bytes(message.data)

    def _to_client(self, response: launcher_pb2.VncResponse) -> handler_pb2.VncResponse:
        return handler_pb2.VncResponse(data=response.data)


def _proxied(
    proxy: _StreamProxy, client_requests: Iterator[Any], context: grpc.ServicerContext
) -> Iterator[Any]:
    """Run `proxy` for this RPC: a cancelled RPC closes it, its failure ends the RPC."""
    if not context.add_callback(proxy.close):
        proxy.close()  # the RPC ended already; run() then returns at once
    try:
        yield from proxy.run(client_requests)
    finally:
        proxy.close()
    if proxy.failure is not None and context.is_active():
        rpc_server.abort(context, proxy.failure.code, str(proxy.failure))


def _launcher_channel(socket: Path) -> grpc.Channel:
    return grpc.insecure_channel(f"unix:{socket}")


def _stub(channel: grpc.Channel) -> launcher_pb2_grpc.LauncherServiceStub:
    return launcher_pb2_grpc.LauncherServiceStub(channel)  # type: ignore[no-untyped-call]  # generated, unannotated


def _from_launcher(exc: grpc.RpcError, vmi: VmiRef, socket: Path) -> _Failed:
    """The launcher's status, passed through; unreachable launchers get a message saying so."""
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        details = f"the launcher of VMI {vmi} is not reachable at {socket}: {details}"
    return _Failed(code, details)


def serve(
    *,
    address: str,
    locate: Locate,
    node_name: str,
    check: Callable[[auth.Metadata], object],
    credentials: grpc.ServerCredentials,
) -> rpc_server.RunningService:
    """Serve HandlerService on `address` (e.g. `0.0.0.0:8186`, or port 0 for any free port)
    over TLS with `credentials`, admitting the calls `check` admits (`auth.CallerCheck.check`:
    it raises `auth.Refused` for the others); started when this returns."""
    servicer = HandlerServicer(locate=locate, node_name=node_name)
    running = rpc_server.serve(
        address=address,
        service_name=SERVICE_NAME,
        add_servicer=lambda server: handler_pb2_grpc.add_HandlerServiceServicer_to_server(  # type: ignore[no-untyped-call]  # generated, unannotated
            servicer, server
        ),
        credentials=credentials,
        max_workers=MAX_WORKERS,
        thread_name_prefix="handler-rpc",
        interceptors=[auth.CallerInterceptor(check)],
    )
    log.info("handler_service_serving", address=address, port=running.port, node=node_name)
    return running
