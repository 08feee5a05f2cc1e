from __future__ import annotations

from ipaddress import IPv4Interface
from typing import Any

import pytest

from kvd.api import codec, kinds
from kvd.api.vmi import VirtualMachineInstance
from kvd.launcher.errors import InvalidSpec
from kvd.launcher.network import plan
from kvd.launcher.network.plan import ForwardedPort, GuestNetwork, PodInterface


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
DEFAULT_NETWORK = GuestNetwork(
    gateway=IPv4Interface("10.0.2.1/24"), guest=IPv4Interface("10.0.2.2/24")
)


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
        pytest.param(
            _vmi([{"name": "default", "masquerade": {}}], POD),
            PodInterface(
                name="default",
                mac_address=None,
                binding="masquerade",
                guest_network=DEFAULT_NETWORK,
            ),
            id="masquerade-all-ports-default-network",
        ),
        pytest.param(
            _vmi(
                [
                    {
                        "name": "default",
                        "masquerade": {},
                        "macAddress": "02:00:00:00:00:01",
                        "ports": [
                            {"name": "http", "port": 80},
                            {"port": 53, "protocol": "UDP"},
                            {"port": 22, "protocol": "TCP"},
                        ],
                    }
                ],
                [{"name": "default", "pod": {"vmNetworkCIDR": "192.168.7.77/28"}}],
            ),
            PodInterface(
                name="default",
                mac_address="02:00:00:00:00:01",
                binding="masquerade",
                guest_network=GuestNetwork(
                    gateway=IPv4Interface("192.168.7.65/28"),
                    guest=IPv4Interface("192.168.7.66/28"),
                ),
                ports=(
                    ForwardedPort(protocol="tcp", port=80),
                    ForwardedPort(protocol="udp", port=53),
                    ForwardedPort(protocol="tcp", port=22),
                ),
            ),
            id="masquerade-listed-ports-own-network",
        ),
    ],
)
def test_the_pod_interface(vmi: VirtualMachineInstance, expected: PodInterface | None) -> None:
    assert plan.pod_interface(vmi) == expected


@pytest.mark.parametrize(
    ("interfaces", "networks", "message"),
    [
        pytest.param(
            [{"name": "default", "masquerade": {}}],
            [{"name": "default", "pod": {"vmNetworkCIDR": "10.0.2.0/31"}}],
            "vmNetworkCIDR: .*too small",
            id="masquerade-network-too-small",
        ),
        pytest.param(
            [{"name": "default", "masquerade": {}}],
            [{"name": "default", "pod": {"vmNetworkCIDR": "fd10:0:2::/120"}}],
            "vmNetworkCIDR: .*IPv4",
            id="masquerade-ipv6-network",
        ),
        pytest.param(
            [{"name": "default", "masquerade": {}}],
            [{"name": "default", "pod": {"vmNetworkCIDR": "10.0.2.300/24"}}],
            "vmNetworkCIDR: .*not a CIDR",
            id="masquerade-bad-network",
        ),
        pytest.param(
            [{"name": "default", "bridge": {}, "ports": [{"port": 80}]}],
            POD,
            "only by the masquerade binding",
            id="bridge-with-ports",
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
