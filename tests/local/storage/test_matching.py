"""Which volume a claim binds, and what the scheduler does with a pod's claims (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.local.storage import matching, scheduling

Json = dict[str, Any]


def _claim(size: str = "1Gi", **spec: Any) -> Json:
    return {
        "metadata": {"name": "c", "namespace": "ns", "uid": "u1"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
            "storageClassName": "",
            **spec,
        },
    }


def _volume(name: str, size: str, *, labels: Json | None = None, **spec: Any) -> Json:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
            "hostPath": {"path": "/x"},
            **spec,
        },
        "status": {"phase": "Available"},
    }


def test_the_smallest_volume_that_fits_is_chosen() -> None:
    volumes = [_volume("big", "10Gi"), _volume("small", "512Mi"), _volume("fits", "2Gi")]
    assert (matching.find_volume(_claim(), volumes) or {})["metadata"]["name"] == "fits"


@pytest.mark.parametrize(
    ("claim", "volume"),
    [
        pytest.param(_claim(storageClassName="fast"), _volume("v", "1Gi"), id="class"),
        pytest.param(_claim(volumeMode="Block"), _volume("v", "1Gi"), id="volume-mode"),
        pytest.param(_claim(accessModes=["ReadWriteMany"]), _volume("v", "1Gi"), id="modes"),
        pytest.param(_claim("2Gi"), _volume("v", "1Gi"), id="capacity"),
        pytest.param(
            _claim(selector={"matchLabels": {"tier": "gold"}}),
            _volume("v", "1Gi", labels={"tier": "bronze"}),
            id="selector",
        ),
        pytest.param(
            _claim(),
            _volume("v", "1Gi", claimRef={"namespace": "ns", "name": "other"}),
            id="pre-bound-to-another",
        ),
        pytest.param(_claim(volumeName="elsewhere"), _volume("v", "1Gi"), id="volume-name"),
    ],
)
def test_a_volume_that_does_not_fit_is_never_chosen(claim: Json, volume: Json) -> None:
    assert matching.find_volume(claim, [volume]) is None


def test_a_volume_pre_bound_to_the_claim_wins_over_a_smaller_one() -> None:
    mine = _volume("mine", "5Gi", claimRef={"namespace": "ns", "name": "c"})
    chosen = matching.find_volume(_claim(), [_volume("small", "1Gi"), mine])
    assert (chosen or {})["metadata"]["name"] == "mine"


def test_selector_expressions_select() -> None:
    claim = _claim(
        selector={"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}
    )
    gold = _volume("gold", "1Gi", labels={"tier": "gold"})
    assert matching.find_volume(claim, [_volume("plain", "1Gi"), gold]) == gold


def _pod(*claims: str) -> Json:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {
            "volumes": [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims]
        },
    }


CLASSES = {
    "wffc": {"volumeBindingMode": "WaitForFirstConsumer"},
    "now": {"volumeBindingMode": "Immediate"},
}


def _decide(claims: dict[str, Json]) -> scheduling.Decision:
    return scheduling.decide(
        _pod(*claims),
        claim=lambda ns, name: claims[name] or None,
        storage_class=CLASSES.get,
    )


def _pvc(cls: str, *, bound: bool = False, selected: bool = False, deleting: bool = False) -> Json:
    meta: Json = {"name": "x", "annotations": {}}
    if selected:
        meta["annotations"]["volume.kubernetes.io/selected-node"] = "n"
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"storageClassName": cls, **({"volumeName": "pv"} if bound else {})},
        "status": {"phase": "Bound" if bound else "Pending"},
    }


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        pytest.param({"a": {}}, 'persistentvolumeclaim "a" not found', id="missing"),
        pytest.param(
            {"a": _pvc("now", deleting=True)},
            'persistentvolumeclaim "a" is being deleted',
            id="deleting",
        ),
        pytest.param({"a": _pvc("now")}, scheduling.UNBOUND_IMMEDIATE, id="unbound-immediate"),
        pytest.param({"a": _pvc("")}, scheduling.UNBOUND_IMMEDIATE, id="unbound-no-class"),
        pytest.param(
            {"a": _pvc("gone")}, 'storageclass.storage.k8s.io "gone" not found', id="no-class"
        ),
    ],
)
def test_pods_whose_claims_cannot_be_placed_are_unschedulable(
    claims: dict[str, Json], expected: str
) -> None:
    assert _decide(claims).unschedulable == expected


def test_wait_for_first_consumer_claims_are_selected_then_awaited() -> None:
    decision = _decide(
        {"a": _pvc("wffc"), "b": _pvc("wffc", selected=True), "c": _pvc("now", bound=True)}
    )
    assert (decision.select, decision.waiting, decision.ready) == (["a"], ["b"], False)
    assert _decide({"c": _pvc("now", bound=True)}).ready
