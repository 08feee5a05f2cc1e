"""The local scheduler's fit decisions, as kube-scheduler words them (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.local.node import scheduler

NODE: dict[str, Any] = {
    "metadata": {
        "name": "n1",
        "labels": {"kubernetes.io/hostname": "n1", "kubevirt.io/schedulable": "true"},
    },
    "spec": {},
    "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "110"}},
}


def pod(
    uid: str = "p",
    *,
    selector: dict[str, str] | None = None,
    memory: str | None = None,
    cpu: str | None = None,
    phase: str = "Pending",
    **spec: Any,
) -> dict[str, Any]:
    requests = {k: v for k, v in (("memory", memory), ("cpu", cpu)) if v}
    return {
        "metadata": {"uid": uid, "name": uid, "namespace": "default"},
        "spec": {
            "nodeSelector": selector or {},
            "containers": [{"name": "c", "resources": {"requests": requests}}],
            **spec,
        },
        "status": {"phase": phase},
    }


@pytest.mark.parametrize(
    ("candidate", "bound", "why"),
    [
        pytest.param(pod(), [], None, id="fits"),
        pytest.param(
            pod(selector={"kubevirt.io/schedulable": "true"}), [], None, id="selector-met"
        ),
        pytest.param(
            pod(selector={"kubevirt.io/schedulable": "false"}),
            [],
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
            id="selector-unmet",
        ),
        pytest.param(
            pod(memory="2Gi"), [], "0/1 nodes are available: 1 Insufficient memory.", id="too-big"
        ),
        pytest.param(
            pod(memory="600Mi"),
            [pod("other", memory="600Mi", phase="Running")],
            "0/1 nodes are available: 1 Insufficient memory.",
            id="full-node",
        ),
        pytest.param(
            pod(memory="600Mi"),
            [pod("other", memory="600Mi", phase="Succeeded")],
            None,
            id="finished-pods-free-their-share",
        ),
        pytest.param(
            pod(cpu="3", memory="2Gi"),
            [],
            "0/1 nodes are available: 1 Insufficient cpu, Insufficient memory.",
            id="both",
        ),
        pytest.param(
            pod(
                affinity={
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "kubernetes.io/hostname",
                                            "operator": "In",
                                            "values": ["n2"],
                                        }
                                    ]
                                }
                            ]
                        }
                    }
                }
            ),
            [],
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
            id="affinity-unmet",
        ),
    ],
)
def test_fit(candidate: dict[str, Any], bound: list[dict[str, Any]], why: str | None) -> None:
    assert scheduler.unschedulable_reason(candidate, NODE, bound) == why


def test_a_tainted_node_needs_a_toleration() -> None:
    node = {**NODE, "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}
    assert scheduler.unschedulable_reason(pod(), node, []) == (
        "0/1 nodes are available: 1 node(s) had untolerated taint {k: v}."
    )
    tolerant = pod(tolerations=[{"key": "k", "operator": "Equal", "value": "v"}])
    assert scheduler.unschedulable_reason(tolerant, node, []) is None


def test_init_containers_count_as_their_largest_not_their_sum() -> None:
    p = pod(memory="100Mi")
    p["spec"]["initContainers"] = [
        {"name": "i1", "resources": {"requests": {"memory": "300Mi"}}},
        {"name": "i2", "resources": {"requests": {"memory": "200Mi"}}},
    ]
    assert scheduler.requests(p).memory == 300 * 2**20


def _requiring(*terms: dict[str, Any]) -> dict[str, Any]:
    required = {"nodeSelectorTerms": list(terms)}
    return pod(
        affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}
    )


def _expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, **({"values": list(values)} if values else {})}


SIZED = {**NODE, "metadata": {"name": "n1", "labels": {"size": "8", "zone": "a", "word": "x"}}}


# Where kube-scheduler and the old local scheduler disagreed (kvd.api.labels is now the one
# meaning): Gt/Lt were never met, Exists with values and empty terms matched, matchFields and
# an empty list of terms were ignored.
@pytest.mark.parametrize(
    ("candidate", "fits"),
    [
        pytest.param(_requiring({"matchExpressions": [_expr("size", "Gt", "4")]}), True, id="gt"),
        pytest.param(
            _requiring({"matchExpressions": [_expr("size", "Gt", "10")]}), False, id="gt-unmet"
        ),
        pytest.param(
            _requiring({"matchExpressions": [_expr("size", "Lt", "10")]}), True, id="lt-numeric"
        ),
        pytest.param(
            _requiring({"matchExpressions": [_expr("word", "Lt", "10")]}),
            False,
            id="lt-label-not-integer",
        ),
        pytest.param(
            _requiring({"matchExpressions": [_expr("size", "Gt", "four")]}),
            False,
            id="gt-value-not-integer",
        ),
        pytest.param(
            _requiring({"matchExpressions": [_expr("zone", "Exists", "a")]}),
            False,
            id="exists-with-values-is-invalid",
        ),
        pytest.param(
            _requiring({"matchExpressions": [_expr("zone", "In")]}),
            False,
            id="in-without-values-is-invalid",
        ),
        pytest.param(
            _requiring({"matchExpressions": [_expr("gpu", "NotIn", "yes")]}),
            True,
            id="notin-absent-key",
        ),
        pytest.param(
            _requiring({"matchExpressions": [_expr("gpu", "DoesNotExist")]}),
            True,
            id="does-not-exist",
        ),
        pytest.param(_requiring({}), False, id="empty-term-matches-nothing"),
        pytest.param(_requiring(), False, id="no-terms-match-nothing"),
        pytest.param(
            _requiring({}, {"matchExpressions": [_expr("zone", "In", "a", "b")]}),
            True,
            id="terms-are-ored",
        ),
        pytest.param(
            _requiring(
                {"matchExpressions": [_expr("zone", "Exists", "a")]},
                {"matchExpressions": [_expr("zone", "In", "a")]},
            ),
            True,
            id="an-invalid-term-does-not-spoil-the-others",
        ),
        pytest.param(
            _requiring({"matchExpressions": [_expr("zone", "In", "a"), _expr("size", "Lt", "2")]}),
            False,
            id="expressions-are-anded",
        ),
        pytest.param(
            _requiring({"matchFields": [_expr("metadata.name", "In", "n1")]}),
            True,
            id="match-fields-name",
        ),
        pytest.param(
            _requiring({"matchFields": [_expr("metadata.name", "In", "n2")]}),
            False,
            id="match-fields-other-name",
        ),
        pytest.param(
            _requiring({"matchFields": [_expr("metadata.name", "NotIn", "n2")]}),
            True,
            id="match-fields-not-in",
        ),
        pytest.param(
            _requiring({"matchFields": [_expr("metadata.name", "In", "n1", "n2")]}),
            False,
            id="match-fields-needs-one-value",
        ),
    ],
)
def test_required_node_affinity(candidate: dict[str, Any], fits: bool) -> None:
    why = scheduler.unschedulable_reason(candidate, SIZED, [])
    assert (why is None) is fits, why


def test_a_cordoned_node_takes_only_pods_tolerating_it() -> None:
    """kube-scheduler's NodeUnschedulable: DaemonSet pods tolerate the unschedulable taint."""
    cordoned = {**NODE, "spec": {"unschedulable": True}}
    assert scheduler.unschedulable_reason(pod(), cordoned, []) == (
        "0/1 nodes are available: 1 node(s) were unschedulable."
    )
    toleration = {
        "key": "node.kubernetes.io/unschedulable",
        "operator": "Exists",
        "effect": "NoSchedule",
    }
    assert scheduler.unschedulable_reason(pod(tolerations=[toleration]), cordoned, []) is None
