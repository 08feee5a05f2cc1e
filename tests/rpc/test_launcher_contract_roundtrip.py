"""The generated LauncherService stubs work end to end over a unix socket, as handler and
launcher use them: a unary call, a server stream, and an error carried as a status code.

A contract test with a stand-in servicer, not a test of the launcher.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from kvd.rpc.launcher.v1 import domain_pb2, launcher_pb2, launcher_pb2_grpc

VMI_UID = "6a1b3c2d-0000-4000-8000-000000000001"
TIMEOUT = 10.0


def _domain(
    state: domain_pb2.DomainState, reason: domain_pb2.DomainStateReason
) -> domain_pb2.Domain:
    return domain_pb2.Domain(
        name="default_testvmi",
        state=state,
        reason=reason,
        metadata=domain_pb2.DomainMetadata(vmi_uid=VMI_UID),
    )


class StandInLauncher(launcher_pb2_grpc.LauncherServiceServicer):
    def GetInfo(  # noqa: N802 - servicer methods carry the RPC's name
        self, request: launcher_pb2.GetInfoRequest, context: grpc.ServicerContext
    ) -> launcher_pb2.GetInfoResponse:
        return launcher_pb2.GetInfoResponse(
            supported_contract_versions=[1],
            launcher_version="0.1.0",
            emulated=True,
            emulation_reason="/dev/kvm does not exist",
            vmi_uid=VMI_UID,
        )

    def WatchDomain(  # noqa: N802 - servicer methods carry the RPC's name
        self, request: launcher_pb2.WatchDomainRequest, context: grpc.ServicerContext
    ) -> Iterator[launcher_pb2.WatchDomainResponse]:
        yield launcher_pb2.WatchDomainResponse(
            type=domain_pb2.DOMAIN_EVENT_TYPE_INITIAL,
            domain=_domain(domain_pb2.DOMAIN_STATE_SHUTOFF, domain_pb2.DOMAIN_STATE_REASON_UNKNOWN),
        )
        yield launcher_pb2.WatchDomainResponse(
            type=domain_pb2.DOMAIN_EVENT_TYPE_STATE_CHANGED,
            domain=_domain(domain_pb2.DOMAIN_STATE_RUNNING, domain_pb2.DOMAIN_STATE_REASON_BOOTED),
        )

    def GetDomain(  # noqa: N802 - servicer methods carry the RPC's name
        self, request: launcher_pb2.GetDomainRequest, context: grpc.ServicerContext
    ) -> launcher_pb2.GetDomainResponse:
        context.abort(grpc.StatusCode.NOT_FOUND, "no domain is defined")


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[launcher_pb2_grpc.LauncherServiceStub]:
    address = f"unix:{tmp_path / 'launcher.sock'}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    launcher_pb2_grpc.add_LauncherServiceServicer_to_server(StandInLauncher(), server)
    assert server.add_insecure_port(address), f"could not bind {address}"
    server.start()
    try:
        with grpc.insecure_channel(address) as channel:
            yield launcher_pb2_grpc.LauncherServiceStub(channel)
    finally:
        server.stop(grace=None)


def test_get_info_round_trips(launcher: launcher_pb2_grpc.LauncherServiceStub) -> None:
    info = launcher.GetInfo(launcher_pb2.GetInfoRequest(), timeout=TIMEOUT)

    assert list(info.supported_contract_versions) == [1]
    assert info.emulated
    assert info.emulation_reason == "/dev/kvm does not exist"
    assert info.vmi_uid == VMI_UID


def test_watch_domain_streams_current_state_then_changes_in_order(
    launcher: launcher_pb2_grpc.LauncherServiceStub,
) -> None:
    events = list(launcher.WatchDomain(launcher_pb2.WatchDomainRequest(), timeout=TIMEOUT))

    assert [(e.type, e.domain.state, e.domain.reason) for e in events] == [
        (
            domain_pb2.DOMAIN_EVENT_TYPE_INITIAL,
            domain_pb2.DOMAIN_STATE_SHUTOFF,
            domain_pb2.DOMAIN_STATE_REASON_UNKNOWN,
        ),
        (
            domain_pb2.DOMAIN_EVENT_TYPE_STATE_CHANGED,
            domain_pb2.DOMAIN_STATE_RUNNING,
            domain_pb2.DOMAIN_STATE_REASON_BOOTED,
        ),
    ]
    assert {e.domain.metadata.vmi_uid for e in events} == {VMI_UID}


def test_errors_arrive_as_status_codes(launcher: launcher_pb2_grpc.LauncherServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        launcher.GetDomain(launcher_pb2.GetDomainRequest(), timeout=TIMEOUT)

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert raised.value.details() == "no domain is defined"


def test_unimplemented_rpcs_say_so(launcher: launcher_pb2_grpc.LauncherServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        launcher.LaunchDomain(launcher_pb2.LaunchDomainRequest(vmi_uid=VMI_UID), timeout=TIMEOUT)

    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
