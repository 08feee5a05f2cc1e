"""Which claims a VM's template names, and when a claim counts as bound (for
WaitingForVolumeBinding)."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.controller import vm

Json = dict[str, Any]


def test_the_claims_a_template_names() -> None:
    machine = {
        "metadata": {"name": "v", "namespace": "ns"},
        "spec": {
            "template": {
                "spec": {
                    "volumes": [
                        {"name": "a", "persistentVolumeClaim": {"claimName": "disk-a"}},
                        {"name": "b", "containerDisk": {"image": "kvd-demo"}},
                        {"name": "c", "persistentVolumeClaim": {"claimName": "disk-c"}},
                    ]
                }
            }
        },
    }
    assert vm.claims_of(machine) == ["ns/disk-a", "ns/disk-c"]
    assert vm.claims_of({"metadata": {"namespace": "ns"}, "spec": {}}) == []


@pytest.mark.parametrize(
    ("claim", "bound"),
    [
        pytest.param({"status": {"phase": "Bound"}}, True, id="bound-by-a-binder"),
        pytest.param({"status": {"phase": "Pending"}}, False, id="pending"),
        pytest.param(
            {"spec": {"volumeName": "pv"}, "status": {"phase": "Pending"}},
            False,
            id="named-pending",
        ),
        pytest.param({"spec": {"volumeName": "pv"}}, True, id="named-no-binder"),
        pytest.param({"spec": {}}, False, id="unnamed-no-binder"),
    ],
)
def test_when_a_claim_is_bound(claim: Json, bound: bool) -> None:
    assert vm.bound(claim) is bound
