"""Services as kube-apiserver defaults and checks them (pkg/apis/core/v1/defaults.go,
ValidateService), for the fields users write.

Defaults: `type: ClusterIP`, `sessionAffinity: None`, each port's `protocol: TCP` and
`targetPort` the port itself, `internalTrafficPolicy: Cluster` (and `externalTrafficPolicy:
Cluster` for NodePort and LoadBalancer). The cluster IP itself is the allocator's
(`workloads.services`), which needs the stored Services.

Validation: the enumerations; ports (needed unless headless or ExternalName, named when more than
one, names unique and IANA service names, numbers 1-65535, a targetPort a number or a port name);
selector labels; an ExternalName Service's `externalName`.
"""

from __future__ import annotations

from typing import Any

from kvd.local.apiserver import selectors
from kvd.local.apiserver.kinds import fields

TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
PROTOCOLS = ("SCTP", "TCP", "UDP")
HEADLESS = "None"


def default(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or ():
        if not isinstance(port, dict):
            continue
        port.setdefault("protocol", "TCP")
        if port.get("targetPort") in (None, 0, "") and port.get("port") is not None:
            port["targetPort"] = port["port"]
    if spec["type"] != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")


def validate(obj: dict[str, Any], errs: fields.Errors) -> None:
    spec = obj.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    kind = spec.get("type")
    if kind not in TYPES:
        errs.not_supported("spec.type", kind or "", TYPES)
    affinity = spec.get("sessionAffinity")
    if affinity not in ("ClientIP", "None"):
        errs.not_supported("spec.sessionAffinity", affinity or "", ("ClientIP", "None"))
    ports = [p for p in spec.get("ports") or () if isinstance(p, dict)]
    if kind == "ExternalName":
        name = spec.get("externalName") or ""
        if not name:
            errs.required("spec.externalName")
        else:
            errs.invalid_all("spec.externalName", name, fields.dns1123_subdomain(name))
    elif not ports and spec.get("clusterIP") != HEADLESS:
        errs.required("spec.ports")
    names: set[str] = set()
    for i, port in enumerate(ports):
        _port(port, i, len(ports) > 1, names, errs)
    for key, value in (spec.get("selector") or {}).items():
        problems = selectors.label_key_errors(key) + selectors.label_value_errors(str(value))
        errs.invalid_all("spec.selector", value, problems)


def _port(port: dict[str, Any], i: int, named: bool, names: set[str], errs: fields.Errors) -> None:
    at = f"spec.ports[{i}]"
    name = port.get("name") or ""
    if not name and named:
        errs.required(f"{at}.name")
    elif name:
        errs.invalid_all(f"{at}.name", name, fields.dns1123_label(name))
        if name in names:
            errs.duplicate(f"{at}.name", name)
        names.add(name)
    number = port.get("port")
    if not isinstance(number, int):
        errs.required(f"{at}.port")
    else:
        errs.invalid_all(f"{at}.port", number, fields.port_number(number))
    protocol = port.get("protocol")
    if protocol not in PROTOCOLS:
        errs.not_supported(f"{at}.protocol", protocol or "", PROTOCOLS)
    target = port.get("targetPort")
    if isinstance(target, int):
        errs.invalid_all(f"{at}.targetPort", target, fields.port_number(target))
    elif isinstance(target, str):
        errs.invalid_all(f"{at}.targetPort", target, fields.port_name(target))
    node_port = port.get("nodePort")
    if isinstance(node_port, int) and node_port:
        errs.invalid_all(f"{at}.nodePort", node_port, fields.port_number(node_port))
