"""ControllerService.Console end to end in one process: a real API server reviews the callers'
tokens and rights, the controller's servicer proxies over TLS, as its own ServiceAccount, to a
real HandlerService, which proxies to a real `kvd launcher` running a real guest (TCG). One
boot serves the module. (`kvdctl console` on the whole local cluster, with RBAC roles bound
to users, is tests/e2e/test_console.py.)"""

from __future__ import annotations

import functools
import itertools
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from PIL import Image

from kvd import portforward, rpc_auth, rpc_tls
from kvd.api import keys, kinds
from kvd.controller import access, service
from kvd.controller.handlers import Handlers
from kvd.handler import auth
from kvd.handler import service as handler_service
from kvd.kube import authenticator, client, reviews
from kvd.local.apiserver.tls import Certificates
from kvd.rpc.controller.v1 import controller_pb2, controller_pb2_grpc
from kvd.rpc.launcher.v1 import launcher_pb2
from tests.kube.identities import Identities
from tests.launcher.harness import RPC_TIMEOUT, Launcher, vmi_manifest
from tests.local.apiserver.conftest import CRDS, Server, start_server
from tests.support import rfb, waiting
from tests.support.console import GrpcConsole

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
MARKER = f"kvd-controller-marker-{uuid.uuid4().hex[:8]}"
NS, NAME, NODE = "a", "vm1", "node-a"
TIMEOUT = 30.0
VMIS = f"/apis/kubevirt.io/v1/namespaces/{NS}/virtualmachineinstances"
RW = controller_pb2.CONSOLE_MODE_READ_WRITE
RO = controller_pb2.CONSOLE_MODE_READ_ONLY
CONTROLLER_SA = "system:serviceaccount:kvd:kvd-controller"


