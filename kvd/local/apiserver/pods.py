"""What kube-apiserver does to a new Pod before storing it: its defaults and its create strategy.

Defaulting (`SetDefaults_Pod`): a container with a limit but no request for a resource gets
the limit as its request. The strategy (`PrepareForCreate`): whatever status the client sent
is replaced by `phase: Pending` and the pod's QoS class, computed as the kubelet does from the
cpu and memory requests and limits (pod-level resources when set, else every container and
init container), plus a `PodScheduled=False` condition when scheduling gates hold it back.
So a pod is `Pending` from its first watch event, and `--field-selector status.phase=Pending`
finds it.

`PodDefaults` is a link of the admission chain the server gives `objects.Objects`; the node
and controllers write the status afterwards through `/status`, as kubelets do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from kvd.api.quantity import Quantity, QuantityError
from kvd.local.apiserver.registry import ResourceDef

BEST_EFFORT, BURSTABLE, GUARANTEED = "BestEffort", "Burstable", "Guaranteed"
_QOS_RESOURCES = ("cpu", "memory")
SCHEDULING_GATED = "Scheduling is blocked due to non-empty scheduling gates"


class PodDefaults:
    """Defaults and the create-time status of pods; other kinds pass untouched."""

    def on_create(self, resource: ResourceDef, obj: dict[str, Any]) -> list[str]:
        if (resource.group, resource.plural) != ("", "pods"):
            return []
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return []  # not a pod anyone can run; validation says so
        for container in _containers(spec):
            _request_the_limits(container)
        status: dict[str, Any] = {"phase": "Pending", "qosClass": qos_class(spec)}
        if spec.get("schedulingGates"):
            status["conditions"] = [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": None,
                    "reason": "SchedulingGated",
                    "message": SCHEDULING_GATED,
                }
            ]
        obj["status"] = status
        return []

    def on_update(
        self, resource: ResourceDef, old: dict[str, Any], new: dict[str, Any]
    ) -> list[str]:
        return []


def qos_class(spec: Mapping[str, Any]) -> str:
    """The pod's QoS class (Kubernetes' `ComputePodQOS`): BestEffort with no cpu or memory
    requests or limits, Guaranteed when every container limits both and the requests equal
    the limits, Burstable otherwise."""
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    pod_level = spec.get("resources")
    sources = [pod_level] if isinstance(pod_level, dict) and pod_level else _containers(spec)
    for source in sources:
        resources = source.get("resources") if source is not pod_level else source
        resources = resources if isinstance(resources, dict) else {}
        _add(requests, resources.get("requests"))
        limited = _add(limits, resources.get("limits"))
        if not limited.issuperset(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return BEST_EFFORT
    if guaranteed and requests.keys() == limits.keys() and requests == limits:
        return GUARANTEED
    return BURSTABLE


def _containers(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        c
        for field in ("containers", "initContainers")
        for c in spec.get(field) or ()
        if isinstance(c, dict)
    ]


def _request_the_limits(container: dict[str, Any]) -> None:
    resources = container.get("resources")
    if not isinstance(resources, dict) or not isinstance(resources.get("limits"), dict):
        return
    requests = resources.get("requests")
    if not isinstance(requests, dict):
        requests = resources["requests"] = {}
    for name, value in resources["limits"].items():
        requests.setdefault(name, value)


def _add(totals: dict[str, Decimal], quantities: Any) -> set[str]:
    """Add the positive cpu and memory quantities to `totals`; returns the names added."""
    found: set[str] = set()
    items: Iterable[tuple[str, Any]] = quantities.items() if isinstance(quantities, dict) else ()
    for name, raw in items:
        if name not in _QOS_RESOURCES:
            continue
        try:
            value = Quantity.parse(raw).value
        except QuantityError:
            continue  # not a quantity: validation refuses it
        if value > 0:
            totals[name] = totals.get(name, Decimal(0)) + value
            found.add(name)
    return found
