"""The users' operations, implemented once for every transport: ControllerService (gRPC,
`service.py`) and the aggregated API `subresources.kubevirt.io` (HTTPS, `subresources.py`) are
thin adapters that authenticate the caller their own way, then call these.

Each operation authorizes first, as KubeVirt's virt-api does: a SubjectAccessReview for the
caller on the matching `subresources.kubevirt.io` resource (`virtualmachines/start`, …), before
any lookup, so a caller without the right learns nothing about which objects exist. Then:

- start / stop / restart read the VM and its VMI from the API server (not the cache: the
  patches are guarded by what was read) and write what `lifecycle` says; a guard that failed
  (someone else changed the VM meanwhile) is read again and retried a few times;
- pause / unpause check the VMI (from the cache) and ask its node's HandlerService;
- console / vnc open a stream to the VMI's node's HandlerService and hand back a `Stream`:
  iterate it for the guest's bytes, feed it an iterator of the caller's, `close()` it to end.

Failures are `lifecycle.Refusal`s whose kind each transport maps onto its codes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import grpc

from kvd import logs, rpc_auth
from kvd.api import kinds
from kvd.controller import access, lifecycle
from kvd.controller.handlers import HandlerConfigError, Handlers, HandlerUnreachable
from kvd.controller.lifecycle import Kind, Refusal
from kvd.kube.client import ApiError, Raw
from kvd.kube.reviews import ResourceAttributes, UserInfo
from kvd.rpc.handler.v1 import handler_pb2

log = logs.get_logger(__name__)

Json = dict[str, Any]
VmiLookup = Callable[[str], Json | None]
"""`namespace/name` → the VMI from the controller's cache, or None."""
ConsoleMode = Literal["read-only", "read-write"]

VMIS = kinds.VMI.plural
VMS = kinds.VM.plural
HANDLER_TIMEOUT = 15.0  # a pause or unpause: the launcher answers once libvirt has
ATTEMPTS = 3  # reads and guarded writes, when another writer got in between
JSON_PATCH = "application/json-patch+json"
_TEST_FAILED = ("test failed", "test operation does not apply")
_MODES: dict[str, handler_pb2.ConsoleMode] = {
    "read-only": handler_pb2.CONSOLE_MODE_READ_ONLY,
    "read-write": handler_pb2.CONSOLE_MODE_READ_WRITE,
}
_REFUSED_CODES = {
    grpc.StatusCode.UNAUTHENTICATED: Kind.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: Kind.FORBIDDEN,
    grpc.StatusCode.UNAVAILABLE: Kind.UNAVAILABLE,
}
# What the handler's (and its launcher's) codes mean to the caller. The handler refusing the
# controller itself (UNAUTHENTICATED, PERMISSION_DENIED) is kvd's misconfiguration.
_HANDLER_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: Kind.INVALID,
    grpc.StatusCode.NOT_FOUND: Kind.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION: Kind.CONFLICT,
    grpc.StatusCode.ABORTED: Kind.ABORTED,
    grpc.StatusCode.UNAVAILABLE: Kind.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: Kind.UNAVAILABLE,
}


def refused(exc: rpc_auth.Refused) -> Refusal:
    return Refusal(_REFUSED_CODES.get(exc.code, Kind.INTERNAL), exc.message)


def handler_failure(exc: grpc.RpcError, node: str) -> Refusal | None:
    """A failed handler call as the caller should see it; None when the caller cancelled it."""
    code = exc.code()
    details = exc.details() or code.name
    if code == grpc.StatusCode.CANCELLED:
        return None
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        log.error("handler_refused_controller", node=node, code=code.name, error=details)
        return Refusal(
            Kind.INTERNAL,
            f"kvd is misconfigured: the handler of node {node} refused the controller "
            f"({code.name}: {details})",
        )
    kind = _HANDLER_CODES.get(code, Kind.INTERNAL)
    if kind == Kind.UNAVAILABLE:
        details = f"node {node}: {details}"
    return Refusal(kind, details)


