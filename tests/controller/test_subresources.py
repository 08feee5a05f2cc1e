"""The aggregated API `subresources.kubevirt.io` over HTTPS, as the API server's front proxy
calls it: a test CA signs a front-proxy client certificate, the ConfigMap
`kube-system/extension-apiserver-authentication` names it, and requests carry the user in
X-Remote-* headers. Behind the server, the same real stack as test_service.py (API server,
HandlerService, launcher running a real guest). The websocket streams are read with a real
client, websocket-client."""

from __future__ import annotations

import datetime
import http.client
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websocket as wsclient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kvd.controller import frontproxy, subresources
from kvd.kube import client
from tests.controller.stack import NAME, NS, VMIS, VMS, Stack, running_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
MARKER = f"kvd-subresources-marker-{uuid.uuid4().hex[:8]}"
PROXY_NAME = "front-proxy-client"
ADMIN = {"X-Remote-User": "alice", "X-Remote-Group": "system:masters"}
BASE = f"/apis/subresources.kubevirt.io/v1/namespaces/{NS}"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey]
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer[0]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=subject == issuer[0], path_length=None), True)
    )
    return builder.sign(issuer[1], hashes.SHA256())


@dataclass
class Client:
    """A TLS client identity: its certificate and key files (None: no certificate)."""

    files: tuple[Path, Path] | None


def _pair(base: Path, name: str, cn: str, ca: tuple[str, ec.EllipticCurvePrivateKey]) -> Client:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(cn, key, ca)
    cert_file, key_file = base / f"{name}.crt", base / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Client((cert_file, key_file))


@dataclass
class Api:
    stack: Stack
    port: int
    proxy: Client  # the front proxy's certificate
    impostor: Client  # the right common name, from the front-proxy CA, but not allowed
    stranger: Client  # a certificate from another CA

    def context(self, who: Client) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.stack.pki.ca_cert))
        if who.files is not None:
            context.load_cert_chain(*who.files)
        return context

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: dict[str, str] | None = None,
        who: Client | None = None,
    ) -> tuple[int, Any]:
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context(who or self.proxy), timeout=30
        )
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers=headers if headers is not None else ADMIN)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode()

    def websocket(self, path: str, headers: dict[str, str] | None = None) -> wsclient.WebSocket:
        assert self.proxy.files is not None
        cert, key = self.proxy.files
        return wsclient.create_connection(
            f"wss://127.0.0.1:{self.port}{path}",
            subprotocols=[subresources.PLAIN],
            header=[f"{k}: {v}" for k, v in (headers or ADMIN).items()],
            sslopt={
                "ca_certs": str(self.stack.pki.ca_cert),
                "certfile": str(cert),
                "keyfile": str(key),
            },
            timeout=30,
        )


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, guest_dir: Path) -> Iterator[Api]:
    base = tmp_path_factory.mktemp("subresources")
    with running_stack(base, guest_dir, MARKER) as stack:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = ("front-proxy-ca", ca_key)
        ca_pem = _cert(ca[0], ca_key, ca).public_bytes(serialization.Encoding.PEM).decode()
        other_key = ec.generate_private_key(ec.SECP256R1())
        other = ("another-ca", other_key)
        stack.identities.service_account("kube-system", "default")  # and its namespace
        # the test's own front proxy, in place of the one the API server may publish itself
        current = stack.raw.get(frontproxy.PATH) if _exists(stack, frontproxy.PATH) else None
        configmap = {
            "metadata": {"name": frontproxy.NAME, **_version_of(current)},
            "data": {
                "requestheader-client-ca-file": ca_pem,
                "requestheader-allowed-names": json.dumps([PROXY_NAME]),
                "requestheader-username-headers": json.dumps(["X-Remote-User"]),
                "requestheader-group-headers": json.dumps(["X-Remote-Group"]),
                "requestheader-extra-headers-prefix": json.dumps(["X-Remote-Extra-"]),
            },
        }
        if current is None:
            stack.raw.create("/api/v1/namespaces/kube-system/configmaps", configmap)
        else:
            stack.raw.update(frontproxy.PATH, configmap)
        cert, key = stack.pki.issue("subresources", ["127.0.0.1"])
        server = subresources.serve(
            address="127.0.0.1:0",
            operations=stack.operations,
            files=subresources.ServingFiles(cert, key),
            proxy=frontproxy.FrontProxy(lambda: stack.raw.get(frontproxy.PATH)),
        )
        try:
            yield Api(
                stack,
                server.port,
                _pair(base, "proxy", PROXY_NAME, ca),
                _pair(base, "impostor", "someone-else", ca),
                _pair(base, "stranger", PROXY_NAME, other),
            )
        finally:
            server.stop()


