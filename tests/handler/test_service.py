"""HandlerService over real TCP and TLS (a certificate from the cluster CA) with a real client,
admitting callers by a real API server's TokenReview, proxying to a real `kvd launcher` that
runs a real guest (TCG). One API server, one launcher and one guest boot serve the whole
module; every test leaves the domain running and unpaused as it found it."""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kvd import rpc_auth, rpc_server, rpc_tls
from kvd.handler import auth, service
from kvd.kube import authenticator, client, reviews
from kvd.local.apiserver.tls import Certificates
from kvd.rpc.handler.v1 import handler_pb2, handler_pb2_grpc
from kvd.rpc.launcher.v1 import domain_pb2, launcher_pb2
from kvd.version import kvd_version
from tests.kube.identities import Identities
from tests.launcher.harness import RPC_TIMEOUT, Launcher
from tests.local.apiserver.conftest import Server, start_server
from tests.support import rfb, waiting
from tests.support.console import GrpcConsole

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
MARKER = f"kvd-handler-marker-{uuid.uuid4().hex[:8]}"
NODE = "node-a"
TIMEOUT = 30.0
GRPCURL = str(Path(sys.executable).parent / "grpcurl")
RW = handler_pb2.CONSOLE_MODE_READ_WRITE
RO = handler_pb2.CONSOLE_MODE_READ_ONLY
KVD_NAMESPACE = "kvd"
CONTROLLER = "system:serviceaccount:kvd:kvd-controller"


class Handler:
    def __init__(
        self,
        running: rpc_server.RunningService,
        launcher: Launcher,
        identities: Identities,
        ca: Path,
    ) -> None:
        self.running = running
        self.launcher = launcher
        self.identities = identities
        self.ca = ca
        self.address = f"127.0.0.1:{running.port}"
        # the controller's ServiceAccount token for the handler's audience, as it is projected
        self.token = identities.token(
            KVD_NAMESPACE, "kvd-controller", audiences=[rpc_auth.HANDLER_AUDIENCE]
        )
        self.channel = rpc_auth.authorized_channel(self.secure_channel(), self.token)
        self.stub = handler_pb2_grpc.HandlerServiceStub(self.channel)

    def secure_channel(self) -> grpc.Channel:
        return grpc.secure_channel(self.address, rpc_tls.channel_credentials(self.ca))

    def vmi(self, **changes: str) -> dict[str, str]:
        launcher = self.launcher
        names = {"namespace": launcher.namespace, "name": launcher.name, "uid": launcher.uid}
        return {**names, **changes}

    def domain_state(self) -> int:
        response = self.launcher.stub.GetDomain(
            launcher_pb2.GetDomainRequest(), timeout=RPC_TIMEOUT
        )
        return int(response.domain.state)


def open_console(
    handler: Handler,
    *,
    mode: int = RO,
    replay: int = 1 << 20,
    take_over: bool = False,
    **vmi: str,
) -> GrpcConsole:
    """A HandlerService Console stream of the launcher's VMI (or of the VMI `vmi` names)."""
    opened = handler_pb2.ConsoleOpen(
        mode=mode, replay_bytes=replay, take_over=take_over, **handler.vmi(**vmi)
    )
    return GrpcConsole(
        handler.stub.Console, handler_pb2.ConsoleRequest(open=opened), what="handler console"
    )