class Stream:
    """One open console or VNC session on a VMI's node. Iterating yields the guest's bytes
    until either side ends; a failure of the node's side is raised as a `Refusal` at the end.
    `close()` (idempotent, any thread) ends it and releases the channel."""

    def __init__(
        self,
        call: Any,
        channel: grpc.Channel,
        node: str,
        extract: Callable[[Any], bytes | None],
        *,
        mode: ConsoleMode | None = None,
        replay_bytes: int = 0,
    ) -> None:
        self._call = call
        self._channel = channel
        self._node = node
        self._extract = extract
        self._closed = threading.Event()
        self.mode = mode
        self.replay_bytes = replay_bytes

    def __iter__(self) -> Iterator[bytes]:
        try:
            for response in self._call:
                data = self._extract(response)
                if data:
                    yield data
        except grpc.RpcError as exc:
            failure = None if self._closed.is_set() else handler_failure(exc, self._node)
            if failure is not None:
                raise failure from None
        finally:
            self.close()

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._call.cancel()
            self._channel.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()


class Operations:
    def __init__(
        self, *, access: access.Access, raw: Raw, vmis: VmiLookup, handlers: Handlers
    ) -> None:
        self._access = access
        self._raw = raw
        self._vmis = vmis
        self._handlers = handlers

    # --- VirtualMachines -----------------------------------------------------------------------

    def start(
        self, user: UserInfo, ns: str, name: str, *, paused: bool = False, dry_run: bool = False
    ) -> None:
        self._authorize(user, access.subresource(VMS, "start", "update", ns, name))
        self._on_vm(ns, name, lambda vm, vmi: [lifecycle.start(vm, vmi, paused=paused)], dry_run)
        log.info("vm_start_requested", vm=f"{ns}/{name}", user=user.username, dry_run=dry_run)

    def stop(
        self,
        user: UserInfo,
        ns: str,
        name: str,
        *,
        grace_period: int | None = None,
        dry_run: bool = False,
    ) -> None:
        self._authorize(user, access.subresource(VMS, "stop", "update", ns, name))
        self._on_vm(
            ns, name, lambda vm, vmi: lifecycle.stop(vm, vmi, grace_period=grace_period), dry_run
        )
        log.info("vm_stop_requested", vm=f"{ns}/{name}", user=user.username, grace=grace_period)

    def restart(
        self,
        user: UserInfo,
        ns: str,
        name: str,
        *,
        grace_period: int | None = None,
        dry_run: bool = False,
    ) -> None:
        self._authorize(user, access.subresource(VMS, "restart", "update", ns, name))
        self._on_vm(
            ns,
            name,
            lambda vm, vmi: lifecycle.restart(vm, vmi, grace_period=grace_period),
            dry_run,
        )
        log.info("vm_restart_requested", vm=f"{ns}/{name}", user=user.username, grace=grace_period)

    def _on_vm(
        self,
        ns: str,
        name: str,
        plan: Callable[[Json, Json | None], list[lifecycle.Patch]],
        dry_run: bool,
    ) -> None:
        for attempt in range(ATTEMPTS):
            vm = self._read(kinds.VM.path(ns, name))
            if vm is None:
                raise Refusal(Kind.NOT_FOUND, f'{VMS}.{kinds.GROUP} "{name}" not found')
            vmi = self._read(kinds.VMI.path(ns, name))
            patches = plan(vm, vmi)
            try:
                for patch in patches:
                    self._apply(patch, ns, name, dry_run)
                return
            except _Stale:
                if attempt == ATTEMPTS - 1:
                    raise Refusal(
                        Kind.CONFLICT,
                        f"VM {ns}/{name} kept changing while it was being updated; try again",
                    ) from None

    def _apply(self, patch: lifecycle.Patch, ns: str, name: str, dry_run: bool) -> None:
        path = {
            "spec": kinds.VM.path(ns, name),
            "status": kinds.VM.path(ns, name) + "/status",
            "vmi": kinds.VMI.path(ns, name),
        }[patch.target]
        query = {"dryRun": "All"} if dry_run else None
        try:
            self._raw.request("PATCH", path, body=patch.ops, query=query, content_type=JSON_PATCH)
        except ApiError as exc:
            # a failed `test` (422 here, as kube's; KubeVirt matches kube's wording) or a 409
            test_failed = any(words in exc.message for words in _TEST_FAILED)
            if exc.conflict or (exc.status == 422 and test_failed):
                raise _Stale from None
            raise _api_refusal(exc) from None

    def _read(self, path: str) -> Json | None:
        try:
            return self._raw.get(path)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise _api_refusal(exc) from None

    # --- VirtualMachineInstances: pause, unpause -----------------------------------------------

    def pause(self, user: UserInfo, ns: str, name: str, *, dry_run: bool = False) -> None:
        self._pause(user, ns, name, pause=True, dry_run=dry_run)

    def unpause(self, user: UserInfo, ns: str, name: str, *, dry_run: bool = False) -> None:
        self._pause(user, ns, name, pause=False, dry_run=dry_run)

    def _pause(self, user: UserInfo, ns: str, name: str, *, pause: bool, dry_run: bool) -> None:
        verb = "pause" if pause else "unpause"
        self._authorize(user, access.subresource(VMIS, verb, "update", ns, name))
        check = lifecycle.check_pause if pause else lifecycle.check_unpause
        vmi, node = self._vmi_on_node(ns, name, check)
        if not dry_run:
            method = "PauseVirtualMachineInstance" if pause else "UnpauseVirtualMachineInstance"
            message = getattr(handler_pb2, f"{method}Request")
            self._call(node, method, message(namespace=ns, name=name, uid=vmi["metadata"]["uid"]))
        log.info(f"vmi_{verb}d", vmi=f"{ns}/{name}", user=user.username, dry_run=dry_run)

    def _call(self, node: str, method: str, request: Any) -> None:
        channel, stub = self._connect(node)
        try:
            getattr(stub, method)(request, timeout=HANDLER_TIMEOUT)
        except grpc.RpcError as exc:
            raise (handler_failure(exc, node) or Refusal(Kind.UNAVAILABLE, "cancelled")) from None
        finally:
            channel.close()

    # --- VirtualMachineInstances: console, vnc -------------------------------------------------

    def console(
        self,
        user: UserInfo,
        ns: str,
        name: str,
        inputs: Iterable[bytes],
        *,
        mode: str,
        replay_bytes: int = 0,
        take_over: bool = False,
    ) -> Stream:
        """The VMI's serial console, opened: its `mode` and `replay_bytes` are the handler's
        answer; `inputs` (a writer's keys) is consumed on gRPC's thread until it ends."""
        self._authorize(user, access.subresource(VMIS, "console", "get", ns, name))
        handler_mode = _MODES.get(mode)
        if handler_mode is None:
            raise Refusal(
                Kind.INVALID, f"console mode {mode} is not one: say READ_ONLY or READ_WRITE"
            )
        vmi, node = self._vmi_on_node(ns, name, _must_run)
        opening = handler_pb2.ConsoleOpen(
            namespace=ns,
            name=name,
            uid=vmi["metadata"]["uid"],
            mode=handler_mode,
            replay_bytes=replay_bytes,
            take_over=take_over,
        )

        def requests() -> Iterator[handler_pb2.ConsoleRequest]:
            yield handler_pb2.ConsoleRequest(open=opening)
            for chunk in inputs:
                yield handler_pb2.ConsoleRequest(input=chunk)

        channel, stub = self._connect(node)
        call = stub.Console(requests())
        try:
            first = next(call)
        except grpc.RpcError as exc:
            channel.close()
            raise (handler_failure(exc, node) or Refusal(Kind.UNAVAILABLE, "cancelled")) from None
        except StopIteration:
            channel.close()
            raise Refusal(Kind.UNAVAILABLE, f"node {node}: the console closed at once") from None
        granted = next((m for m, h in _MODES.items() if h == first.opened.mode), mode)
        log.info("console_opened", vmi=f"{ns}/{name}", user=user.username, node=node, mode=mode)
        return Stream(
            call,
            channel,
            node,
            lambda r: r.output if r.WhichOneof("message") == "output" else None,
            mode=granted,  # type: ignore[arg-type]  # one of _MODES' keys
            replay_bytes=first.opened.replay_bytes,
        )

    def vnc(self, user: UserInfo, ns: str, name: str, inputs: Iterable[bytes]) -> Stream:
        """The VMI's VNC display: RFB bytes both ways, through its node's HandlerService.Vnc."""
        self._authorize(user, access.subresource(VMIS, "vnc", "get", ns, name))
        vmi, node = self._vmi_on_node(ns, name, _must_run)
        opening = handler_pb2.VncOpen(namespace=ns, name=name, uid=vmi["metadata"]["uid"])

        def requests() -> Iterator[handler_pb2.VncRequest]:
            yield handler_pb2.VncRequest(open=opening)
            for chunk in inputs:
                yield handler_pb2.VncRequest(data=chunk)

        channel, stub = self._connect(node)
        log.info("vnc_opened", vmi=f"{ns}/{name}", user=user.username, node=node)
        return Stream(stub.Vnc(requests()), channel, node, lambda r: bytes(r.data))

    # --- shared steps --------------------------------------------------------------------------

    def _authorize(self, user: UserInfo, attributes: ResourceAttributes) -> None:
        named = (("namespace", attributes.namespace), ("name", attributes.name))
        missing = [what for what, value in named if not value]
        if missing:
            raise Refusal(Kind.INVALID, f"{' and '.join(missing)} missing")
        try:
            self._access.authorize(user, attributes)
        except rpc_auth.Refused as exc:
            raise refused(exc) from None

    def _vmi_on_node(self, ns: str, name: str, check: Callable[[Json], None]) -> tuple[Json, str]:
        vmi = self._vmis(f"{ns}/{name}")
        if vmi is None:
            raise Refusal(
                Kind.NOT_FOUND, f'{VMIS}.{kinds.GROUP} "{name}" not found in namespace {ns}'
            )
        check(vmi)
        node = str((vmi.get("status") or {}).get("nodeName") or "")
        if not node:
            raise lifecycle.conflict(f"VirtualMachineInstance {ns}/{name} is on no node yet")
        return vmi, node

    def _connect(self, node: str) -> tuple[grpc.Channel, Any]:
        try:
            return self._handlers.connect(node)
        except HandlerUnreachable as exc:
            raise Refusal(Kind.UNAVAILABLE, str(exc)) from None
        except HandlerConfigError as exc:
            log.error("handler_credentials_missing", node=node, error=str(exc))
            raise Refusal(Kind.INTERNAL, f"kvd is misconfigured: {exc}") from None


class _Stale(Exception):
    """A guarded patch found the object changed since it was read."""


def _must_run(vmi: Json) -> None:
    status = vmi.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase != "Running" or not status.get("nodeName"):
        meta = vmi["metadata"]
        raise lifecycle.conflict(
            f"VirtualMachineInstance {meta.get('namespace')}/{meta['name']} is {phase}, not Running"
        )


def _api_refusal(exc: ApiError) -> Refusal:
    if exc.status == 0:
        return Refusal(Kind.UNAVAILABLE, f"the API server is not reachable: {exc.message}")
    if exc.not_found:
        return Refusal(Kind.NOT_FOUND, exc.message)
    if exc.status == 403:  # the controller's own rights: kvd's RBAC is wrong
        log.error("controller_forbidden", error=exc.message)
        return Refusal(Kind.INTERNAL, f"kvd is misconfigured: {exc.message}")
    if exc.status in (400, 422):
        return Refusal(Kind.INVALID, exc.message)
    return Refusal(Kind.INTERNAL, exc.message)
