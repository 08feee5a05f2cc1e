"""ControllerService end to end in one process (`stack.running_stack`): a real API server
reviews the callers' tokens and rights, the controller's servicer proxies over TLS, as its own
ServiceAccount, to a real HandlerService, which proxies to a real `kvd launcher` running a real
guest (TCG). One boot serves the module. (`kvdctl console` on the whole local cluster, with
RBAC roles bound to users, is tests/e2e/test_console.py.)"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from PIL import Image

from kvd import portforward, rpc_auth
from kvd.api import keys
from kvd.rpc.controller.v1 import controller_pb2
from kvd.rpc.launcher.v1 import domain_pb2, launcher_pb2
from tests.controller.stack import NAME, NODE, NS, VMIS, VMS, Stack, running_stack
from tests.launcher.harness import RPC_TIMEOUT
from tests.support import rfb, waiting
from tests.support.console import GrpcConsole

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
MARKER = f"kvd-controller-marker-{uuid.uuid4().hex[:8]}"
TIMEOUT = 30.0
RW = controller_pb2.CONSOLE_MODE_READ_WRITE


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("controller-service"), guest_dir, MARKER) as made:
        yield made


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


def _vm(stack: Stack, name: str, **spec: Any) -> dict[str, Any]:
    domain = {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}
    template = {"spec": {"domain": domain}}
    return stack.raw.create(
        VMS,
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": name},
            "spec": {"template": template, **spec},
        },
    )


def _refused(call: Any, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=TIMEOUT)
    return caught.value


def test_start_stop_and_restart_write_what_kubevirts_do(stack: Stack) -> None:
    """No VM controller runs here: the test sees what the verbs wrote, as KubeVirt's
    virt-controller would read it."""
    stub, pb = stack.stub(stack.admin()), controller_pb2
    # vm1 has the running VMI vm1
    _vm(stack, NAME, runStrategy="Always")
    vmi_uid = stack.raw.get(f"{VMIS}/{NAME}")["metadata"]["uid"]
    running = _refused(
        stub.StartVirtualMachine, pb.StartVirtualMachineRequest(namespace=NS, name=NAME)
    )
    assert running.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already running" in (running.details() or "")
    stub.RestartVirtualMachine(
        pb.RestartVirtualMachineRequest(namespace=NS, name=NAME), timeout=TIMEOUT
    )
    requests = stack.raw.get(f"{VMS}/{NAME}")["status"]["stateChangeRequests"]
    assert requests == [{"action": "Stop", "uid": vmi_uid}, {"action": "Start"}]
    twice = _refused(
        stub.RestartVirtualMachine, pb.RestartVirtualMachineRequest(namespace=NS, name=NAME)
    )
    assert "already underway" in (twice.details() or "")
    bad = _refused(
        stub.StopVirtualMachine,
        pb.StopVirtualMachineRequest(
            namespace=NS, name=NAME, force=True, grace_period={"seconds": 3}
        ),
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    stub.StopVirtualMachine(
        pb.StopVirtualMachineRequest(namespace=NS, name=NAME, grace_period={"seconds": 7}),
        timeout=TIMEOUT,
    )
    assert stack.raw.get(f"{VMS}/{NAME}")["spec"]["runStrategy"] == "Halted"
    assert stack.raw.get(f"{VMIS}/{NAME}")["spec"]["terminationGracePeriodSeconds"] == 7
    # vm2 has no VMI
    _vm(stack, "vm2", running=False)
    stub.StartVirtualMachine(
        pb.StartVirtualMachineRequest(namespace=NS, name="vm2"), timeout=TIMEOUT
    )
    assert stack.raw.get(f"{VMS}/vm2")["spec"]["running"] is True
    stub.StopVirtualMachine(pb.StopVirtualMachineRequest(namespace=NS, name="vm2"), timeout=TIMEOUT)
    assert stack.raw.get(f"{VMS}/vm2")["spec"]["running"] is False
    for rpc, request in (
        (stub.StopVirtualMachine, pb.StopVirtualMachineRequest),
        (stub.RestartVirtualMachine, pb.RestartVirtualMachineRequest),
    ):
        stopped = _refused(rpc, request(namespace=NS, name="vm2"))
        assert stopped.code() == grpc.StatusCode.FAILED_PRECONDITION
    missing = _refused(
        stub.StartVirtualMachine, pb.StartVirtualMachineRequest(namespace=NS, name="nothere")
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    bob = stack.stub(stack.identities.user_token("bob"))
    denied = _refused(
        bob.StartVirtualMachine, pb.StartVirtualMachineRequest(namespace=NS, name="vm2")
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "cannot update virtualmachines/start" in (denied.details() or "")


def _domain_state(stack: Stack) -> int:
    got = stack.launcher.stub.GetDomain(launcher_pb2.GetDomainRequest(), timeout=RPC_TIMEOUT)
    return int(got.domain.state)


def test_pause_and_unpause_reach_the_guest(stack: Stack) -> None:
    stub, pb = stack.stub(stack.admin()), controller_pb2
    pause = pb.PauseVirtualMachineInstanceRequest(namespace=NS, name=NAME)
    unpause = pb.UnpauseVirtualMachineInstanceRequest(namespace=NS, name=NAME)
    not_paused = _refused(stub.UnpauseVirtualMachineInstance, unpause)
    assert not_paused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is not paused" in (not_paused.details() or "")
    stub.PauseVirtualMachineInstance(pause, timeout=TIMEOUT)
    assert _domain_state(stack) == domain_pb2.DOMAIN_STATE_PAUSED
    # the handler's agent (not running here) would set the condition; the verbs read it
    condition = {"type": "Paused", "status": "True"}
    stack.raw.merge_patch(f"{VMIS}/{NAME}", {"status": {"conditions": [condition]}})
    try:
        again = _refused(stub.PauseVirtualMachineInstance, pause)
        assert "already paused" in (again.details() or "")
        stub.UnpauseVirtualMachineInstance(unpause, timeout=TIMEOUT)
        assert _domain_state(stack) == domain_pb2.DOMAIN_STATE_RUNNING
    finally:
        stack.raw.merge_patch(f"{VMIS}/{NAME}", {"status": {"conditions": None}})
    bob = stack.stub(stack.identities.user_token("bob"))
    denied = _refused(bob.PauseVirtualMachineInstance, pause)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "virtualmachineinstances/pause" in (denied.details() or "")


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
