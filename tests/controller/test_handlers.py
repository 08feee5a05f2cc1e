"""The controller's channel to a handler checks the handler's certificate: against the address it
dials, or, with a server name (the chart's `--handler-server-name`), against that one name, which
is how a certificate made ahead of time fits handlers listening on pod IPs. Real TLS, real gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kvd import rpc_server, rpc_tls
from kvd.api import keys
from kvd.controller.handlers import Handlers
from kvd.local.apiserver.tls import Certificates

NAME = "kvd-handler.kvd-system.svc"


@pytest.fixture
def pki(tmp_path: Path) -> Certificates:
    return Certificates(tmp_path)


@pytest.fixture
def handler(pki: Certificates) -> Iterator[int]:
    """A TLS gRPC server (only health) whose certificate names NAME and no address."""
    cert, key = pki.issue("handler", [NAME])
    running = rpc_server.serve(
        address="127.0.0.1:0",
        service_name="test.Nothing",
        add_servicer=lambda server: None,
        credentials=rpc_tls.server_credentials(cert, key),
        max_workers=2,
        thread_name_prefix="test-handler",
    )
    yield running.port
    running.stop(grace=0)


def _check(handlers: Handlers) -> health_pb2.HealthCheckResponse.ServingStatus:
    channel, _ = handlers.connect("node-1")
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)  # type: ignore[no-untyped-call]
        return stub.Check(health_pb2.HealthCheckRequest(), timeout=10).status


def _handlers(pki: Certificates, tmp_path: Path, port: int, server_name: str) -> Handlers:
    token = tmp_path / "token"
    token.write_text("t\n")
    node = {"metadata": {"annotations": {keys.HANDLER_ADDRESS: f"127.0.0.1:{port}"}}}
    return Handlers(
        lambda name: node if name == "node-1" else None,
        ca_file=pki.ca_cert,
        token_file=token,
        server_name=server_name,
    )


def test_with_the_server_name_a_certificate_naming_no_address_is_accepted(
    pki: Certificates, tmp_path: Path, handler: int
) -> None:
    assert _check(_handlers(pki, tmp_path, handler, NAME)) == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "server_name",
    [
        pytest.param("", id="the-address"),
        pytest.param("kvd-handler.elsewhere.svc", id="another-name"),
    ],
)
def test_a_certificate_not_naming_what_is_checked_is_refused(
    pki: Certificates, tmp_path: Path, handler: int, server_name: str
) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        _check(_handlers(pki, tmp_path, handler, server_name))
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
