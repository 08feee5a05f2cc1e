"""ControllerService: the users' operations on VMs and VMIs, served by every controller replica.

Every call goes the same way, as virt-api's subresource handlers do: authenticate the caller
(`access.Access`: TokenReview), read what the call names, authorize it
(SubjectAccessReview on its `subresources.kubevirt.io` resource, before any lookup), then act.
Each replica serves, leader or not: the calls read only the informer caches every replica
keeps warm, and write through the API server. The later issue "VirtualMachine verbs" fills in
start/stop/restart/pause/unpause (and maps the aggregated `subresources.kubevirt.io`
API onto these same methods); until then they authenticate and authorize like the rest, then
answer UNIMPLEMENTED.

Console and Vnc (one path, `_stream`, parameterized by the handler RPC and the subresource
authorized): the VMI (from the cache) must be Running on a node; the stream is proxied to that
node's HandlerService.Console or .Vnc (`handlers.Handlers`: TLS, the controller's own token),
and from there on passes through unchanged. The caller's input is read by the handler call's
request iterator; whichever side ends first ends the other (a caller that cancels cancels the
handler call; a handler that ends the stream ends the caller's with the same status, except
that the handler refusing the controller itself — UNAUTHENTICATED, PERMISSION_DENIED — means
kvd is misconfigured and becomes INTERNAL, as the contract says).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc

from kvd import logs, rpc_auth, rpc_server
from kvd.api import kinds
from kvd.controller import access
from kvd.controller.handlers import HandlerConfigError, Handlers, HandlerUnreachable
from kvd.kube.reviews import ResourceAttributes, UserInfo
from kvd.rpc.controller.v1 import controller_pb2, controller_pb2_grpc
from kvd.rpc.handler.v1 import handler_pb2

log = logs.get_logger(__name__)

Json = dict[str, Any]
VmiLookup = Callable[[str], Json | None]
"""`namespace/name` → the VMI from the controller's cache, or None."""

SERVICE_NAME = controller_pb2.DESCRIPTOR.services_by_name["ControllerService"].full_name
MAX_WORKERS = 64  # each console holds one for its lifetime
LATER = 'is not implemented yet: it comes with the issue "VirtualMachine verbs"'
VMIS = kinds.VMI.plural
VMS = "virtualmachines"

_TO_HANDLER_MODE = {
    controller_pb2.CONSOLE_MODE_UNSPECIFIED: handler_pb2.CONSOLE_MODE_UNSPECIFIED,
    controller_pb2.CONSOLE_MODE_READ_ONLY: handler_pb2.CONSOLE_MODE_READ_ONLY,
    controller_pb2.CONSOLE_MODE_READ_WRITE: handler_pb2.CONSOLE_MODE_READ_WRITE,
}
_FROM_HANDLER_MODE = {h: c for c, h in _TO_HANDLER_MODE.items()}
# The handler refusing the controller is kvd's misconfiguration, not the caller's problem.
_MISCONFIGURED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


