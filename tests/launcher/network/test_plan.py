from __future__ import annotations

from typing import Any

import pytest

from kvd.api import codec, kinds
from kvd.api.vmi import VirtualMachineInstance
from kvd.launcher.errors import InvalidSpec
from kvd.launcher.network import plan
from kvd.launcher.network.plan import PodInterface


def _vmi(
    interfaces: list[dict[str, Any]] | None,
    networks: list[dict[str, Any]] | None,
    *,
    validate: bool = True,
    **devices: Any,
) -> VirtualMachineInstance:
    spec: dict[str, Any] = {
        "domain": {"devices": dict(devices), "memory": {"guest": "64Mi"}},
    }
    if interfaces is not None:
        spec["domain"]["devices"]["interfaces"] = interfaces
    if networks is not None:
        spec["networks"] = networks
    data = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"namespace": "ns", "name": "vm"},
        "spec": spec,
    }
    # Unvalidated: the launcher must hold its ground even against a VMI the API would refuse.
    vmi = kinds.load(data) if validate else codec.decode(VirtualMachineInstance, data)
    assert isinstance(vmi, VirtualMachineInstance)
    return vmi


POD = [{"name": "default", "pod": {}}]


@pytest.mark.parametrize(
    ("vmi", "expected"),
    [
        pytest.param(
            _vmi([{"name": "default", "bridge": {}}], POD),
            PodInterface(name="default", mac_address=None),
            id="bridge",
        ),
        pytest.param(
            _vmi([{"name": "default", "bridge": {}, "macAddress": "02-AA-bb-cc-dd-ee"}], POD),
            PodInterface(name="default", mac_address="02-AA-bb-cc-dd-ee"),
            id="bridge-with-mac",
        ),
        pytest.param(
            _vmi(None, None), PodInterface(name="default", mac_address=None), id="defaulted"
        ),
        pytest.param(_vmi(None, None, autoattachPodInterface=False), None, id="no-nic"),
    ],
)
def test_the_pod_interface(vmi: VirtualMachineInstance, expected: PodInterface | None) -> None:
    assert plan.pod_interface(vmi) == expected


@pytest.mark.parametrize(
    ("interfaces", "networks", "message"),
    [
        pytest.param(
            [{"name": "default", "masquerade": {}}], POD, "masquerade", id="masquerade-refused"
        ),
        pytest.param(
            [{"name": "a", "bridge": {}}, {"name": "b", "bridge": {}}],
            [{"name": "a", "pod": {}}, {"name": "b", "pod": {}}],
            "at most one",
            id="two-pod-interfaces",
        ),
        pytest.param([{"name": "other", "bridge": {}}], POD, "no network", id="unknown-network"),
    ],
)
def test_refused(
    interfaces: list[dict[str, Any]], networks: list[dict[str, Any]], message: str
) -> None:
    vmi = _vmi(interfaces, networks, validate=False)
    with pytest.raises(InvalidSpec, match=message):
        plan.pod_interface(vmi)
