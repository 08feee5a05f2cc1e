"""Client certificates signed by the local cluster's CA name their user, as kube's x509
authenticator does; anything else presented in the handshake is refused there."""

from __future__ import annotations

import datetime
import http.client
import json
import ssl
import subprocess
from pathlib import Path

import pytest

from kvd.local.apiserver import clientcerts, tls
from tests.local import kubectl
from tests.local.apiserver.conftest import Server

pytestmark = pytest.mark.integration


def _as_certificate(
    server: Server, tmp_path: Path, cert: bytes, key: bytes, *args: str
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "c.crt").write_bytes(cert)
    (tmp_path / "c.key").write_bytes(key)
    empty = tmp_path / "empty-kubeconfig"
    empty.write_text("")
    ca = server.data_dir / "pki" / "ca.crt"
    return kubectl.run(
        empty,
        tmp_path,
        "--server", server.url, "--certificate-authority", str(ca),
        "--client-certificate", str(tmp_path / "c.crt"), "--client-key", str(tmp_path / "c.key"),
        *args,
        check=False,
    )  # fmt: skip


def test_a_node_certificate_is_the_node_user_in_its_groups(server: Server, tmp_path: Path) -> None:
    cert, key = clientcerts.issue(
        tls.Certificates(server.data_dir), "system:node:n1", ("system:nodes",)
    )
    done = _as_certificate(server, tmp_path, cert, key, "auth", "whoami", "-o", "json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)["status"]["userInfo"]
    assert info["username"] == "system:node:n1"
    assert info["groups"] == ["system:nodes", "system:authenticated"]


def _handshake(server: Server, tmp_path: Path, cert: bytes, key: bytes) -> int:
    """The status of `GET /version` over a connection presenting `cert` (ssl.SSLError when the
    server refuses the handshake)."""
    (tmp_path / "h.crt").write_bytes(cert)
    (tmp_path / "h.key").write_bytes(key)
    context = ssl.create_default_context(cafile=server.data_dir / "pki" / "ca.crt")
    context.load_cert_chain(tmp_path / "h.crt", tmp_path / "h.key")
    host, _, port = server.url.removeprefix("https://").rpartition(":")
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    try:
        connection.request("GET", "/version")
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_certificate_from_another_ca_or_expired_or_for_serving_fails_the_handshake(
    server: Server, tmp_path: Path
) -> None:
    """kube-apiserver answers such a certificate with 401 after the handshake; Python's ssl
    can only verify in the handshake, so here the connection is refused: a refusal either way."""
    mine = tls.Certificates(server.data_dir)
    foreign = clientcerts.issue(tls.Certificates(tmp_path / "other"), "system:node:n1")
    expired = clientcerts.issue(mine, "alice", validity=-datetime.timedelta(minutes=1))
    pki = server.data_dir / "pki"
    serving = ((pki / "apiserver.crt").read_bytes(), (pki / "apiserver.key").read_bytes())
    assert _handshake(server, tmp_path, *clientcerts.issue(mine, "alice")) == 200
    for cert, key in (foreign, expired, serving):
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            _handshake(server, tmp_path, cert, key)
    server.kubectl("get", "namespaces")  # and everyone else is still served
