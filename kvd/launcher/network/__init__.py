"""The launcher's network: the guest's NIC on the pod network (KubeVirt's bridge and masquerade).

`PodNetwork.prepare(vmi)` runs in DefineDomain before the converter: it checks the spec's
interfaces (`plan`: the pod network, with the bridge or the masquerade binding) and wires the
guest's tap (`links`). Bridge: the pod's IP and MAC move from eth0 to the guest, and a DHCP
server offers it exactly the pod's IP, gateway and DNS (`dhcp`, `resolvconf`). Masquerade: the
pod keeps eth0; the guest gets 10.0.2.2 (or its vmNetworkCIDR's second address) behind a
gateway on the in-pod bridge, with the pod's DNS, and nftables rules in the pod's netns NAT its
traffic and forward inbound ports to it (`nat`). The converter gets an `InterfaceTarget` (tap,
MAC) per wired interface; the domain reports the pod IP on it, with either binding.
"""

from kvd.launcher.network.pod import PodNetwork

__all__ = ["PodNetwork"]