@pytest.fixture(scope="module")
def launcher(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path_factory.mktemp("launcher"), guest_dir)
    try:
        launcher.start()
        launcher.define(launcher.manifest(user_data=f"#!/bin/sh\necho {MARKER}\n"))
        launcher.stub.LaunchDomain(
            launcher_pb2.LaunchDomainRequest(vmi_uid=launcher.uid), timeout=RPC_TIMEOUT
        )
        yield launcher
    finally:
        launcher.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("handler-service") / "api")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def handler(
    launcher: Launcher, api: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Handler]:
    gone = tmp_path_factory.mktemp("gone") / "launcher.sock"  # a launcher that went away

    def locate(namespace: str, name: str, uid: str) -> Path | None:
        if uid == "gone-uid":
            return gone
        if (namespace, name, uid) == (launcher.namespace, launcher.name, launcher.uid):
            return launcher.socket
        return None

    pki = Certificates(api.data_dir)  # the cluster CA, as `kvd local up` has it sign
    cert, key = pki.issue("handler", ["127.0.0.1"])
    raw = client.Raw(client.connect(api.kubeconfig))
    review = functools.partial(reviews.token_review, raw, audiences=[rpc_auth.HANDLER_AUDIENCE])
    check = auth.CallerCheck(authenticator.TokenAuthenticator(review).authenticate, [CONTROLLER])
    running = service.serve(
        address="127.0.0.1:0",
        locate=locate,
        node_name=NODE,
        check=check.check,
        credentials=rpc_tls.server_credentials(cert, key),
    )
    handler = Handler(running, launcher, Identities(api.data_dir, api.kubeconfig), pki.ca_cert)
    try:
        yield handler
    finally:
        handler.channel.close()
        running.stop()


@pytest.fixture(scope="module")
def booted(handler: Handler) -> Handler:
    """The handler once the guest has finished booting (its shell reads the console)."""
    console = open_console(handler)
    try:
        console.wait_for("KVD-READY")
    finally:
        console.cancel()
    return handler


def test_get_info_names_the_node_version_and_contract(handler: Handler) -> None:
    info = handler.stub.GetInfo(handler_pb2.GetInfoRequest(), timeout=TIMEOUT)
    assert info.node_name == NODE
    assert info.handler_version == kvd_version()
    assert list(info.supported_contract_versions) == [1]


def test_console_shows_the_guest_and_carries_input(booted: Handler) -> None:
    reader = open_console(booted)
    writer = open_console(booted, mode=RW, replay=0, take_over=True)
    try:
        reader.wait_for(MARKER)  # printed by the user-data script, replayed from the log
        assert reader.opened is not None and reader.opened.mode == RO
        assert reader.opened.replay_bytes > 0
        writer.send(b"\necho kvd-handler-$((6 * 7))\n")
        writer.wait_for("kvd-handler-42", timeout=60)  # computed by the guest's shell
        reader.wait_for("kvd-handler-42", timeout=10)
        assert writer.opened is not None and writer.opened.mode == RW
        assert writer.opened.replay_bytes == 0
        assert MARKER not in writer.text
    finally:
        reader.cancel()
        writer.cancel()


def test_launcher_console_codes_pass_through(booted: Handler) -> None:
    writer = open_console(booted, mode=RW, replay=0, take_over=True)
    try:
        writer.send(b"echo first-$((1 + 1))\n")
        writer.wait_for("first-2", timeout=60)
        second = open_console(booted, mode=RW, replay=0)
        error = second.wait_error()
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "another client is writing" in (error.details() or "")
        taker = open_console(booted, mode=RW, replay=0, take_over=True)
        try:
            taker.send(b"echo taken-$((40 + 2))\n")
            taker.wait_for("taken-42", timeout=60)
            error = writer.wait_error()
            assert error.code() == grpc.StatusCode.ABORTED
            assert "took over" in (error.details() or "")
        finally:
            taker.cancel()
        unspecified = open_console(booted, mode=handler_pb2.CONSOLE_MODE_UNSPECIFIED)
        assert unspecified.wait_error().code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        writer.cancel()


def _thread_names() -> list[str]:
    return sorted(t.name for t in threading.enumerate())


def _wait_for_threads(count: int, before: list[str]) -> None:
    waiting.wait_for(
        f"at most {count} threads",
        lambda: threading.active_count() <= count,
        timeout=10,
        diagnose=lambda: f"threads linger: before {before}, now {_thread_names()}",
    )


