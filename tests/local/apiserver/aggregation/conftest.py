"""A real `kvd local apiserver` and a toy aggregated API server trusting what it publishes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3

from kvd.local.apiserver import tls
from tests.local.apiserver.aggregation.backend import GROUP, Backend
from tests.local.apiserver.conftest import Server, start_server
from tests.support.waiting import wait_for

SERVICE = "toy"
NAMESPACE = "default"
APISERVICE = f"v1.{GROUP}"


@dataclass
class Aggregated:
    server: Server
    backend: Backend
    toy_ca: bytes  # signs the backend's serving certificate (the caBundle)

    def token(self) -> str:
        return (self.server.data_dir / "token").read_text().strip()

    def http(self) -> urllib3.PoolManager:
        return urllib3.PoolManager(ca_certs=str(self.server.data_dir / "pki" / "ca.crt"))

    def request(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Authorization": f"Bearer {token or self.token()}", **kwargs.pop("headers", {})}
        return self.http().request(method, self.server.url + path, headers=headers, **kwargs)

    def apply(self, *objects: dict[str, Any]) -> None:
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
        # server-side: the stored-only kinds (EndpointSlice) take no strategic merge patch here
        self.server.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=body)

    def condition(self, name: str = APISERVICE) -> dict[str, Any]:
        out = self.server.kubectl("get", "apiservice", name, "-o", "json").stdout
        conditions = (json.loads(out).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Available"), {})

    def wait_reason(self, reason: str, name: str = APISERVICE) -> dict[str, Any]:
        return wait_for(
            f"APIService {name} Available with reason {reason}",
            lambda: (c := self.condition(name)).get("reason") == reason and c,
        )

    def register(self, *, port: int | None = None, ca: bytes | None = None) -> None:
        """The selectorless Service, its hand-made EndpointSlice and the APIService."""
        self.apply(
            service(),
            endpoint_slice(port if port is not None else self.backend.port),
            apiservice(ca if ca is not None else self.toy_ca),
        )
        self.wait_reason("Passed")


def service(port: int = 443, port_name: str = "api") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": {"ports": [{"name": port_name, "port": port, "targetPort": 8443}]},
    }


def endpoint_slice(port: int, port_name: str = "api") -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{SERVICE}-1",
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": SERVICE},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
    }


def apiservice(ca: bytes, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": APISERVICE},
        "spec": {
            "group": GROUP,
            "version": "v1",
            "groupPriorityMinimum": 1000,
            "versionPriority": 15,
            "service": {"name": SERVICE, "namespace": NAMESPACE, "port": 443},
            "caBundle": base64.b64encode(ca).decode(),
            **spec,
        },
    }


@pytest.fixture
def aggregated(tmp_path: Path) -> Iterator[Aggregated]:
    server = start_server(tmp_path / "data")
    backend: Backend | None = None
    try:
        out = server.kubectl(
            "get",
            "configmap",
            "-n",
            "kube-system",
            "extension-apiserver-authentication",
            "-o",
            "json",
        ).stdout
        data = json.loads(out)["data"]
        toy = tls.Certificates(tmp_path / "toy")  # its own CA, for the backend's serving cert
        cert, key = toy.issue("toy", [f"{SERVICE}.{NAMESPACE}.svc"])
        backend = Backend(
            cert,
            key,
            data["requestheader-client-ca-file"].encode(),
            json.loads(data["requestheader-allowed-names"]),
        )
        yield Aggregated(server, backend, toy.ca_cert.read_bytes())
    finally:
        if backend is not None:
            backend.stop()
        server.stop()