def _exists(stack: Stack, path: str) -> bool:
    try:
        stack.raw.get(path)
    except client.ApiError as exc:
        if exc.not_found:
            return False
        raise
    return True


def _version_of(obj: dict[str, Any] | None) -> dict[str, Any]:
    return {"resourceVersion": obj["metadata"]["resourceVersion"]} if obj else {}


def test_discovery_version_and_health_need_no_user(api: Api) -> None:
    anonymous = Client(None)
    code, listed = api.request(
        "GET", "/apis/subresources.kubevirt.io/v1", who=anonymous, headers={}
    )
    assert code == 200 and listed["kind"] == "APIResourceList"
    names = {r["name"]: r["verbs"] for r in listed["resources"]}
    assert names["virtualmachineinstances/console"] == ["get"]
    assert names["virtualmachines/restart"] == ["update"]
    code, groups = api.request("GET", "/apis", who=anonymous, headers={})
    assert groups["groups"][0]["name"] == "subresources.kubevirt.io"
    code, version = api.request("GET", "/apis/subresources.kubevirt.io/v1/version", who=anonymous)
    assert code == 200 and version["gitVersion"]
    assert api.request("GET", "/healthz", who=anonymous, headers={}) == (200, "ok")


@pytest.mark.parametrize(
    ("who", "headers", "why"),
    [
        pytest.param("anonymous", ADMIN, "no client certificate", id="no-certificate"),
        pytest.param("impostor", ADMIN, "'someone-else' is not an allowed", id="not-allowed"),
        pytest.param("proxy", {"X-Remote-Group": "system:masters"}, "names no user", id="no-user"),
    ],
)
def test_requests_not_from_the_front_proxy_are_unauthorized(
    api: Api, who: str, headers: dict[str, str], why: str
) -> None:
    client = {"anonymous": Client(None), "impostor": api.impostor, "proxy": api.proxy}[who]
    code, body = api.request(
        "PUT", f"{BASE}/virtualmachineinstances/{NAME}/pause", who=client, headers=headers
    )
    assert code == 401
    assert body["reason"] == "Unauthorized" and why in body["message"]


def test_a_certificate_from_another_ca_fails_the_handshake(api: Api) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        api.request("GET", "/healthz", who=api.stranger)


def test_the_proxied_user_is_authorized_naming_the_resource(api: Api) -> None:
    bob = {"X-Remote-User": "bob", "X-Remote-Group": "system:authenticated"}
    code, body = api.request("PUT", f"{BASE}/virtualmachineinstances/{NAME}/pause", headers=bob)
    assert code == 403 and body["reason"] == "Forbidden"
    assert body["message"] == (
        'User "bob" cannot update virtualmachineinstances/pause in API group '
        '"subresources.kubevirt.io" in the namespace "a"'
    )
    with pytest.raises(wsclient.WebSocketBadStatusException) as caught:
        api.websocket(f"{BASE}/virtualmachineinstances/{NAME}/console", headers=bob)
    assert caught.value.status_code == 403


def _vm(api: Api, name: str, strategy: str) -> None:
    domain = {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}
    api.stack.raw.create(
        VMS,
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": name},
            "spec": {"runStrategy": strategy, "template": {"spec": {"domain": domain}}},
        },
    )