def test_cancelled_and_ended_consoles_leave_no_threads(booted: Handler) -> None:
    # The server's worker pool keeps the threads it grew for the most concurrent calls so
    # far: four sessions at once first, more than this test ever has open at once.
    warm_up = [open_console(booted, replay=0) for _ in range(4)]
    for console in warm_up:
        console.wait_opened()
    for console in warm_up:
        console.cancel()
    booted.stub.GetInfo(handler_pb2.GetInfoRequest(), timeout=TIMEOUT)
    before = _thread_names()
    baseline = threading.active_count()
    _wait_for_threads(baseline, before)

    for _ in range(3):
        console = open_console(booted, mode=RW, replay=4096, take_over=True)
        console.wait_for("KVD", timeout=30)  # the replayed log: the proxy is fully set up
        console.cancel()
        _wait_for_threads(baseline, before)

    # a session the launcher ends (displaced writer) and one the handler refuses
    writer = open_console(booted, mode=RW, replay=0, take_over=True)
    writer.wait_opened()
    taker = open_console(booted, mode=RW, replay=0, take_over=True)
    assert writer.wait_error().code() == grpc.StatusCode.ABORTED
    taker.cancel()
    bad = GrpcConsole(booted.stub.Console, handler_pb2.ConsoleRequest(input=b"no open"))
    assert bad.wait_error().code() == grpc.StatusCode.INVALID_ARGUMENT
    _wait_for_threads(baseline, before)

    # the launcher still serves consoles after all that
    after = open_console(booted, replay=4096)
    try:
        after.wait_for("KVD", timeout=30)
    finally:
        after.cancel()


def test_pause_and_unpause_round_trip(booted: Handler) -> None:
    pause = handler_pb2.PauseVirtualMachineInstanceRequest(**booted.vmi())
    unpause = handler_pb2.UnpauseVirtualMachineInstanceRequest(**booted.vmi())
    assert booted.domain_state() == domain_pb2.DOMAIN_STATE_RUNNING
    try:
        booted.stub.PauseVirtualMachineInstance(pause, timeout=TIMEOUT)
        assert booted.domain_state() == domain_pb2.DOMAIN_STATE_PAUSED
        booted.stub.PauseVirtualMachineInstance(pause, timeout=TIMEOUT)  # idempotent
        assert booted.domain_state() == domain_pb2.DOMAIN_STATE_PAUSED
    finally:
        booted.stub.UnpauseVirtualMachineInstance(unpause, timeout=TIMEOUT)
    assert booted.domain_state() == domain_pb2.DOMAIN_STATE_RUNNING
    booted.stub.UnpauseVirtualMachineInstance(unpause, timeout=TIMEOUT)  # idempotent
    assert booted.domain_state() == domain_pb2.DOMAIN_STATE_RUNNING
    # and the guest runs again: its shell answers
    writer = open_console(booted, mode=RW, replay=0, take_over=True)
    try:
        writer.send(b"echo resumed-$((3 * 3))\n")
        writer.wait_for("resumed-9", timeout=60)
    finally:
        writer.cancel()


