"""From an APIService's `spec.service` to an address to dial, as kube-apiserver's
aggregator-routing resolver does it (`--enable-aggregator-routing`): the local cluster has no
service proxy, so a ClusterIP means nothing here, and the Service's EndpointSlices name the
backends. A selectorless Service with an EndpointSlice made by hand (label
`kubernetes.io/service-name`) works the same as one whose slices a controller keeps.

The Service port whose `port` is the APIService's names the port; the slice port with that
name gives the number to dial, on a ready endpoint (`ready` unset counts as ready). The
failures are the availability controller's condition reasons, with kube's messages.
"""

from __future__ import annotations

import base64
import binascii
import random
from dataclasses import dataclass
from typing import Any

from kvd.local.apiserver.registry import Registry
from kvd.local.apiserver.store import Store

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class Unresolved(Exception):
    """Why spec.service leads nowhere: a condition reason and kube's message for it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Target:
    """Where to send a request for an APIService, and how to trust what answers."""

    host: str
    port: int
    server_name: str  # `<service>.<namespace>.svc`, the name kube verifies the backend as
    ca_bundle: bytes  # PEM; empty: the system's roots
    insecure: bool

    @property
    def authority(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def service_ref(apiservice: dict[str, Any]) -> dict[str, Any] | None:
    """spec.service, or None for a local APIService."""
    service = (apiservice.get("spec") or {}).get("service")
    return service if isinstance(service, dict) else None


def resolve(store: Store, registry: Registry, apiservice: dict[str, Any]) -> Target:
    """A ready endpoint of the APIService's Service (picked at random among them, as kube
    does); Unresolved with the reason otherwise."""
    ref = service_ref(apiservice)
    assert ref is not None, "a local APIService is not resolved"
    name, namespace = str(ref.get("name", "")), str(ref.get("namespace", ""))
    port = int(ref.get("port") or 443)
    services = registry.get("", "services")
    slices = registry.get("discovery.k8s.io", "endpointslices")
    assert services is not None and slices is not None
    service = store.get(services.key, namespace, name)
    if service is None:
        raise Unresolved("ServiceNotFound", f'service/{name} in "{namespace}" is not present')
    port_name = None
    for p in (service.get("spec") or {}).get("ports") or []:
        if isinstance(p, dict) and p.get("port") == port:
            port_name = str(p.get("name") or "")
            break
    if port_name is None:
        raise Unresolved(
            "ServicePortError", f'service/{name} in "{namespace}" is not listening on port {port}'
        )
    items, _ = store.list(slices.key, namespace)
    owned = [
        s for s in items if (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name
    ]
    if not owned:
        raise Unresolved(
            "EndpointsNotFound", f'cannot find endpointslices for service/{name} in "{namespace}"'
        )
    candidates: list[tuple[str, int]] = []
    for s in owned:
        numbers = [
            p["port"]
            for p in s.get("ports") or []
            if isinstance(p, dict) and (p.get("name") or "") == port_name and p.get("port")
        ]
        if not numbers:
            continue
        for endpoint in s.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready") is False:
                continue
            candidates += [(str(a), int(numbers[0])) for a in endpoint.get("addresses") or []]
    if not candidates:
        raise Unresolved(
            "MissingEndpoints",
            f'endpointslices for service/{name} in "{namespace}" have no addresses with port '
            f'name "{port_name}"',
        )
    host, number = random.choice(candidates)
    spec = apiservice.get("spec") or {}
    return Target(
        host=host,
        port=number,
        server_name=f"{name}.{namespace}.svc",
        ca_bundle=ca_bundle(spec),
        insecure=spec.get("insecureSkipTLSVerify") is True,
    )


def ca_bundle(spec: dict[str, Any]) -> bytes:
    """spec.caBundle as PEM bytes (base64 in JSON, as Go's []byte)."""
    raw = spec.get("caBundle")
    if not raw:
        return b""
    try:
        return base64.b64decode(str(raw), validate=True)
    except (ValueError, binascii.Error):
        return b""
