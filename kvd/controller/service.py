"""ControllerService: the users' operations on VMs and VMIs, served by every controller replica.

The servicer is a thin adapter over `operations.Operations`, which the aggregated API
(`subresources.py`) shares: each method authenticates the caller (`access.Access`: the bearer
token's TokenReview), decodes the request, calls the operation (which authorizes with a
SubjectAccessReview before any lookup, then acts), and maps a `lifecycle.Refusal` onto the
contract's status code. Each replica serves, leader or not: the calls read the informer caches
every replica keeps warm, or the API server, and write through it.

Console: the first message names the VMI; the operation opens the stream to its node's
HandlerService.Console and answers with the handler's `opened`, then the guest's output. The
caller's input is read by the handler call's request iterator; whichever side ends first ends
the other (a caller that cancels closes the stream; a stream that fails ends the caller's call
with the mapped status).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc

from kvd import logs, rpc_auth, rpc_server
from kvd.api import kinds
from kvd.controller import access
from kvd.controller import operations as ops
from kvd.controller.lifecycle import Kind, Refusal
from kvd.kube.reviews import ResourceAttributes, UserInfo
from kvd.rpc.controller.v1 import controller_pb2, controller_pb2_grpc

log = logs.get_logger(__name__)

SERVICE_NAME = controller_pb2.DESCRIPTOR.services_by_name["ControllerService"].full_name
MAX_WORKERS = 64  # each console holds one for its lifetime
LATER = 'is not implemented yet: it comes with the issue "VirtualMachine verbs"'
VMIS = kinds.VMI.plural
VMS = kinds.VM.plural

_MODES = {
    controller_pb2.CONSOLE_MODE_READ_ONLY: "read-only",
    controller_pb2.CONSOLE_MODE_READ_WRITE: "read-write",
}
_TO_MODE = {name: mode for mode, name in _MODES.items()}
_CODES = {
    Kind.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Kind.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    Kind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Kind.CONFLICT: grpc.StatusCode.FAILED_PRECONDITION,
    Kind.ABORTED: grpc.StatusCode.ABORTED,
    Kind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Kind.INTERNAL: grpc.StatusCode.INTERNAL,
}


class ControllerServicer(controller_pb2_grpc.ControllerServiceServicer):
    def __init__(self, *, access: access.Access, operations: ops.Operations) -> None:
        self._access = access
        self._ops = operations

    # --- the VirtualMachine verbs --------------------------------------------------------------

    def StartVirtualMachine(  # noqa: N802
        self, request: controller_pb2.StartVirtualMachineRequest, context: grpc.ServicerContext
    ) -> controller_pb2.StartVirtualMachineResponse:
        user = self._caller(context)
        _run(context, lambda: self._ops.start(user, request.namespace, request.name))
        return controller_pb2.StartVirtualMachineResponse()

    def StopVirtualMachine(  # noqa: N802
        self, request: controller_pb2.StopVirtualMachineRequest, context: grpc.ServicerContext
    ) -> controller_pb2.StopVirtualMachineResponse:
        user = self._caller(context)
        grace = _grace(context, request)
        _run(
            context,
            lambda: self._ops.stop(user, request.namespace, request.name, grace_period=grace),
        )
        return controller_pb2.StopVirtualMachineResponse()

    def RestartVirtualMachine(  # noqa: N802
        self, request: controller_pb2.RestartVirtualMachineRequest, context: grpc.ServicerContext
    ) -> controller_pb2.RestartVirtualMachineResponse:
        user = self._caller(context)
        grace = _grace(context, request)
        _run(
            context,
            lambda: self._ops.restart(user, request.namespace, request.name, grace_period=grace),
        )
        return controller_pb2.RestartVirtualMachineResponse()

    def PauseVirtualMachineInstance(  # noqa: N802
        self,
        request: controller_pb2.PauseVirtualMachineInstanceRequest,
        context: grpc.ServicerContext,
    ) -> controller_pb2.PauseVirtualMachineInstanceResponse:
        user = self._caller(context)
        _run(context, lambda: self._ops.pause(user, request.namespace, request.name))
        return controller_pb2.PauseVirtualMachineInstanceResponse()

    def UnpauseVirtualMachineInstance(  # noqa: N802
        self,
        request: controller_pb2.UnpauseVirtualMachineInstanceRequest,
        context: grpc.ServicerContext,
    ) -> controller_pb2.UnpauseVirtualMachineInstanceResponse:
        user = self._caller(context)
        _run(context, lambda: self._ops.unpause(user, request.namespace, request.name))
        return controller_pb2.UnpauseVirtualMachineInstanceResponse()

    def Vnc(  # noqa: N802
        self, request_iterator: Iterator[controller_pb2.VncRequest], context: grpc.ServicerContext
    ) -> Iterator[controller_pb2.VncResponse]:
        user = self._caller(context)
        first = _first(request_iterator, context)
        bad_input: list[str] = []
        closing: list[Callable[[], None]] = []
        inputs = _inputs(request_iterator, bad_input, closing, field="data")
        try:
            stream = self._ops.vnc(user, first.open.namespace, first.open.name, inputs)
        except Refusal as refusal:
            _abort(context, refusal)
        closing.append(stream.close)
        if not context.add_callback(stream.close):
            stream.close()
        failure: Refusal | None = None
        try:
            for chunk in stream:
                yield controller_pb2.VncResponse(data=chunk)
        except Refusal as refusal:
            failure = refusal
        finally:
            stream.close()
        if bad_input:
            rpc_server.abort(context, grpc.StatusCode.INVALID_ARGUMENT, bad_input[0])
        if failure is not None and context.is_active():
            _abort(context, failure)

    # --- console -------------------------------------------------------------------------------

    def Console(  # noqa: N802
        self,
        request_iterator: Iterator[controller_pb2.ConsoleRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[controller_pb2.ConsoleResponse]:
        user = self._caller(context)
        first = _first(request_iterator, context)
        bad_input: list[str] = []
        closing: list[Callable[[], None]] = []
        inputs = _inputs(request_iterator, bad_input, closing)
        try:
            stream = self._ops.console(
                user,
                first.open.namespace,
                first.open.name,
                inputs,
                mode=_MODES.get(first.open.mode, str(first.open.mode)),
                replay_bytes=first.open.replay_bytes,
                take_over=first.open.take_over,
            )
        except Refusal as refusal:
            _abort(context, refusal)
        closing.append(stream.close)
        if not context.add_callback(stream.close):
            stream.close()  # the caller is gone already
        yield controller_pb2.ConsoleResponse(
            opened=controller_pb2.ConsoleOpened(
                mode=_TO_MODE[stream.mode or "read-only"], replay_bytes=stream.replay_bytes
            )
        )
        failure: Refusal | None = None
        try:
            for chunk in stream:
                yield controller_pb2.ConsoleResponse(output=chunk)
        except Refusal as refusal:
            failure = refusal
        finally:
            stream.close()
        log.info("console_closed", error=failure.message if failure else None)
        if bad_input:
            rpc_server.abort(context, grpc.StatusCode.INVALID_ARGUMENT, bad_input[0])
        if failure is not None and context.is_active():
            _abort(context, failure)

    # --- who calls ------------------------------------------------------------------------------

    def _caller(self, context: grpc.ServicerContext) -> UserInfo:
        try:
            return self._access.authenticate(context.invocation_metadata())
        except rpc_auth.Refused as refused:
            rpc_server.abort(context, refused.code, refused.message)

    def _authorize(
        self, context: grpc.ServicerContext, user: UserInfo, attributes: ResourceAttributes
    ) -> None:
        try:
            self._access.authorize(user, attributes)
        except rpc_auth.Refused as refused:
            rpc_server.abort(context, refused.code, refused.message)


def _first(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
    try:
        first = next(requests, None)
    except grpc.RpcError:
        first = None  # the caller went away before saying anything
    if first is None or first.WhichOneof("message") != "open":
        rpc_server.abort(
            context, grpc.StatusCode.INVALID_ARGUMENT, "the first message must be `open`"
        )
    return first


def _named(context: grpc.ServicerContext, namespace: str, name: str) -> tuple[str, str]:
    missing = [what for what, value in (("namespace", namespace), ("name", name)) if not value]
    if missing:
        rpc_server.abort(
            context, grpc.StatusCode.INVALID_ARGUMENT, f"{' and '.join(missing)} missing"
        )
    return namespace, name


def _inputs(
    requests: Iterator[Any],
    bad_input: list[str],
    closing: list[Callable[[], None]],
    *,
    field: str = "input",
) -> Iterator[bytes]:
    """The caller's keys, as they come; ends (a half-close upstream) when the caller's stream
    ends or fails. A second `open` is an error: recorded, and the session closed."""
    try:
        for message in requests:
            if message.WhichOneof("message") == "open":
                bad_input.append("`open` may only be the first message")
                for close in closing:
                    close()
                return
            yield getattr(message, field)
    except grpc.RpcError:
        return  # the caller cancelled; the RPC's callback closes the stream


def _grace(
    context: grpc.ServicerContext,
    request: controller_pb2.StopVirtualMachineRequest | controller_pb2.RestartVirtualMachineRequest,
) -> int | None:
    """The grace period a stop asks for: None for the VMI's own, 0 for `force`."""
    given = request.HasField("grace_period")
    seconds = request.grace_period.seconds if given else None
    if request.force:
        if seconds:
            rpc_server.abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"force stops at once: grace_period must be unset or 0, not {seconds}s",
            )
        return 0
    return seconds


def _run(context: grpc.ServicerContext, call: Callable[[], None]) -> None:
    try:
        call()
    except Refusal as refusal:
        _abort(context, refusal)


def _abort(context: grpc.ServicerContext, refusal: Refusal) -> NoReturn:
    rpc_server.abort(context, _CODES[refusal.kind], refusal.message)


def serve(
    *, address: str, servicer: ControllerServicer, credentials: grpc.ServerCredentials
) -> rpc_server.RunningService:
    """Serve ControllerService over TLS on `address` (port 0: any free one); started when this
    returns."""
    running = rpc_server.serve(
        address=address,
        service_name=SERVICE_NAME,
        add_servicer=lambda server: controller_pb2_grpc.add_ControllerServiceServicer_to_server(  # type: ignore[no-untyped-call]  # generated, unannotated
            servicer, server
        ),
        credentials=credentials,
        max_workers=MAX_WORKERS,
        thread_name_prefix="controller-rpc",
    )
    log.info("controller_service_serving", address=address, port=running.port)
    return running
