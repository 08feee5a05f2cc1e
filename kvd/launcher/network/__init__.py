"""The launcher's network: the guest's NIC on the pod network (KubeVirt's bridge binding).

`PodNetwork.prepare(vmi)` runs in DefineDomain before the converter: it checks the spec's
interfaces (`plan`: bridge on the pod network; masquerade is refused), moves the pod's IP and
MAC from eth0 to the guest through a bridge and a tap (`links`), and starts a DHCP server that
offers the guest exactly the pod's IP, gateway and DNS (`dhcp`, `resolvconf`). The converter
gets an `InterfaceTarget` (tap, MAC) per wired interface; the domain reports the pod IP on it.
"""

from kvd.launcher.network.pod import PodNetwork

__all__ = ["PodNetwork"]
