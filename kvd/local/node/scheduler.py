"""The local node's scheduler: does a pending pod fit this one node? (pure)

kube-scheduler's filters that matter on one node: `spec.nodeSelector` against the node's labels,
required node affinity (its terms ORed; in each, `matchExpressions` with In, NotIn, Exists,
DoesNotExist, Gt, Lt against the labels and `matchFields` against the node's name, all of them
ANDed; an empty term, or one kube would refuse to build, matches no node), the node's taints
against the pod's tolerations (NoSchedule/NoExecute), `spec.unschedulable`, and resource requests
(CPU, memory, pods) against allocatable minus what the pods already bound here request. A pod that
fits is bound (the `binding` subresource); one that does not gets `PodScheduled=False`, reason
`Unschedulable`, with kube-scheduler's message shape: `0/1 nodes are available: 1 <why>.`
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kvd.api import labels as labelsel
from kvd.api.quantity import Quantity, QuantityError

Json = dict[str, Any]

TERMINAL_PHASES = ("Succeeded", "Failed")
UNSCHEDULABLE_TAINT: Json = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
# matchFields: kube turns In/NotIn on a field into an equality with exactly one value.
_FIELD_OPERATORS = {"In": labelsel.Operator.EQUALS, "NotIn": labelsel.Operator.NOT_EQUALS}


@dataclass(frozen=True)
class Resources:
    cpu_millis: int = 0
    memory: int = 0
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_millis + other.cpu_millis, self.memory + other.memory, self.pods + other.pods
        )


def requests(pod: Json) -> Resources:
    """What a pod asks for, as kube-scheduler counts it: the larger of the sum over containers and
    any single init container, plus `spec.overhead`."""
    spec = pod.get("spec") or {}
    main = _sum(_container_requests(c) for c in spec.get("containers") or [])
    init = [_container_requests(c) for c in spec.get("initContainers") or []]
    cpu = max([main.cpu_millis, *(r.cpu_millis for r in init)])
    memory = max([main.memory, *(r.memory for r in init)])
    overhead = _resources(spec.get("overhead") or {})
    return Resources(cpu + overhead.cpu_millis, memory + overhead.memory, 1)


def allocatable(node: Json) -> Resources:
    return _resources((node.get("status") or {}).get("allocatable") or {})


def unschedulable_reason(pod: Json, node: Json, bound: Iterable[Json]) -> str | None:
    """None when `pod` fits `node` given the pods already `bound` to it; else kube-scheduler's
    message for a one-node cluster."""
    why = _why_not(pod, node, bound)
    return None if why is None else f"0/1 nodes are available: 1 {why}."


def _why_not(pod: Json, node: Json, bound: Iterable[Json]) -> str | None:
    spec = pod.get("spec") or {}
    node_spec = node.get("spec") or {}
    tolerations = spec.get("tolerations") or []
    # kube-scheduler's NodeUnschedulable: a pod tolerating the unschedulable taint (a DaemonSet's
    # pods do) goes on a cordoned node
    if node_spec.get("unschedulable") and not any(
        _tolerates(t, UNSCHEDULABLE_TAINT) for t in tolerations
    ):
        return "node(s) were unschedulable"
    why = placement_refusal(pod, node)
    if why is not None:
        return why
    used = _sum(
        requests(p)
        for p in bound
        if (p.get("status") or {}).get("phase") not in TERMINAL_PHASES
        and (p.get("metadata") or {}).get("uid") != (pod.get("metadata") or {}).get("uid")
    )
    want = requests(pod)
    have = allocatable(node)
    short = [
        name
        for name, need, free in (
            ("cpu", want.cpu_millis, have.cpu_millis - used.cpu_millis),
            ("memory", want.memory, have.memory - used.memory),
        )
        if need > free
    ]
    if have.pods and used.pods + 1 > have.pods:
        return "Too many pods"
    if short:
        return ", ".join(f"Insufficient {name}" for name in short)
    return None


def placement_refusal(pod: Json, node: Json) -> str | None:
    """Why the pod's node selector, required node affinity or tolerations keep it off `node`
    (None: they allow it); what a DaemonSet's controller asks of each node."""
    spec = pod.get("spec") or {}
    node_meta = node.get("metadata") or {}
    labels = node_meta.get("labels") or {}
    fields = {"metadata.name": node_meta.get("name") or ""}
    if not _selector_matches(spec.get("nodeSelector") or {}, labels) or not _affinity_matches(
        spec.get("affinity") or {}, labels, fields
    ):
        return "node(s) didn't match Pod's node affinity/selector"
    taints = (node.get("spec") or {}).get("taints") or []
    taint = _untolerated_taint(taints, spec.get("tolerations") or [])
    if taint is not None:
        return f"node(s) had untolerated taint {{{taint}}}"
    return None


def _selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labelsel.equals(key, value).matches(labels) for key, value in selector.items())


def _affinity_matches(affinity: Json, labels: dict[str, str], fields: dict[str, str]) -> bool:
    required = (affinity.get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required is None:
        return True
    return any(
        _term_matches(term, labels, fields) for term in required.get("nodeSelectorTerms") or []
    )


def _term_matches(term: Json, labels: dict[str, str], fields: dict[str, str]) -> bool:
    expressions, field_expressions = term.get("matchExpressions"), term.get("matchFields")
    if not expressions and not field_expressions:
        return False
    try:
        by_label = [_requirement(e, labelsel.NODE_SELECTOR_OPERATORS) for e in expressions or []]
        by_field = [_requirement(e, _FIELD_OPERATORS) for e in field_expressions or []]
    except labelsel.InvalidRequirement:
        return False
    return all(r.matches(labels) for r in by_label) and all(r.matches(fields) for r in by_field)


def _requirement(expression: Json, operators: dict[str, labelsel.Operator]) -> labelsel.Requirement:
    return labelsel.requirement(
        str(expression.get("key")),
        str(expression.get("operator")),
        expression.get("values"),
        operators=operators,
    )


def _untolerated_taint(taints: list[Json], tolerations: list[Json]) -> str | None:
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            key, value = taint.get("key", ""), taint.get("value")
            return f"{key}: {value}" if value else key
    return None


def _tolerates(toleration: Json, taint: Json) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get(
        "value", ""
    )


def _container_requests(container: Json) -> Resources:
    resources = container.get("resources") or {}
    # As the API server defaults it: a limit without a request requests the limit.
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return _resources(merged)


def _resources(values: Json) -> Resources:
    return Resources(
        cpu_millis=_quantity(values.get("cpu"), millis=True),
        memory=_quantity(values.get("memory"), millis=False),
        pods=_quantity(values.get("pods"), millis=False),
    )


def _quantity(raw: Any, *, millis: bool) -> int:
    if raw is None:
        return 0
    try:
        q = Quantity.parse(raw)
    except QuantityError:
        return 0  # the API server validated it; a value we cannot read counts as nothing
    return q.millis() if millis else q.bytes()


def _sum(items: Iterable[Resources]) -> Resources:
    total = Resources()
    for item in items:
        total = total + item
    return total