@dataclass
class Stack:
    api: Server
    identities: Identities
    raw: client.Raw
    address: str
    ca: Path
    handler_token: Path  # the file the controller reads its token for the handlers from
    launcher: Launcher

    def stub(self, token: str | None) -> controller_pb2_grpc.ControllerServiceStub:
        channel = grpc.secure_channel(self.address, rpc_tls.channel_credentials(self.ca))
        if token is not None:
            channel = rpc_auth.authorized_channel(channel, token)
        return controller_pb2_grpc.ControllerServiceStub(channel)

    def admin(self) -> str:
        return (self.api.data_dir / "token").read_text().strip()

    def vnc(self, token: str | None, *, name: str = NAME) -> rfb.GrpcVnc:
        return rfb.GrpcVnc(
            self.stub(token).Vnc,
            lambda data: controller_pb2.VncRequest(data=data),
            first=controller_pb2.VncRequest(open=controller_pb2.VncOpen(namespace=NS, name=name)),
        )

    def console(
        self, token: str | None, *, mode: int = RO, name: str = NAME, **kw: Any
    ) -> GrpcConsole:
        opened = controller_pb2.ConsoleOpen(
            namespace=NS, name=name, mode=mode, replay_bytes=kw.pop("replay", 1 << 20), **kw
        )
        return GrpcConsole(
            self.stub(token).Console,
            controller_pb2.ConsoleRequest(open=opened),
            what="controller console",
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("controller-service")
    api = start_server(base / "api")
    launcher: Launcher | None = None
    servers: list[Any] = []
    try:
        api.kubectl("apply", "-f", str(CRDS))
        api.kubectl("wait", "--for=condition=established", "--timeout=30s", "crd", "--all")
        raw = client.Raw(client.connect(api.kubeconfig))
        identities = Identities(api.data_dir, api.kubeconfig)
        identities.service_account(NS, "default")  # and its namespace
        vmi = launcher_vmi(raw)
        launcher = Launcher(base / "launcher", guest_dir, namespace=NS, name=NAME, uid=vmi)
        launcher.start()
        launcher.define(launcher.manifest(user_data=f"#!/bin/sh\necho {MARKER}\n"))
        launcher.stub.LaunchDomain(
            launcher_pb2.LaunchDomainRequest(vmi_uid=launcher.uid), timeout=RPC_TIMEOUT
        )
        raw.merge_patch(f"{VMIS}/{NAME}", {"status": {"phase": "Running", "nodeName": NODE}})
        pki = Certificates(api.data_dir)
        socket = launcher.socket

        def locate(namespace: str, name: str, uid: str) -> Path | None:
            return socket if (namespace, name, uid) == (NS, NAME, vmi) else None

        # the node's handler, as `kvd handler --listen` serves it
        cert, key = pki.issue("handler", ["127.0.0.1"])
        handler_review = functools.partial(
            reviews.token_review, raw, audiences=[rpc_auth.HANDLER_AUDIENCE]
        )
        check = auth.CallerCheck(
            authenticator.TokenAuthenticator(handler_review).authenticate, [CONTROLLER_SA]
        )
        handler = handler_service.serve(
            address="127.0.0.1:0",
            locate=locate,
            node_name=NODE,
            check=check.check,
            credentials=rpc_tls.server_credentials(cert, key),
        )
        servers.append(handler)
        raw.create(
            "/api/v1/nodes",
            {
                "metadata": {
                    "name": NODE,
                    "annotations": {keys.HANDLER_ADDRESS: f"127.0.0.1:{handler.port}"},
                }
            },
        )
        # the controller, as `kvd controller --listen` serves it
        token_file = base / "handler-token"
        token_file.write_text(
            identities.token("kvd", "kvd-controller", audiences=[rpc_auth.HANDLER_AUDIENCE])
        )
        cert, key = pki.issue("controller", ["127.0.0.1"])
        users = authenticator.TokenAuthenticator(functools.partial(reviews.token_review, raw))
        servicer = service.ControllerServicer(
            access=access.Access(users.authenticate, functools.partial(reviews.access_review, raw)),
            vmis=lambda key: _get(raw, kinds.VMI.path(*key.split("/"))),
            handlers=Handlers(
                lambda node: _get(raw, f"/api/v1/nodes/{node}"),
                ca_file=pki.ca_cert,
                token_file=token_file,
            ),
        )
        controller = service.serve(
            address="127.0.0.1:0",
            servicer=servicer,
            credentials=rpc_tls.server_credentials(cert, key),
        )
        servers.append(controller)
        yield Stack(
            api, identities, raw, f"127.0.0.1:{controller.port}", pki.ca_cert, token_file, launcher
        )
    finally:
        for server in reversed(servers):
            server.stop()
        if launcher is not None:
            launcher.close()
        api.stop()


def launcher_vmi(raw: client.Raw) -> str:
    """The VMI in the API (for the servicer's lookup); its uid, which the launcher runs."""
    manifest = vmi_manifest(namespace=NS, name=NAME, uid="", user_data="#!/bin/sh\n")
    del manifest["metadata"]["uid"]
    created = raw.create(VMIS, manifest)
    return str(created["metadata"]["uid"])


def _get(raw: client.Raw, path: str) -> dict[str, Any] | None:
    try:
        return raw.get(path)
    except client.ApiError as exc:
        if exc.not_found:
            return None
        raise


def test_an_authorized_user_gets_the_guests_console_and_types_into_it(stack: Stack) -> None:
    reader = stack.console(stack.admin())
    reader.wait_for(MARKER)  # the user-data script's line
    writer = stack.console(stack.admin(), mode=RW, replay=0, take_over=True)
    try:
        writer.send(b"\necho via-controller-$((6 * 7))\n")
        writer.wait_for("via-controller-42", timeout=60)
        reader.wait_for("via-controller-42", timeout=10)
        assert writer.opened is not None and writer.opened.mode == RW
    finally:
        reader.cancel()
        writer.cancel()
    later = stack.console(stack.admin())  # the log so far is replayed first
    try:
        later.wait_for("via-controller-42")
        assert later.opened is not None and later.opened.replay_bytes > 0
    finally:
        later.cancel()


def test_a_user_without_the_right_is_refused_naming_it(stack: Stack) -> None:
    bob = stack.identities.user_token("bob")
    error = stack.console(bob).wait_error()
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == (
        'User "bob" cannot get virtualmachineinstances/console in API group '
        '"subresources.kubevirt.io" in the namespace "a"'
    )
    # before any lookup: a VMI that does not exist is refused the same way
    assert stack.console(bob, name="nothere").wait_error().details() == error.details()


@pytest.mark.parametrize(
    ("token", "message"),
    [
        pytest.param(None, "missing credentials", id="none"),
        pytest.param("garbage", "invalid credentials", id="garbage"),
        pytest.param("handler-audience", "invalid credentials", id="another-audience"),
    ],
)
def test_callers_without_valid_credentials_are_unauthenticated(
    stack: Stack, token: str | None, message: str
) -> None:
    if token == "handler-audience":  # the controller's own token for the nodes
        token = stack.handler_token.read_text().strip()
    error = stack.console(token).wait_error()
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert message in (error.details() or "")


def test_what_the_console_cannot_open(stack: Stack) -> None:
    admin = stack.admin()
    missing = stack.console(admin, name="nothere").wait_error()
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert '"nothere" not found in namespace a' in (missing.details() or "")
    bad_mode = stack.console(admin, mode=controller_pb2.CONSOLE_MODE_UNSPECIFIED).wait_error()
    assert bad_mode.code() == grpc.StatusCode.INVALID_ARGUMENT
    no_open = GrpcConsole(
        stack.stub(admin).Console, controller_pb2.ConsoleRequest(input=b"hi")
    ).wait_error()
    assert no_open.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "first message must be `open`" in (no_open.details() or "")


def test_a_vmi_not_running_is_a_failed_precondition(stack: Stack) -> None:
    stack.raw.merge_patch(f"{VMIS}/{NAME}", {"status": {"phase": "Scheduled"}})
    try:
        error = stack.console(stack.admin()).wait_error()
    finally:
        stack.raw.merge_patch(f"{VMIS}/{NAME}", {"status": {"phase": "Running"}})
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "a/vm1 is Scheduled, not Running" in (error.details() or "")


def test_a_node_whose_handler_does_not_serve_is_unavailable(stack: Stack) -> None:
    path = f"/api/v1/nodes/{NODE}"
    address = stack.raw.get(path)["metadata"]["annotations"][keys.HANDLER_ADDRESS]
    stack.raw.merge_patch(path, {"metadata": {"annotations": {keys.HANDLER_ADDRESS: None}}})
    try:
        error = stack.console(stack.admin()).wait_error()
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert keys.HANDLER_ADDRESS in (error.details() or "")
    finally:
        stack.raw.merge_patch(path, {"metadata": {"annotations": {keys.HANDLER_ADDRESS: address}}})


def test_the_handler_refusing_the_controller_is_internal(stack: Stack) -> None:
    """The controller's token file holding someone else's token: kvd's misconfiguration, which
    the user is told is not theirs."""
    good = stack.handler_token.read_text()
    other = stack.identities.token("kvd", "default", audiences=[rpc_auth.HANDLER_AUDIENCE])
    stack.handler_token.write_text(other)  # read again, as a rotated token is
    try:
        error = stack.console(stack.admin()).wait_error()
    finally:
        stack.handler_token.write_text(good)
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "kvd is misconfigured" in (error.details() or "")
    assert "system:serviceaccount:kvd:default" in (error.details() or "")
    again = stack.console(stack.admin())
    try:
        again.wait_opened()
    finally:
        again.cancel()


def test_the_vm_verbs_are_authorized_then_unimplemented(stack: Stack) -> None:
    stub = stack.stub(stack.admin())
    calls = {
        "StartVirtualMachine": controller_pb2.StartVirtualMachineRequest,
        "StopVirtualMachine": controller_pb2.StopVirtualMachineRequest,
        "RestartVirtualMachine": controller_pb2.RestartVirtualMachineRequest,
        "PauseVirtualMachineInstance": controller_pb2.PauseVirtualMachineInstanceRequest,
        "UnpauseVirtualMachineInstance": controller_pb2.UnpauseVirtualMachineInstanceRequest,
    }
    for rpc, request in calls.items():
        with pytest.raises(grpc.RpcError) as caught:
            getattr(stub, rpc)(request(namespace=NS, name=NAME), timeout=TIMEOUT)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED, rpc
        assert '"VirtualMachine verbs"' in (caught.value.details() or "")
    bob = stack.stub(stack.identities.user_token("bob"))
    with pytest.raises(grpc.RpcError) as caught:
        bob.StartVirtualMachine(
            controller_pb2.StartVirtualMachineRequest(namespace=NS, name=NAME), timeout=TIMEOUT
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "cannot update virtualmachines/start" in (caught.value.details() or "")


def _threads_settle(count: int, before: list[str]) -> None:
    waiting.wait_for(
        f"at most {count} threads",
        lambda: threading.active_count() <= count,
        timeout=10,
        diagnose=lambda: f"threads linger: before {before}, now {_names()}",
    )


def _names() -> list[str]:
    return sorted(t.name for t in threading.enumerate())


def test_consoles_ended_either_way_leave_no_threads(stack: Stack) -> None:
    admin = stack.admin()
    # both servers keep the worker threads they grew for the most concurrent calls so far
    warm_up = [stack.console(admin, replay=0) for _ in range(4)]
    for console in warm_up:
        console.wait_opened()
    for console in warm_up:
        console.cancel()
    before, baseline = _names(), threading.active_count()
    _threads_settle(baseline, before)
    for _ in range(3):  # the caller cancels
        console = stack.console(admin, mode=RW, replay=4096, take_over=True)
        console.wait_for("KVD", timeout=30)
        console.cancel()
        _threads_settle(baseline, before)
    writer = stack.console(admin, mode=RW, replay=0, take_over=True)  # the launcher ends it
    writer.wait_opened()
    taker = stack.console(admin, mode=RW, replay=0, take_over=True)
    assert writer.wait_error().code() == grpc.StatusCode.ABORTED
    taker.cancel()
    _threads_settle(baseline, before)


class _VncBytes:
    """ControllerService.Vnc as the bridge wants it: bytes in, bytes out, and cancel."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __iter__(self) -> Iterator[bytes]:
        return (response.data for response in self._call)

    def cancel(self) -> object:
        return self._call.cancel()


def test_a_real_vnc_client_through_the_bridge_sees_the_guests_screen(
    stack: Stack, tmp_path: Path
) -> None:
    stub = stack.stub(stack.admin())
    opened = controller_pb2.VncRequest(open=controller_pb2.VncOpen(namespace=NS, name=NAME))

    def open_stream(outgoing: Iterator[bytes]) -> _VncBytes:
        data = (controller_pb2.VncRequest(data=chunk) for chunk in outgoing)
        return _VncBytes(stub.Vnc(itertools.chain([opened], data)))

    errors: list[BaseException] = []
    shot = tmp_path / "screen.png"
    vncdo = str(Path(sys.executable).parent / "vncdo")
    with portforward.Bridge(open_stream, on_error=errors.append) as bridge:
        done = subprocess.run(
            [vncdo, "-s", f"127.0.0.1::{bridge.port}", "-t", "120", "capture", str(shot)],
            check=False,  # its output goes into the failure message below
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, (done.stdout, done.stderr, errors)
        waiting.wait_for("the client's connection to end", lambda: bridge.connections == 0)
    assert errors == []
    with Image.open(shot) as image:
        assert image.size == stack.launcher.screen_size()
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 1, "the guest's screen is blank"


def test_vnc_is_authorized_as_its_own_subresource(stack: Stack) -> None:
    pipe = stack.vnc(stack.admin())
    init = rfb.handshake(pipe)
    assert (init.width, init.height) == stack.launcher.screen_size()
    pipe.half_close()
    assert pipe.wait_ended() is None

    error = stack.vnc(stack.identities.user_token("bob")).wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == (
        'User "bob" cannot get virtualmachineinstances/vnc in API group '
        '"subresources.kubevirt.io" in the namespace "a"'
    )
    missing = stack.vnc(stack.admin(), name="nothere").wait_ended()
    assert missing is not None and missing.code() == grpc.StatusCode.NOT_FOUND


def test_vnc_sessions_ended_either_way_leave_no_threads(stack: Stack) -> None:
    admin = stack.admin()
    # both servers keep the worker threads they grew for the most concurrent calls so far
    warm_up = [stack.vnc(admin) for _ in range(3)]
    for pipe in warm_up:
        rfb.handshake(pipe)
    for pipe in warm_up:
        pipe.cancel()
        pipe.wait_ended()
    before, baseline = _names(), threading.active_count()
    _threads_settle(baseline, before)
    for _ in range(2):
        closing, cancelled, hung_up = stack.vnc(admin), stack.vnc(admin), stack.vnc(admin)
        for pipe in (closing, cancelled, hung_up):
            rfb.handshake(pipe)
        closing.half_close()  # the caller is done: passed on to QEMU, which closes, OK
        assert closing.wait_ended() is None
        cancelled.cancel()
        hung_up.send(b"\x99")  # no RFB message: QEMU hangs up, and the stream ends OK
        assert hung_up.wait_ended() is None
        cancelled.wait_ended()
        _threads_settle(baseline, before)
