"""APIService validation and defaults (pure logic), and one refusal through kubectl."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from kvd.local.apiserver.aggregation import validation
from tests.local.apiserver.conftest import Server

PEM = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()


def _apiservice(name: str = "v1.example.com", **spec: Any) -> dict[str, Any]:
    base = {
        "group": "example.com",
        "version": "v1",
        "groupPriorityMinimum": 1000,
        "versionPriority": 15,
        "service": {"namespace": "ns", "name": "svc", "port": 443},
    }
    return {"metadata": {"name": name}, "spec": {**base, **spec}}


@pytest.mark.parametrize(
    ("obj", "field", "message"),
    [
        pytest.param(
            _apiservice("v2.example.com"),
            "metadata.name",
            'Invalid value: "v2.example.com": must be `spec.version+"."+spec.group`: '
            '"v1.example.com"',
            id="name-not-version-group",
        ),
        pytest.param(
            _apiservice("v2.", group="", version="v2"),
            "spec.group",
            "Required value: only v1 may have an empty group and it better be legacy kube",
            id="empty-group-not-v1",
        ),
        pytest.param(
            _apiservice("v1.Example", group="Example"),
            "spec.group",
            'Invalid value: "Example": a lowercase RFC 1123 subdomain',
            id="group-not-subdomain",
        ),
        pytest.param(
            _apiservice("1v.example.com", version="1v"),
            "spec.version",
            'Invalid value: "1v": a DNS-1035 label',
            id="version-not-dns1035",
        ),
        pytest.param(
            _apiservice(groupPriorityMinimum=20001),
            "spec.groupPriorityMinimum",
            "Invalid value: 20001: must be positive and less than 20000",
            id="group-priority-too-high",
        ),
        pytest.param(
            _apiservice(groupPriorityMinimum=0),
            "spec.groupPriorityMinimum",
            "Invalid value: 0: must be positive and less than 20000",
            id="group-priority-zero",
        ),
        pytest.param(
            _apiservice(versionPriority=1001),
            "spec.versionPriority",
            "Invalid value: 1001: must be positive and less than 1000",
            id="version-priority-too-high",
        ),
        pytest.param(
            _apiservice(service=None, caBundle=PEM),
            "spec.caBundle",
            'Invalid value: "28 bytes": local APIServices may not have a caBundle',
            id="local-with-ca-bundle",
        ),
        pytest.param(
            _apiservice(service=None, insecureSkipTLSVerify=True),
            "spec.insecureSkipTLSVerify",
            "Invalid value: true: local APIServices may not have insecureSkipTLSVerify",
            id="local-insecure",
        ),
        pytest.param(
            _apiservice(caBundle=PEM, insecureSkipTLSVerify=True),
            "spec.insecureSkipTLSVerify",
            "Invalid value: true: may not be true if caBundle is present",
            id="insecure-and-ca-bundle",
        ),
        pytest.param(
            _apiservice(service={"name": "svc", "port": 443}),
            "spec.service.namespace",
            "Required value",
            id="service-without-namespace",
        ),
        pytest.param(
            _apiservice(service={"namespace": "ns", "name": "svc", "port": 70000}),
            "spec.service.port",
            "Invalid value: 70000: port is not valid: must be between 1 and 65535, inclusive",
            id="bad-port",
        ),
    ],
)
def test_refused_as_kube_refuses(obj: dict[str, Any], field: str, message: str) -> None:
    causes = validation.validate(obj)
    assert [c.field for c in causes] == [field], causes
    assert causes[0].message.startswith(message), causes[0].message


def test_valid_ones_pass_and_the_port_defaults() -> None:
    assert validation.validate(_apiservice()) == []
    assert validation.validate(_apiservice(service=None)) == []
    obj = _apiservice(service={"namespace": "ns", "name": "svc"})
    validation.default(obj)
    assert obj["spec"]["service"]["port"] == 443
    assert validation.validate(obj) == []


@pytest.mark.integration  # a kvd local apiserver process
def test_kubectl_shows_every_cause(server: Server) -> None:
    bad = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", **_apiservice("x.y")}
    bad["spec"]["versionPriority"] = 0
    done = server.kubectl("create", "-f", "-", stdin=json.dumps(bad), check=False)
    assert done.returncode != 0
    assert 'The APIService "x.y" is invalid' in done.stderr, done.stderr
    assert "metadata.name" in done.stderr and "spec.versionPriority" in done.stderr
