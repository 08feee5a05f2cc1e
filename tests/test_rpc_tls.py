"""TLS for kvd's gRPC services, with certificates the local cluster's CA issues: a real client
verifies the server (its address included), a renewed certificate is served without a restart,
and files that do not make a pair are refused, by name."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from kvd import rpc_tls
from kvd.local.apiserver.tls import Certificates

TIMEOUT = 10.0


@pytest.fixture
def pki(tmp_path: Path) -> Certificates:
    return Certificates(tmp_path)


def serve(credentials: grpc.ServerCredentials) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    identity: dict[str, Any] = {"request_deserializer": None, "response_serializer": None}
    handlers = {"Unary": grpc.unary_unary_rpc_method_handler(lambda r, c: b"ok", **identity)}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Echo", handlers),))
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


@pytest.fixture
def served(pki: Certificates) -> Iterator[tuple[Certificates, int, Path, Path]]:
    cert, key = pki.issue("handler", ["127.0.0.1", "node-a"])
    server, port = serve(rpc_tls.server_credentials(cert, key))
    try:
        yield pki, port, cert, key
    finally:
        server.stop(None).wait(5)


def call(port: int, ca: Path, *, target: str = "127.0.0.1") -> bytes:
    options = [] if target == "127.0.0.1" else [("grpc.ssl_target_name_override", target)]
    with grpc.secure_channel(
        f"127.0.0.1:{port}", rpc_tls.channel_credentials(ca), options=options
    ) as channel:
        answer: bytes = channel.unary_unary("/t.Echo/Unary")(b"", timeout=TIMEOUT)
        return answer


def serial(port: int) -> int:
    import ssl  # noqa: PLC0415 - only to read what the server presents

    pem = ssl.get_server_certificate(("127.0.0.1", port))
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def test_a_client_trusting_the_cluster_ca_reaches_the_server(
    served: tuple[Certificates, int, Path, Path],
) -> None:
    pki, port, _, key = served
    assert call(port, pki.ca_cert) == b"ok"
    assert call(port, pki.ca_cert, target="node-a") == b"ok"
    assert os.stat(key).st_mode & 0o777 == 0o600


def test_a_name_the_certificate_lacks_or_another_ca_is_refused(
    served: tuple[Certificates, int, Path, Path], tmp_path: Path
) -> None:
    pki, port, _, _ = served
    with pytest.raises(grpc.RpcError) as failed:
        call(port, pki.ca_cert, target="node-b")
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    other = Certificates(tmp_path / "other")
    with pytest.raises(grpc.RpcError) as failed:
        call(port, other.ca_cert)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_renewed_certificate_is_served_to_new_connections(
    served: tuple[Certificates, int, Path, Path],
) -> None:
    pki, port, cert, _ = served
    before = serial(port)
    assert before == x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    pki.issue("handler", ["127.0.0.1"])
    renewed = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    assert renewed != before
    assert serial(port) == renewed
    assert call(port, pki.ca_cert) == b"ok"


def test_a_half_written_renewal_keeps_the_last_good_pair(
    served: tuple[Certificates, int, Path, Path],
) -> None:
    pki, port, _, key = served
    before = serial(port)
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot yet\n")
    assert serial(port) == before
    assert call(port, pki.ca_cert) == b"ok"


@pytest.mark.parametrize("broken", ["missing-cert", "not-pem", "mismatched-key"])
def test_unusable_files_are_refused_naming_them(pki: Certificates, broken: str) -> None:
    cert, key = pki.issue("handler", ["127.0.0.1"])
    if broken == "missing-cert":
        cert.unlink()
        match = f"certificate file {cert} does not exist"
    elif broken == "not-pem":
        cert.write_text("hello\n")
        match = f"certificate file {cert} holds no PEM data"
    else:
        _, key = pki.issue("controller", ["127.0.0.1"])
        match = "do not make a usable pair"
    with pytest.raises(rpc_tls.TLSError, match=match):
        rpc_tls.server_credentials(cert, key)


def test_issue_refuses_names_that_would_overwrite_the_clusters_own(pki: Certificates) -> None:
    for name in ("ca", "apiserver", "sa", "../x", ""):
        with pytest.raises(ValueError, match="cannot name"):
            pki.issue(name, ["127.0.0.1"])
    with pytest.raises(ValueError, match="at least one host"):
        pki.issue("handler", [])
