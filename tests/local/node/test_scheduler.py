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
