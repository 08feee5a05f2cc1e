"""API aggregation through a real local API server and a toy backend (`backend.py`): the
availability conditions, the proxy (identity headers, RBAC first, streams, websockets, 503s)
and discovery, driven with real kubectl where kubectl can do it."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from tests.local.apiserver.aggregation.backend import GROUP
from tests.local.apiserver.aggregation.conftest import (
    APISERVICE,
    Aggregated,
    apiservice,
    endpoint_slice,
    service,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration  # a kvd local apiserver process per test

VMI = f"/apis/{GROUP}/v1/namespaces/default/virtualmachineinstances/vm1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_published_trust_is_what_the_proxy_presents(aggregated: Aggregated) -> None:
    data_dir = aggregated.server.data_dir
    out = aggregated.server.kubectl(
        "get", "cm", "-n", "kube-system", "extension-apiserver-authentication", "-o", "json"
    ).stdout
    data = json.loads(out)["data"]
    assert json.loads(data["requestheader-allowed-names"]) == ["front-proxy-client"]
    assert json.loads(data["requestheader-username-headers"]) == ["X-Remote-User"]
    assert json.loads(data["requestheader-group-headers"]) == ["X-Remote-Group"]
    assert json.loads(data["requestheader-extra-headers-prefix"]) == ["X-Remote-Extra-"]
    assert data["client-ca-file"] == (data_dir / "pki" / "ca.crt").read_text()
    ca = x509.load_pem_x509_certificate(data["requestheader-client-ca-file"].encode())
    client = x509.load_pem_x509_certificate(
        (data_dir / "pki" / "front-proxy-client.crt").read_bytes()
    )
    client.verify_directly_issued_by(ca)
    assert client.subject.rfc4514_string() == "CN=front-proxy-client"
    cluster_ca = x509.load_pem_x509_certificate(data["client-ca-file"].encode())
    assert ca.subject != cluster_ca.subject, "the requestheader CA must not be the client CA"
    role = json.loads(
        aggregated.server.kubectl(
            "get",
            "role",
            "-n",
            "kube-system",
            "extension-apiserver-authentication-reader",
            "-o",
            "json",
        ).stdout
    )
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": ["extension-apiserver-authentication"],
            "verbs": ["get", "list", "watch"],
        }
    ]


def test_availability_goes_through_each_reason(aggregated: Aggregated) -> None:
    local = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": "v1.local.example.com"},
        "spec": {
            "group": "local.example.com",
            "version": "v1",
            "groupPriorityMinimum": 100,
            "versionPriority": 10,
        },
    }
    aggregated.apply(local)
    assert aggregated.wait_reason("Local", "v1.local.example.com")["status"] == "True"

    aggregated.apply(apiservice(aggregated.toy_ca))
    c = aggregated.wait_reason("ServiceNotFound")
    assert (c["status"], c["message"]) == ("False", 'service/toy in "default" is not present')
    aggregated.apply(service(port=8443))
    c = aggregated.wait_reason("ServicePortError")
    assert c["message"] == 'service/toy in "default" is not listening on port 443'
    aggregated.apply(service())
    c = aggregated.wait_reason("EndpointsNotFound")
    assert c["message"] == 'cannot find endpointslices for service/toy in "default"'
    port = _free_port()
    aggregated.apply(endpoint_slice(port, port_name="other"))
    c = aggregated.wait_reason("MissingEndpoints")
    assert c["message"] == (
        'endpointslices for service/toy in "default" have no addresses with port name "api"'
    )
    aggregated.apply(endpoint_slice(port))  # nothing listens there yet
    c = aggregated.wait_reason("FailedDiscoveryCheck")
    assert c["message"].startswith(
        f"failing or missing response from https://127.0.0.1:{port}/apis/{GROUP}/v1"
    )
    failed_at = c["lastTransitionTime"]
    # the backend coming up changes no object: the retries notice it
    aggregated.backend.start(port)
    c = aggregated.wait_reason("Passed")
    assert (c["status"], c["message"]) == ("True", "all checks passed")
    assert c["lastTransitionTime"] >= failed_at
    probe = aggregated.backend.seen[-1]
    assert (probe.path, probe.client_cn) == (f"/apis/{GROUP}/v1", "front-proxy-client")
    table = aggregated.server.kubectl("get", "apiservice", APISERVICE).stdout
    assert "default/toy" in table and "True" in table, table

    # a caBundle that did not sign the backend's certificate fails the check
    wrong = (aggregated.server.data_dir / "pki" / "ca.crt").read_bytes()
    aggregated.apply(apiservice(wrong))
    c = aggregated.wait_reason("FailedDiscoveryCheck")
    assert "certificate verify failed" in c["message"], c


def test_proxied_requests_carry_the_callers_identity(
    aggregated: Aggregated, tmp_path: Path
) -> None:
    aggregated.backend.start()
    aggregated.register()
    spoofed = {
        "X-Remote-User": "mallory",
        "X-Remote-Group": "system:masters",
        "X-Remote-Extra-Scopes": "everything",
    }
    answer = aggregated.request("GET", f"{VMI}/echo?x=1", headers=spoofed)
    assert answer.status == 200, answer.data
    echo = json.loads(answer.data)
    assert echo["path"] == f"{VMI}/echo?x=1"
    assert echo["user"] == "kvd-admin"
    assert echo["groups"] == ["system:masters", "system:authenticated"]
    assert echo["extra"] == {} and echo["authorization"] is False
    assert echo["auditID"] and echo["auditID"] == answer.headers["Audit-Id"]

    # impersonation: the backend hears of the impersonated user (authorized as that user
    # here: masters, so allowed), extras included
    answer = aggregated.request(
        "GET",
        f"{VMI}/echo",
        headers={
            "Impersonate-User": "jane",
            "Impersonate-Group": "system:masters",
            "Impersonate-Extra-Scopes": "view",
        },
    )
    echo = json.loads(answer.data)
    assert (echo["user"], echo["groups"], echo["extra"]) == (
        "jane",
        ["system:masters", "system:authenticated"],
        {"scopes": ["view"]},
    ), echo

    got = aggregated.server.kubectl("get", "--raw", f"{VMI}/echo").stdout
    assert json.loads(got)["method"] == "GET"
    body = tmp_path / "body.json"
    body.write_text('{"kind": "Ping"}')
    put = aggregated.server.kubectl("replace", "--raw", f"{VMI}/echo", "-f", str(body)).stdout
    echoed = json.loads(put)
    assert (echoed["method"], echoed["body"], echoed["user"]) == (
        "PUT",
        '{"kind": "Ping"}',
        "kvd-admin",
    )


def test_rbac_is_checked_here_before_the_backend(aggregated: Aggregated) -> None:
    aggregated.backend.start()
    aggregated.register()
    server = aggregated.server
    server.kubectl("create", "serviceaccount", "viewer")
    token = server.kubectl("create", "token", "viewer").stdout.strip()
    before = len(aggregated.backend.seen)
    refused = aggregated.request("GET", f"{VMI}/console", token=token)
    assert refused.status == 403, refused.data
    message = json.loads(refused.data)["message"]
    resource = '"virtualmachineinstances/console" in API group "subresources.kubevirt.io"'
    assert f"cannot get resource {resource}" in message, message
    assert len(aggregated.backend.seen) == before, "a refused request reached the backend"

    rbac = "rbac.authorization.k8s.io"
    aggregated.apply(
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "Role",
            "metadata": {"name": "console", "namespace": "default"},
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "resources": ["virtualmachineinstances/console"],
                    "verbs": ["get"],
                }
            ],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "console", "namespace": "default"},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "console"},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": "default"}],
        },
    )
    allowed = wait_for(
        "the viewer allowed the console",
        lambda: (r := aggregated.request("GET", f"{VMI}/console", token=token)).status == 200 and r,
    )
    echo = json.loads(allowed.data)
    assert echo["user"] == "system:serviceaccount:default:viewer"
    assert "system:serviceaccounts:default" in echo["groups"]


def test_websocket_and_streams_pass_through(aggregated: Aggregated) -> None:
    aggregated.backend.start()
    aggregated.register()
    context = ssl.create_default_context(cafile=str(aggregated.server.data_dir / "pki" / "ca.crt"))

    async def console() -> tuple[str | None, list[str]]:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                aggregated.server.url + f"{VMI}/console",
                protocols=("plain.kubevirt.io",),
                headers={"Authorization": f"Bearer {aggregated.token()}"},
                ssl=context,
            ) as ws,
        ):
            got = []
            for text in ("hello", "world"):
                await ws.send_str(text)
                got.append((await ws.receive(timeout=10)).data)
            return ws.protocol, got

    protocol, got = asyncio.run(console())
    assert (protocol, got) == ("plain.kubevirt.io", ["HELLO", "WORLD"])
    assert aggregated.backend.seen[-1].user == "kvd-admin"

    response = aggregated.request("GET", f"{VMI}/stream", preload_content=False)
    assert response.status == 200
    first = response.read1(4) + response.read1(4)
    assert first == b"one\ntwo\n"
    # a proxy that buffered would have let these through only once the backend was done
    assert not aggregated.backend.streamed.is_set()
    aggregated.backend.release.set()
    assert response.read() == b"three\n"


def test_unavailable_and_unreachable_backends_are_503(aggregated: Aggregated) -> None:
    port = _free_port()
    aggregated.apply(service(), endpoint_slice(port), apiservice(aggregated.toy_ca))
    aggregated.wait_reason("FailedDiscoveryCheck")
    refused = aggregated.request("GET", f"{VMI}/echo")
    assert (refused.status, refused.data) == (503, b"service unavailable\n")
    raw = aggregated.server.kubectl("get", "--raw", f"{VMI}/echo", check=False)
    assert raw.returncode != 0 and "ServiceUnavailable" in raw.stderr, raw.stderr

    aggregated.backend.start(port)
    aggregated.wait_reason("Passed")
    aggregated.backend.stop()
    down = aggregated.request("GET", f"{VMI}/echo")
    assert down.status == 503
    assert f"127.0.0.1:{port}" in down.data.decode(), down.data


def test_discovery_lists_the_aggregated_group(aggregated: Aggregated) -> None:
    aggregated.backend.start()
    aggregated.register()
    server = aggregated.server
    groups = json.loads(server.kubectl("get", "--raw", "/apis").stdout)["groups"]
    mine = next(g for g in groups if g["name"] == GROUP)
    assert mine["preferredVersion"] == {"groupVersion": f"{GROUP}/v1", "version": "v1"}
    group = json.loads(server.kubectl("get", "--raw", f"/apis/{GROUP}").stdout)
    assert (group["kind"], group["versions"]) == ("APIGroup", [mine["preferredVersion"]])
    listed = json.loads(server.kubectl("get", "--raw", f"/apis/{GROUP}/v1").stdout)
    assert listed["groupVersion"] == f"{GROUP}/v1"
    resources = server.kubectl("api-resources", f"--api-group={GROUP}", "-o", "name").stdout
    assert resources.split() == [f"expand-vm-spec.{GROUP}"], resources
