"""`kvd handler --listen` as a process against a real `kvd local apiserver`: it serves
HandlerService over TLS with the certificate it is given, publishes where on its Node (the
annotation the controller dials), tells tools in its address file, and takes the annotation
away when it stops."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kvd import address_file, rpc_tls
from kvd.api import crds, keys, kinds
from kvd.kube import client
from kvd.local.apiserver.tls import Certificates
from tests.handler.test_metrics import handler
from tests.local.apiserver.conftest import Server, start_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
NODE = "node-m"  # test_metrics.handler's


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path / "api")
    raw = client.Raw(client.connect(s.kubeconfig))
    raw.create(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        crds.crd(kinds.KINDS["VirtualMachineInstance"]),
    )
    raw.create("/api/v1/nodes", {"metadata": {"name": NODE}})
    try:
        yield s
    finally:
        s.stop()


def annotation(raw: client.Raw) -> str | None:
    node = raw.get(f"/api/v1/nodes/{NODE}")
    found = (node["metadata"].get("annotations") or {}).get(keys.HANDLER_ADDRESS)
    return str(found) if found is not None else None


def test_the_handler_publishes_its_address_while_it_serves(server: Server, tmp_path: Path) -> None:
    raw = client.Raw(client.connect(server.kubeconfig))
    pki = Certificates(server.data_dir)
    cert, key = pki.issue("handler", ["127.0.0.1"])
    addresses = tmp_path / "address.json"
    proc = handler(
        server, tmp_path, "--listen", "127.0.0.1:0", "--tls-cert-file", str(cert),
        "--tls-key-file", str(key), "--address-file", str(addresses),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert "(HandlerService on port" in line, (tmp_path / "handler.log").read_text()
        published = annotation(raw)
        assert published == address_file.read(addresses).addresses["handlerService"]
        assert published is not None and line.endswith(f"port {published.rpartition(':')[2]})")
        with grpc.secure_channel(published, rpc_tls.channel_credentials(pki.ca_cert)) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=30
            )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert annotation(raw) is None
        assert not addresses.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_certificate_that_does_not_pair_with_its_key_is_refused(
    server: Server, tmp_path: Path
) -> None:
    pki = Certificates(server.data_dir)
    cert, _ = pki.issue("handler", ["127.0.0.1"])
    _, other_key = pki.issue("other", ["127.0.0.1"])
    proc = handler(
        server, tmp_path, "--listen", "127.0.0.1:0", "--tls-cert-file", str(cert),
        "--tls-key-file", str(other_key),
    )  # fmt: skip
    try:
        assert proc.wait(timeout=60) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "handler.log").read_text()
    assert "do not make a usable pair" in log
    raw = client.Raw(client.connect(server.kubeconfig))
    labels = raw.get(f"/api/v1/nodes/{NODE}")["metadata"].get("labels") or {}
    assert keys.SCHEDULABLE not in labels  # refused before it touched the node