@pytest.mark.parametrize(
    ("vmi", "code", "message"),
    [
        pytest.param(
            {"uid": "other-uid"}, grpc.StatusCode.NOT_FOUND, "runs on node node-a", id="other-uid"
        ),
        pytest.param(
            {"name": "other"}, grpc.StatusCode.NOT_FOUND, "no VMI default/other", id="other-name"
        ),
        pytest.param({"uid": ""}, grpc.StatusCode.INVALID_ARGUMENT, "uid missing", id="no-uid"),
        pytest.param(
            {"uid": "gone-uid"}, grpc.StatusCode.UNAVAILABLE, "not reachable", id="no-launcher"
        ),
    ],
)
def test_vmis_not_served_here_are_refused(
    handler: Handler, vmi: dict[str, str], code: grpc.StatusCode, message: str
) -> None:
    calls = [
        lambda: handler.stub.PauseVirtualMachineInstance(
            handler_pb2.PauseVirtualMachineInstanceRequest(**handler.vmi(**vmi)), timeout=TIMEOUT
        ),
        lambda: handler.stub.UnpauseVirtualMachineInstance(
            handler_pb2.UnpauseVirtualMachineInstanceRequest(**handler.vmi(**vmi)),
            timeout=TIMEOUT,
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == code
        assert message in (caught.value.details() or "")
    error = open_console(handler, **vmi).wait_error()
    assert error.code() == code
    assert message in (error.details() or "")
    vnc_error = open_vnc(handler, **vmi).wait_ended()
    assert vnc_error is not None and vnc_error.code() == code
    assert message in (vnc_error.details() or "")


def test_console_must_start_with_open(handler: Handler) -> None:
    first = handler_pb2.ConsoleRequest(input=b"hello")
    error = GrpcConsole(handler.stub.Console, first).wait_error()
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "first console message must be `open`" in (error.details() or "")


def test_an_unknown_console_mode_is_refused_before_the_launcher(handler: Handler) -> None:
    error = open_console(handler, mode=7).wait_error()
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unknown console mode 7" in (error.details() or "")


def open_vnc(
    handler: Handler, *, metadata: list[tuple[str, str]] | None = None, **vmi: str
) -> rfb.GrpcVnc:
    """A HandlerService Vnc stream of the launcher's VMI (or of the VMI `vmi` names)."""
    return rfb.GrpcVnc(
        handler.stub.Vnc,
        lambda data: handler_pb2.VncRequest(data=data),
        first=handler_pb2.VncRequest(open=handler_pb2.VncOpen(**handler.vmi(**vmi))),
        metadata=metadata,
    )


def test_vnc_passes_rfb_through_both_ways_and_leaves_no_threads(booted: Handler) -> None:
    # as for consoles: the worker pool first grows to more sessions than are open below
    warm_up = [open_vnc(booted) for _ in range(3)]
    for pipe in warm_up:
        rfb.handshake(pipe)
        pipe.cancel()
        pipe.wait_ended()
    before = _thread_names()
    baseline = threading.active_count()

    first, second = open_vnc(booted), open_vnc(booted)
    one, two = rfb.handshake(first), rfb.handshake(second)
    assert (one.width, one.height) == (two.width, two.height) == booted.launcher.screen_size()
    first.half_close()  # passed on to QEMU, which hangs up: the stream ends OK
    assert first.wait_ended() is None
    second.cancel()
    error = second.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.CANCELLED
    _wait_for_threads(baseline, before)


def test_vnc_must_start_with_open(handler: Handler) -> None:
    pipe = rfb.GrpcVnc(
        handler.stub.Vnc,
        lambda data: handler_pb2.VncRequest(data=data),
        first=handler_pb2.VncRequest(data=rfb.BANNER),
    )
    error = pipe.wait_ended()
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "first VNC message must be `open`" in (error.details() or "")


def refusals(identities: Identities) -> list[Any]:
    """(metadata, code, what the message says) for callers HandlerService must refuse."""
    audience = [rpc_auth.HANDLER_AUDIENCE]
    controller_for_the_api = identities.token(KVD_NAMESPACE, "kvd-controller")
    expired = identities.expired_token(KVD_NAMESPACE, "kvd-controller", audiences=audience)
    other_account = identities.token(KVD_NAMESPACE, "default", audiences=audience)
    alice = identities.user_token("alice", "system:masters")  # even a cluster admin
    unauthenticated = grpc.StatusCode.UNAUTHENTICATED
    return [
        pytest.param([], unauthenticated, "missing credentials", id="no-token"),
        pytest.param([("authorization", "Basic abc")], unauthenticated, "malformed", id="basic"),
        pytest.param(rpc_auth.call_metadata("garbage"), unauthenticated, "invalid", id="garbage"),
        pytest.param(
            rpc_auth.call_metadata(controller_for_the_api),
            unauthenticated,
            "invalid credentials",
            id="the-controller-for-another-audience",
        ),
        pytest.param(
            rpc_auth.call_metadata(expired), unauthenticated, "invalid credentials", id="expired"
        ),
        pytest.param(
            rpc_auth.call_metadata(alice), unauthenticated, "invalid credentials", id="a-user"
        ),
        pytest.param(
            rpc_auth.call_metadata(other_account),
            grpc.StatusCode.PERMISSION_DENIED,
            'User "system:serviceaccount:kvd:default" cannot call HandlerService',
            id="another-service-account",
        ),
    ]


def test_callers_but_the_controller_are_refused(booted: Handler) -> None:
    for case in refusals(booted.identities):
        metadata, code, message = case.values
        with booted.secure_channel() as channel:
            stub = handler_pb2_grpc.HandlerServiceStub(channel)
            unary = [
                lambda stub=stub, md=metadata: stub.GetInfo(
                    handler_pb2.GetInfoRequest(), metadata=md, timeout=TIMEOUT
                ),
                lambda stub=stub, md=metadata: stub.PauseVirtualMachineInstance(
                    handler_pb2.PauseVirtualMachineInstanceRequest(**booted.vmi()),
                    metadata=md,
                    timeout=TIMEOUT,
                ),
            ]
            for call in unary:
                with pytest.raises(grpc.RpcError) as caught:
                    call()
                assert caught.value.code() == code, case.id
                details = caught.value.details() or ""
                assert message in details, (case.id, details)
                for _, value in metadata:
                    assert value.partition(" ")[2] not in details  # never echoed
            opened = handler_pb2.ConsoleOpen(mode=RO, **booted.vmi())
            first = handler_pb2.ConsoleRequest(open=opened)
            console = GrpcConsole(stub.Console, first, metadata=metadata)
            error = console.wait_error()
            assert error.code() == code, case.id
            assert message in (error.details() or "")
            assert console.opened is None and console.text == ""
            vnc = rfb.GrpcVnc(
                stub.Vnc,
                lambda data: handler_pb2.VncRequest(data=data),
                first=handler_pb2.VncRequest(open=handler_pb2.VncOpen(**booted.vmi())),
                metadata=metadata,
            )
            vnc_error = vnc.wait_ended()
            assert vnc_error is not None and vnc_error.code() == code, case.id
            assert message in (vnc_error.details() or "")
    assert booted.domain_state() == domain_pb2.DOMAIN_STATE_RUNNING  # the pause never got through


def test_the_controllers_token_in_call_metadata_works_without_the_interceptor(
    handler: Handler,
) -> None:
    with handler.secure_channel() as channel:
        stub = handler_pb2_grpc.HandlerServiceStub(channel)
        info = stub.GetInfo(
            handler_pb2.GetInfoRequest(), metadata=rpc_auth.call_metadata(handler.token), timeout=10
        )
    assert info.node_name == NODE


def test_plaintext_is_not_served(handler: Handler) -> None:
    with grpc.insecure_channel(handler.address) as channel:
        stub = handler_pb2_grpc.HandlerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetInfo(
                handler_pb2.GetInfoRequest(),
                metadata=rpc_auth.call_metadata(handler.token),
                timeout=TIMEOUT,
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_health_needs_no_token_and_reflection_does(handler: Handler) -> None:
    with handler.secure_channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "kvd.rpc.handler.v1.HandlerService"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=TIMEOUT)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
    tls = ["-cacert", str(handler.ca)]
    header = f"authorization: Bearer {handler.token}"
    listed = subprocess.run(
        [GRPCURL, *tls, "-H", header, handler.address, "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "kvd.rpc.handler.v1.HandlerService" in listed.stdout.split()
    assert "grpc.health.v1.Health" in listed.stdout.split()
    refused = subprocess.run(
        [GRPCURL, *tls, handler.address, "list"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode != 0
    assert "missing credentials" in refused.stderr


def test_serve_reports_an_address_it_cannot_bind(handler: Handler, api: Server) -> None:
    cert, key = Certificates(api.data_dir).issue("handler-2", ["127.0.0.1"])
    with pytest.raises(OSError, match="cannot listen"):
        service.serve(
            address=handler.address,
            locate=lambda *_: None,
            node_name=NODE,
            check=lambda _: None,
            credentials=rpc_tls.server_credentials(cert, key),
        )
