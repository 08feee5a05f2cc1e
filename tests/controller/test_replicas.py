"""A VMIRS's decisions as tables: which VMIs are its, how it scales (and in which order it
deletes), the VMIs it creates, and its status."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.api import kinds
from kvd.controller import replicas

Json = dict[str, Any]
LABELS = {"kubevirt.io/vmReplicaSet": "rs"}


def rs(replicas_: int | None = 3, *, paused: bool = False, status: Json | None = None) -> Json:
    spec: Json = {
        "selector": {"matchLabels": LABELS},
        "template": {
            "metadata": {"labels": LABELS},
            "spec": {
                "domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}},
                "volumes": [{"name": "d", "containerDisk": {"image": "kvd-demo"}}],
            },
        },
    }
    if replicas_ is not None:
        spec["replicas"] = replicas_
    if paused:
        spec["paused"] = True
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceReplicaSet",
        "metadata": {"name": "rs", "namespace": "ns", "uid": "rs-uid"},
        "spec": spec,
        "status": status or {},
    }


def vmi(
    name: str,
    phase: str = "Running",
    *,
    created: str = "2026-01-01T00:00:00Z",
    ready: bool = True,
    owner: str | None = "rs-uid",
    labels: Json | None = None,
    deleting: bool = False,
) -> Json:
    meta: Json = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "creationTimestamp": created,
        "labels": LABELS if labels is None else labels,
    }
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "kind": "VirtualMachineInstanceReplicaSet",
                "name": "rs",
                "uid": owner,
                "controller": True,
            }
        ]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:09Z"
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    return {"metadata": meta, "status": {"phase": phase, "conditions": conditions}}


def names(vmis: Any) -> list[str]:
    return [v["metadata"]["name"] for v in vmis]


def test_its_vmis_adopted_and_released() -> None:
    mine, orphan = vmi("a"), vmi("b", owner=None)
    other, unmatched_orphan = vmi("c", owner="other-uid"), vmi("d", owner=None, labels={})
    drifted = vmi("e", labels={"kubevirt.io/vmReplicaSet": "else"})
    claimed = replicas.claim(
        rs(), [mine, orphan, other, unmatched_orphan, drifted], replicas.selector(rs())
    )
    assert names(claimed.mine) == ["a", "b"]
    assert names(claimed.adopt) == ["b"]
    assert names(claimed.release) == ["e"]


@pytest.mark.parametrize(
    ("wanted", "vmis", "create", "delete"),
    [
        pytest.param(3, [], 3, [], id="creates-all"),
        pytest.param(3, [vmi("a")], 2, [], id="creates-the-difference"),
        pytest.param(3, [vmi("a"), vmi("b"), vmi("c")], 0, [], id="steady"),
        pytest.param(
            1,
            [
                vmi("old", created="2026-01-01T00:00:01Z"),
                vmi("new", created="2026-01-01T00:00:03Z"),
                vmi("mid", created="2026-01-01T00:00:02Z"),
            ],
            0,
            ["new", "mid"],
            id="newest-go-first",
        ),
        pytest.param(
            1,
            [
                vmi("new", created="2026-01-01T00:00:03Z"),
                vmi("scheduling", "Scheduling", created="2026-01-01T00:00:01Z", ready=False),
                vmi("unready", created="2026-01-01T00:00:02Z", ready=False),
            ],
            0,
            ["scheduling", "unready"],
            id="not-running-then-not-ready-first",
        ),
        pytest.param(0, [vmi("a"), vmi("b")], 0, ["b", "a"], id="to-zero"),
        pytest.param(2, [vmi("a"), vmi("f", "Failed")], 1, ["f"], id="a-failed-one-is-replaced"),
        pytest.param(
            2, [vmi("a"), vmi("gone", deleting=True)], 1, [], id="one-deleted-by-hand-is-replaced"
        ),
        pytest.param(None, [], 1, [], id="replicas-default-to-one"),
    ],
)
def test_scale(wanted: int | None, vmis: list[Json], create: int, delete: list[str]) -> None:
    s = rs(wanted)
    plan = replicas.scale(s, replicas.active(vmis), replicas.finished(vmis))
    assert (plan.create, names(plan.delete)) == (create, delete)


def test_scale_is_bounded_by_the_burst() -> None:
    plan = replicas.scale(rs(10), [], [], burst=4)
    assert plan.create == 4


def test_a_created_vmi_is_the_template_with_an_owner() -> None:
    body = replicas.vmi_for(rs())
    meta = body["metadata"]
    assert meta["generateName"] == "rs"  # KubeVirt's: the API server appends 5 characters
    assert meta["labels"] == LABELS
    assert meta["ownerReferences"][0] == {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstanceReplicaSet",
        "name": "rs",
        "uid": "rs-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    body["metadata"]["name"] = "rsabcde"
    assert isinstance(kinds.load(body), kinds.VMI.cls)


def test_status_counts_and_selector() -> None:
    running = [vmi("a"), vmi("b", ready=False)]
    status = replicas.status(rs(), running, replicas.selector(rs()), error=None, now="T")
    assert status == {
        "replicas": 2,
        "readyReplicas": 1,
        "labelSelector": "kubevirt.io/vmReplicaSet=rs",
    }


def test_paused_and_failure_conditions_come_and_go() -> None:
    chosen = replicas.selector(rs())
    paused = replicas.status(rs(paused=True), [], chosen, error=("FailedCreate", "quota"), now="T1")
    assert [(c["type"], c["reason"], c["message"]) for c in paused["conditions"]] == [
        ("ReplicaPaused", "Paused", "Controller got paused"),
        ("ReplicaFailure", "FailedCreate", "quota"),
    ]
    again = replicas.status(
        rs(paused=True, status=paused), [], chosen, error=("FailedCreate", "x"), now="T2"
    )
    assert again == paused  # kept as it was
    resumed = replicas.status(rs(status=paused), [], chosen, error=None, now="T3")
    assert "conditions" not in resumed


@pytest.mark.parametrize(
    ("spec_change", "words"),
    [
        pytest.param({"selector": None}, "required", id="no-selector"),
        pytest.param(
            {"selector": {"matchLabels": {"other": "x"}}}, "does not match", id="mismatch"
        ),
        pytest.param(
            {"selector": {"matchExpressions": [{"key": "k", "operator": "In"}]}},
            "invalid selector",
            id="invalid",
        ),
    ],
)
def test_a_set_that_cannot_be_acted_on(spec_change: Json, words: str) -> None:
    s = rs()
    s["spec"].update(spec_change)
    with pytest.raises(replicas.InvalidReplicaSet, match=words):
        replicas.selector(s)
