"""Which spec interface the launcher wires, and how: pure, from the VMI alone.

Every interface must name a network of the spec, and the network must be the pod network
(`pod: {}`, the only kind kvd's API has). Two bindings are served, as KubeVirt serves them:

- bridge: the guest takes the pod's IP and MAC (`links.wire_bridge`);
- masquerade: the pod keeps its IP; the guest sits behind NAT on a network of its own
  (`vmNetworkCIDR`, 10.0.2.0/24 by default) whose first address is the gateway on the in-pod
  bridge and whose second is the guest's, and inbound traffic to the pod is forwarded to the
  guest: all of it, or only the listed `ports` (`nat`).

The API validates all this; the launcher checks again, with INVALID_ARGUMENT naming the
interface, since it must hold its ground against any VMI it is handed. Like KubeVirt, a VMI has
at most one pod network.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Interface
from typing import Literal

from kvd.api import defaults, validation
from kvd.api.vmi import VirtualMachineInstance
from kvd.launcher.errors import InvalidSpec

Binding = Literal["bridge", "masquerade"]
Protocol = Literal["tcp", "udp"]


@dataclass(frozen=True, kw_only=True)
class ForwardedPort:
    """One inbound port the masquerade binding forwards to the guest."""

    protocol: Protocol
    port: int


@dataclass(frozen=True, kw_only=True)
class GuestNetwork:
    """The masquerade binding's own network: the gateway (on the in-pod bridge) and the guest,
    each with the network's prefix."""

    gateway: IPv4Interface
    guest: IPv4Interface


@dataclass(frozen=True, kw_only=True)
class PodInterface:
    """The one spec interface on the pod network, with its binding."""

    name: str
    mac_address: str | None  # the spec's, if it gives one
    binding: Binding = "bridge"
    # masquerade only: its network, and the ports forwarded to the guest (empty: all of them)
    guest_network: GuestNetwork | None = None
    ports: tuple[ForwardedPort, ...] = ()


def guest_network(cidr: str | None) -> GuestNetwork:
    """The gateway and guest addresses of a masquerade network (vmNetworkCIDR or the default)."""
    try:
        network = validation.vm_network(cidr)
    except ValueError as exc:
        raise InvalidSpec(f"vmNetworkCIDR: {exc}") from None
    prefix = network.prefixlen
    return GuestNetwork(
        gateway=IPv4Interface(f"{network[1]}/{prefix}"),
        guest=IPv4Interface(f"{network[2]}/{prefix}"),
    )


def pod_interface(vmi: VirtualMachineInstance) -> PodInterface | None:
    """The interface to wire onto the pod network, or None when the VMI has no NIC."""
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
        if found is not None:
            raise InvalidSpec(
                f"interfaces {found.name!r} and {interface.name!r} both use the pod network; "
                "a VMI has at most one"
            )
        if interface.masquerade is not None:
            found = PodInterface(
                name=interface.name,
                mac_address=interface.mac_address,
                binding="masquerade",
                guest_network=guest_network(network.pod.vm_network_cidr),
                ports=tuple(_forwarded(p.protocol, p.port) for p in interface.ports),
            )
        elif interface.bridge is not None:
            if interface.ports:
                raise InvalidSpec(
                    f"interface {interface.name!r}: ports are forwarded only by the masquerade "
                    "binding; with the bridge binding the guest has the pod's IP and every port"
                )
            found = PodInterface(name=interface.name, mac_address=interface.mac_address)
        else:
            raise InvalidSpec(
                f"interface {interface.name!r} names no binding (bridge: {{}} or masquerade: {{}})"
            )
    return found


def _forwarded(protocol: str | None, port: int) -> ForwardedPort:
    # The schema allows TCP and UDP only; KubeVirt's default is TCP. nft spells them lowercase.
    return ForwardedPort(protocol="udp" if protocol == "UDP" else "tcp", port=port)