class ControllerServicer(controller_pb2_grpc.ControllerServiceServicer):
    def __init__(self, *, access: access.Access, vmis: VmiLookup, handlers: Handlers) -> None:
        self._access = access
        self._vmis = vmis
        self._handlers = handlers

    # --- the VirtualMachine verbs (a later issue) ----------------------------------------------

    def StartVirtualMachine(self, request: Any, context: grpc.ServicerContext) -> NoReturn:  # noqa: N802
        self._later(context, "StartVirtualMachine", request, VMS, "start")

    def StopVirtualMachine(self, request: Any, context: grpc.ServicerContext) -> NoReturn:  # noqa: N802
        self._later(context, "StopVirtualMachine", request, VMS, "stop")

    def RestartVirtualMachine(self, request: Any, context: grpc.ServicerContext) -> NoReturn:  # noqa: N802
        self._later(context, "RestartVirtualMachine", request, VMS, "restart")

    def PauseVirtualMachineInstance(  # noqa: N802
        self, request: Any, context: grpc.ServicerContext
    ) -> NoReturn:
        self._later(context, "PauseVirtualMachineInstance", request, VMIS, "pause")

    def UnpauseVirtualMachineInstance(  # noqa: N802
        self, request: Any, context: grpc.ServicerContext
    ) -> NoReturn:
        self._later(context, "UnpauseVirtualMachineInstance", request, VMIS, "unpause")

    def Vnc(  # noqa: N802
        self, request_iterator: Iterator[controller_pb2.VncRequest], context: grpc.ServicerContext
    ) -> Iterator[controller_pb2.VncResponse]:
        yield from self._stream(
            context,
            request_iterator,
            subresource="vnc",
            handler_call=lambda stub: stub.Vnc,
            opening=lambda first, uid: handler_pb2.VncRequest(
                open=handler_pb2.VncOpen(
                    namespace=first.open.namespace, name=first.open.name, uid=uid
                )
            ),
            upstream=lambda message: handler_pb2.VncRequest(data=message.data),
            downstream=lambda response: controller_pb2.VncResponse(data=response.data),
        )

    def _later(
        self, context: grpc.ServicerContext, rpc: str, request: Any, resource: str, verb: str
    ) -> NoReturn:
        user = self._caller(context)
        ns, name = _named(context, request.namespace, request.name)
        self._authorize(context, user, access.subresource(resource, verb, "update", ns, name))
        rpc_server.abort(context, grpc.StatusCode.UNIMPLEMENTED, f"{rpc} {LATER}")

    # --- console -------------------------------------------------------------------------------

    def Console(  # noqa: N802
        self,
        request_iterator: Iterator[controller_pb2.ConsoleRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[controller_pb2.ConsoleResponse]:
        def check(first: controller_pb2.ConsoleRequest) -> None:
            mode = _TO_HANDLER_MODE.get(first.open.mode)
            if mode is None or mode == handler_pb2.CONSOLE_MODE_UNSPECIFIED:
                rpc_server.abort(
                    context,
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"console mode {first.open.mode} is not one: say READ_ONLY or READ_WRITE",
                )

        def opening(first: controller_pb2.ConsoleRequest, uid: str) -> handler_pb2.ConsoleRequest:
            return handler_pb2.ConsoleRequest(
                open=handler_pb2.ConsoleOpen(
                    namespace=first.open.namespace,
                    name=first.open.name,
                    uid=uid,
                    mode=_TO_HANDLER_MODE[first.open.mode],
                    replay_bytes=first.open.replay_bytes,
                    take_over=first.open.take_over,
                )
            )

        yield from self._stream(
            context,
            request_iterator,
            subresource="console",
            check=check,
            handler_call=lambda stub: stub.Console,
            opening=opening,
            upstream=lambda message: handler_pb2.ConsoleRequest(input=message.input),
            downstream=_from_handler,
        )

    def _stream(
        self,
        context: grpc.ServicerContext,
        request_iterator: Iterator[Any],
        *,
        subresource: str,
        handler_call: Callable[[Any], Callable[..., Any]],
        opening: Callable[[Any, str], Any],
        upstream: Callable[[Any], Any],
        downstream: Callable[[Any], Any],
        check: Callable[[Any], None] = lambda first: None,
    ) -> Iterator[Any]:
        """A stream to the VMI's node's handler (Console, Vnc): authenticate, authorize
        `virtualmachineinstances/<subresource>`, find the running VMI's node, then proxy
        the caller's messages (`upstream`) and the handler's (`downstream`) until either
        side ends. `opening(first, uid)` is the handler call's first request."""
        user = self._caller(context)
        first = _first(request_iterator, context)
        ns, name = _named(context, first.open.namespace, first.open.name)
        self._authorize(context, user, access.subresource(VMIS, subresource, "get", ns, name))
        check(first)
        vmi, node = self._running(context, ns, name)
        session_log = log.bind(rpc=subresource, vmi=f"{ns}/{name}", user=user.username, node=node)
        try:
            channel, stub = self._handlers.connect(node)
        except HandlerUnreachable as exc:
            rpc_server.abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        except HandlerConfigError as exc:
            session_log.error("handler_credentials_missing", error=str(exc))
            rpc_server.abort(context, grpc.StatusCode.INTERNAL, f"kvd is misconfigured: {exc}")
        bad_input: list[str] = []
        requests = _upstream(
            opening(first, vmi["metadata"]["uid"]),
            request_iterator,
            bad_input,
            convert=upstream,
            what=subresource,
        )
        call = handler_call(stub)(requests)
        if not context.add_callback(call.cancel):
            call.cancel()  # the caller is gone already
        session_log.info(f"{subresource}_opened")
        failure: tuple[grpc.StatusCode, str] | None = None
        try:
            for response in call:
                yield downstream(response)
        except grpc.RpcError as exc:
            failure = self._failure(exc, node, bad_input)
        finally:
            call.cancel()
            channel.close()
        session_log.info(f"{subresource}_closed", error=failure[1] if failure else None)
        if failure is not None and context.is_active():
            rpc_server.abort(context, *failure)

    def _failure(
        self, exc: grpc.RpcError, node: str, bad_input: list[str]
    ) -> tuple[grpc.StatusCode, str] | None:
        code, details = exc.code(), exc.details() or ""
        if bad_input:
            return grpc.StatusCode.INVALID_ARGUMENT, bad_input[0]
        if code == grpc.StatusCode.CANCELLED:
            return None  # the caller ended it
        if code in _MISCONFIGURED:
            log.error("handler_refused_controller", node=node, code=code.name, error=details)
            return (
                grpc.StatusCode.INTERNAL,
                f"kvd is misconfigured: the handler of node {node} refused the controller "
                f"({code.name}: {details})",
            )
        if code == grpc.StatusCode.UNAVAILABLE:  # the handler's, or its launcher's
            details = f"node {node}: {details}"
        return code, details

    def _running(self, context: grpc.ServicerContext, ns: str, name: str) -> tuple[Json, str]:
        vmi = self._vmis(f"{ns}/{name}")
        if vmi is None:
            rpc_server.abort(
                context,
                grpc.StatusCode.NOT_FOUND,
                f'{VMIS}.{kinds.GROUP} "{name}" not found in namespace {ns}',
            )
        status = vmi.get("status") or {}
        phase, node = status.get("phase") or "Pending", status.get("nodeName") or ""
        if phase != "Running" or not node:
            rpc_server.abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"VirtualMachineInstance {ns}/{name} is {phase}, not Running",
            )
        return vmi, str(node)

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


def _upstream(
    opened: Any,
    requests: Iterator[Any],
    bad_input: list[str],
    *,
    convert: Callable[[Any], Any],
    what: str,
) -> Iterator[Any]:
    """The handler call's requests: `opened`, then the caller's messages as they come
    (`convert`ed). Ends (a half-close) when the caller's stream ends or fails; gRPC consumes
    it on its own thread."""
    yield opened
    try:
        for message in requests:
            if message.WhichOneof("message") == "open":
                bad_input.append(f"`open` may only be the first {what} message")
                return
            yield convert(message)
    except grpc.RpcError:
        return  # the caller cancelled; the RPC's callback cancels the handler call


def _from_handler(response: handler_pb2.ConsoleResponse) -> controller_pb2.ConsoleResponse:
    if response.WhichOneof("message") == "opened":
        return controller_pb2.ConsoleResponse(
            opened=controller_pb2.ConsoleOpened(
                mode=_FROM_HANDLER_MODE.get(
                    response.opened.mode, controller_pb2.CONSOLE_MODE_UNSPECIFIED
                ),
                replay_bytes=response.opened.replay_bytes,
            )
        )
    return controller_pb2.ConsoleResponse(output=response.output)


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