def test_start_stop_restart_with_kubevirts_bodies_and_codes(api: Api) -> None:
    _vm(api, "off", "Halted")
    code, _ = api.request("PUT", f"{BASE}/virtualmachines/off/start", body={"dryRun": ["All"]})
    assert code == 202
    assert api.stack.raw.get(f"{VMS}/off")["spec"]["runStrategy"] == "Halted"  # a dry run
    assert api.request("PUT", f"{BASE}/virtualmachines/off/start")[0] == 202
    assert api.stack.raw.get(f"{VMS}/off")["spec"]["runStrategy"] == "Always"
    code, body = api.request(
        "PUT", f"{BASE}/virtualmachines/off/stop", body={"gracePeriod": "soon"}
    )
    assert code == 400 and "gracePeriod" in body["message"]
    assert api.request("PUT", f"{BASE}/virtualmachines/off/stop", body={"gracePeriod": 0})[0] == 202
    assert api.stack.raw.get(f"{VMS}/off")["spec"]["runStrategy"] == "Halted"
    code, body = api.request("PUT", f"{BASE}/virtualmachines/off/restart")
    assert code == 409 and "does not support manual restart" in body["message"]
    _vm(api, NAME, "Always")  # its VMI runs
    code, body = api.request("PUT", f"{BASE}/virtualmachines/{NAME}/start")
    assert code == 409 and body["reason"] == "Conflict" and "already running" in body["message"]
    uid = api.stack.raw.get(f"{VMIS}/{NAME}")["metadata"]["uid"]
    assert (
        api.request(
            "PUT", f"{BASE}/virtualmachines/{NAME}/restart", body={"gracePeriodSeconds": 0}
        )[0]
        == 202
    )
    requests = api.stack.raw.get(f"{VMS}/{NAME}")["status"]["stateChangeRequests"]
    assert requests == [{"action": "Stop", "uid": uid}, {"action": "Start"}]
    code, body = api.request("PUT", f"{BASE}/virtualmachines/nothere/stop")
    assert code == 404 and body["kind"] == "Status"
    code, body = api.request("GET", f"{BASE}/virtualmachines/{NAME}/start")
    assert code == 405


def _read_until(ws: wsclient.WebSocket, text: str, timeout: float = 60.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} did not show on the console; it showed {seen[-400:]!r}")
        opcode, data = ws.recv_data()
        assert opcode == wsclient.ABNF.OPCODE_BINARY
        seen += data
    return seen


def test_the_console_is_a_plain_kubevirt_io_websocket(api: Api) -> None:
    ws = api.websocket(f"{BASE}/virtualmachineinstances/{NAME}/console?replayBytes=1048576")
    try:
        assert ws.getsubprotocol() == subresources.PLAIN
        _read_until(ws, MARKER)  # replayed from the log
        ws.send_binary(b"\necho via-websocket-$((6 * 7))\n")
        _read_until(ws, "via-websocket-42")
    finally:
        ws.close()


def test_a_console_of_a_vmi_not_running_is_a_conflict(api: Api) -> None:
    api.stack.raw.merge_patch(f"{VMIS}/{NAME}", {"status": {"phase": "Scheduled"}})
    try:
        with pytest.raises(wsclient.WebSocketBadStatusException) as caught:
            api.websocket(f"{BASE}/virtualmachineinstances/{NAME}/console")
    finally:
        api.stack.raw.merge_patch(f"{VMIS}/{NAME}", {"status": {"phase": "Running"}})
    assert caught.value.status_code == 409
    assert b"is Scheduled, not Running" in (caught.value.resp_body or b"")


def test_a_plain_get_of_a_stream_asks_for_the_upgrade(api: Api) -> None:
    code, body = api.request("GET", f"{BASE}/virtualmachineinstances/{NAME}/console")
    assert code == 400 and "Upgrade: websocket" in body["message"]
