"""Which spec interfaces the launcher wires, and how: pure, from the VMI alone.

Every interface must name a network of the spec, and the network must be the pod network
(`pod: {}`, the only kind kvd's API has). The bridge binding is served; masquerade is refused
with INVALID_ARGUMENT, naming the interface, rather than leaving the guest without the NIC it
asked for. Like KubeVirt, a VMI has at most one pod network.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvd.api import defaults
from kvd.api.vmi import VirtualMachineInstance
from kvd.launcher.errors import InvalidSpec


@dataclass(frozen=True, kw_only=True)
class PodInterface:
    """The one spec interface on the pod network, with the bridge binding."""

    name: str
    mac_address: str | None  # the spec's, if it gives one


def pod_interface(vmi: VirtualMachineInstance) -> PodInterface | None:
    """The interface to bridge onto the pod network, or None when the VMI has no NIC."""
    spec = defaults.vmi(vmi).spec  # an undefaulted VMI gets the default pod interface too
    networks = {n.name: n for n in spec.networks}
    found: PodInterface | None = None
    for interface in spec.domain.devices.interfaces:
        network = networks.get(interface.name)
        if network is None:
            raise InvalidSpec(
                f"interface {interface.name!r} has no network of that name in spec.networks"
            )
        if network.pod is None:
            raise InvalidSpec(f"network {network.name!r}: only the pod network is supported")
        if interface.masquerade is not None:
            raise InvalidSpec(
                f"interface {interface.name!r}: the masquerade binding is not supported by "
                "this launcher yet; use the bridge binding (bridge: {})"
            )
        if interface.bridge is None:
            raise InvalidSpec(f"interface {interface.name!r} names no binding (bridge: {{}})")
        if found is not None:
            raise InvalidSpec(
                f"interfaces {found.name!r} and {interface.name!r} both use the pod network; "
                "a VMI has at most one"
            )
        found = PodInterface(name=interface.name, mac_address=interface.mac_address)
    return found
