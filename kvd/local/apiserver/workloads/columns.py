"""`kubectl get` columns of the workload kinds, as kube-apiserver's printers make them
(pkg/printers/internalversion): Deployments, ReplicaSets, DaemonSets, ControllerRevisions,
Services, Endpoints, EndpointSlices and PodDisruptionBudgets, with the `-o wide` ones at
priority 1. `tables` merges them into its built-in columns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvd.local.apiserver import selectors

Json = dict[str, Any]
Columns = tuple[list[Json], Callable[[Json], list[Any]]]
AgeOf = Callable[[Any], Any]


def _col(name: str, kind: str = "string", priority: int = 0) -> Json:
    return {"name": name, "type": kind, "format": "", "description": name, "priority": priority}


def _spec(o: Json) -> Json:
    return o.get("spec") or {}


def _status(o: Json) -> Json:
    return o.get("status") or {}


def selector_text(selector: Any) -> str:
    """metav1.FormatLabelSelector: `<none>` for none, `<error>` for a bad one."""
    if not isinstance(selector, dict):
        return "<none>"
    try:
        text = str(selectors.from_label_selector_object(selector))
    except selectors.SelectorError:
        return "<error>"
    return text or "<none>"


def _containers_and_images(o: Json) -> list[str]:
    containers = ((_spec(o).get("template") or {}).get("spec") or {}).get("containers") or []
    names = ",".join(str(c.get("name", "")) for c in containers if isinstance(c, dict))
    images = ",".join(str(c.get("image", "")) for c in containers if isinstance(c, dict))
    return [names, images]


def _map_text(labels: Any) -> str:
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _service_ports(o: Json) -> str:
    out = []
    for p in _spec(o).get("ports") or ():
        protocol = p.get("protocol", "TCP")
        if p.get("nodePort"):
            out.append(f"{p.get('port')}:{p['nodePort']}/{protocol}")
        else:
            out.append(f"{p.get('port')}/{protocol}")
    return ",".join(out) or "<none>"


def _external_ip(o: Json) -> str:
    spec = _spec(o)
    if spec.get("type") == "ExternalName":
        return str(spec.get("externalName") or "<none>")
    ips = list(spec.get("externalIPs") or [])
    if spec.get("type") == "LoadBalancer":
        ingress = (_status(o).get("loadBalancer") or {}).get("ingress") or []
        ips += [i.get("ip") or i.get("hostname") for i in ingress]
        return ",".join(ips) if ips else "<pending>"
    return ",".join(ips) if ips else "<none>"


def _slice_ports(o: Json) -> str:
    ports = [str(p.get("port")) for p in o.get("ports") or () if p.get("port") is not None]
    return ",".join(ports) if ports else "<unset>"


def _slice_endpoints(o: Json) -> str:
    addresses = [a for e in o.get("endpoints") or () for a in e.get("addresses") or ()]
    if not addresses:
        return "<unset>"
    shown = ",".join(addresses[:3])
    return shown + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "")


def _endpoints(o: Json) -> str:
    pairs = []
    for subset in o.get("subsets") or ():
        ports = [p.get("port") for p in subset.get("ports") or ()] or [None]
        for a in subset.get("addresses") or ():
            pairs += [f"{a.get('ip')}:{p}" if p else str(a.get("ip")) for p in ports]
    if not pairs:
        return "<none>"
    return ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")


def _or_na(value: Any) -> str:
    return "N/A" if value is None else str(value)


def columns(age: AgeOf) -> dict[tuple[str, str], Columns]:
    """The columns by (group, plural); `age` renders a creation time as `kubectl get` does."""

    def created(o: Json) -> Any:
        return age(o["metadata"].get("creationTimestamp"))

    return {
        ("apps", "deployments"): (
            [
                _col("Ready"),
                _col("Up-to-date", "integer"),
                _col("Available", "integer"),
                _col("Age"),
                _col("Containers", priority=1),
                _col("Images", priority=1),
                _col("Selector", priority=1),
            ],
            lambda o: [
                f"{_status(o).get('readyReplicas', 0)}/{_spec(o).get('replicas', 0)}",
                _status(o).get("updatedReplicas", 0),
                _status(o).get("availableReplicas", 0),
                created(o),
                *_containers_and_images(o),
                selector_text(_spec(o).get("selector")),
            ],
        ),
        ("apps", "replicasets"): (
            [
                _col("Desired", "integer"),
                _col("Current", "integer"),
                _col("Ready", "integer"),
                _col("Age"),
                _col("Containers", priority=1),
                _col("Images", priority=1),
                _col("Selector", priority=1),
            ],
            lambda o: [
                _spec(o).get("replicas", 0),
                _status(o).get("replicas", 0),
                _status(o).get("readyReplicas", 0),
                created(o),
                *_containers_and_images(o),
                selector_text(_spec(o).get("selector")),
            ],
        ),
        ("apps", "daemonsets"): (
            [
                _col("Desired", "integer"),
                _col("Current", "integer"),
                _col("Ready", "integer"),
                _col("Up-to-date", "integer"),
                _col("Available", "integer"),
                _col("Node Selector"),
                _col("Age"),
                _col("Containers", priority=1),
                _col("Images", priority=1),
                _col("Selector", priority=1),
            ],
            lambda o: [
                _status(o).get("desiredNumberScheduled", 0),
                _status(o).get("currentNumberScheduled", 0),
                _status(o).get("numberReady", 0),
                _status(o).get("updatedNumberScheduled", 0),
                _status(o).get("numberAvailable", 0),
                _map_text(((_spec(o).get("template") or {}).get("spec") or {}).get("nodeSelector")),
                created(o),
                *_containers_and_images(o),
                selector_text(_spec(o).get("selector")),
            ],
        ),
        ("apps", "controllerrevisions"): (
            [_col("Controller"), _col("Revision", "integer"), _col("Age")],
            lambda o: [
                _controller_text(o),
                o.get("revision", 0),
                created(o),
            ],
        ),
        ("", "services"): (
            [
                _col("Type"),
                _col("Cluster-IP"),
                _col("External-IP"),
                _col("Port(s)"),
                _col("Age"),
                _col("Selector", priority=1),
            ],
            lambda o: [
                _spec(o).get("type", "ClusterIP"),
                _spec(o).get("clusterIP") or "<none>",
                _external_ip(o),
                _service_ports(o),
                created(o),
                _map_text(_spec(o).get("selector")),
            ],
        ),
        ("", "endpoints"): (
            [_col("Endpoints"), _col("Age")],
            lambda o: [_endpoints(o), created(o)],
        ),
        ("discovery.k8s.io", "endpointslices"): (
            [_col("AddressType"), _col("Ports"), _col("Endpoints"), _col("Age")],
            lambda o: [o.get("addressType", ""), _slice_ports(o), _slice_endpoints(o), created(o)],
        ),
        ("policy", "poddisruptionbudgets"): (
            [
                _col("Min Available"),
                _col("Max Unavailable"),
                _col("Allowed Disruptions", "integer"),
                _col("Age"),
            ],
            lambda o: [
                _or_na(_spec(o).get("minAvailable")),
                _or_na(_spec(o).get("maxUnavailable")),
                _status(o).get("disruptionsAllowed", 0),
                created(o),
            ],
        ),
    }


def _controller_text(o: Json) -> str:
    for ref in o["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            group = (
                str(ref.get("apiVersion", "")).split("/")[0]
                if "/" in str(ref.get("apiVersion", ""))
                else ""
            )
            kind = str(ref.get("kind", "")).lower()
            return f"{kind}.{group}/{ref.get('name')}" if group else f"{kind}/{ref.get('name')}"
    return "<none>"
