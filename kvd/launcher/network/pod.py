"""`PodNetwork`: the guest on the pod network, with KubeVirt's bridge or masquerade binding.

`prepare(vmi)` is what DefineDomain calls before converting: it decides from the spec which
interface to wire and how (`plan`), wires it (`links`), starts the DHCP server that hands the
guest its address (`dhcp`, `resolvconf`), and returns the tap per spec interface for the
converter.

- bridge: the guest takes the pod's IP and MAC; eth0 moves onto the bridge.
- masquerade: the pod keeps eth0, its IP and MAC; the guest gets the masquerade network's
  second address (10.0.2.2/24 by default) from a DHCP server on the bridge that holds the
  gateway (10.0.2.1), with the pod's DNS, and its MAC is the spec's or one chosen here; the
  nftables rules of `nat` NAT its traffic out through eth0 and forward inbound ports to it.

What the pod interface held, and the binding and MAC the guest got, are recorded in
`run_dir/network/pod.json` *before* anything changes, so a repeated DefineDomain, or a
launcher restarted in the same pod (whose eth0 may no longer have the IP), wires the same way
again and changes nothing; a later VMI asking the same pod for the other binding is refused.

`addresses()` is what the domain reports per interface: the pod IP, with either binding, as
KubeVirt reports it (with masquerade the guest's own address is internal to the pod).
`release()` ends the DHCP server when the domain is gone; `close()` also deletes the NAT table.
The links need no undoing, as the network namespace ends with the pod.

Taking eth0 over is opt-in (`--pod-network`, which launcher pods are given): without it the
launcher refuses VMIs with interfaces (FAILED_PRECONDITION), so one run by hand on a host never
moves the host's eth0 onto a bridge nor adds NAT rules to the host. As a second guard, where pid
1's namespaces are readable, a launcher in pid 1's netns but another mount namespace (a kvd
sandbox on a host) refuses too.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

from kvd import logs
from kvd.api.vmi import VirtualMachineInstance
from kvd.launcher.converter.context import InterfaceTarget
from kvd.launcher.errors import Conflict, LauncherError
from kvd.launcher.network import dhcp, links, nat, plan, resolvconf

log = logs.get_logger(__name__)

POD_INTERFACE = "eth0"
NETWORK_DIR = "network"


@dataclass(frozen=True, kw_only=True)
class _Wired:
    interface: str  # the spec interface's name
    mac: str  # the guest's MAC
    binding: plan.Binding
    pod: links.PodLink


class PodNetwork:
    def __init__(
        self,
        run_dir: Path,
        *,
        enabled: bool = False,
        pod_interface: str = POD_INTERFACE,
        resolv_conf: Path = resolvconf.RESOLV_CONF,
        tap_owner: links.TapOwner,
    ) -> None:
        self.enabled = enabled
        self._tap_owner = tap_owner  # QEMU's user and group: the tap is theirs
        self.directory = run_dir / NETWORK_DIR
        self._state = self.directory / "pod.json"
        self._pod_interface = pod_interface
        self._resolv_conf = resolv_conf
        self._dhcp = dhcp.DhcpServer(self.directory)
        self._lock = threading.Lock()
        self._wired: _Wired | None = None
        self._nat = False  # whether this launcher loaded NAT rules

    def prepare(self, vmi: VirtualMachineInstance) -> dict[str, InterfaceTarget]:
        """Wire the VMI's pod interface (idempotent); spec interface name → its tap."""
        wanted = plan.pod_interface(vmi)
        if wanted is None:
            return {}
        if not self.enabled:
            raise Conflict(
                f"interface {wanted.name!r} needs the pod network, and this launcher runs "
                "without one (no --pod-network); give the VMI no interfaces "
                "(autoattachPodInterface: false) to run it without a NIC"
            )
        with self._lock:
            pod = self._pod_link()
            earlier = self._recorded()
            if earlier is not None and earlier.binding != wanted.binding:
                raise Conflict(
                    f"this pod's network is already wired with the {earlier.binding} binding "
                    f"(interface {earlier.interface!r}); interface {wanted.name!r} asks for "
                    f"{wanted.binding}, which needs a new pod"
                )
            if wanted.binding == "masquerade":
                mac = self._masquerade(wanted, pod, earlier)
            else:
                mac = self._bridge(wanted, pod)
            wired = _Wired(interface=wanted.name, mac=mac, binding=wanted.binding, pod=pod)
            if self._wired != wired:
                log.info(
                    "pod_network_wired",
                    binding=wanted.binding,
                    interface=wanted.name,
                    pod_ip=str(pod.address),
                    guest_ip=str(
                        wanted.guest_network.guest if wanted.guest_network else pod.address
                    ),
                    mac=mac,
                )
            self._wired = wired
            self._save(pod, guest={"interface": wanted.name, "mac": mac, "binding": wanted.binding})
        return {wanted.name: InterfaceTarget(tap=links.TAP, mac=mac)}

    def _bridge(self, wanted: plan.PodInterface, pod: links.PodLink) -> str:
        mac = (wanted.mac_address or pod.mac).replace("-", ":").lower()
        links.wire_bridge(pod, new_mac=links.random_mac(), owner=self._tap_owner)
        self._serve_dhcp(mac, address=pod.address, gateway=pod.gateway, mtu=pod.mtu)
        return mac

    def _masquerade(
        self, wanted: plan.PodInterface, pod: links.PodLink, earlier: _Wired | None
    ) -> str:
        network = wanted.guest_network
        assert network is not None  # plan gives every masquerade interface its network
        # The spec's MAC, else the one chosen for this pod before, so the guest keeps its lease.
        mac = (wanted.mac_address or (earlier.mac if earlier else None) or _guest_mac()).lower()
        mac = mac.replace("-", ":")
        if ipv6 := links.global_ipv6(pod.name):
            log.warning("masquerade_ipv4_only", pod_ipv6=ipv6, interface=wanted.name)
        links.wire_masquerade(pod, gateway=network.gateway, owner=self._tap_owner)
        nat.apply(
            nat.Masquerade(
                pod_interface=pod.name,
                bridge=links.BRIDGE,
                gateway=network.gateway.ip,
                guest=network.guest.ip,
                ports=wanted.ports,
            )
        )
        self._nat = True
        self._serve_dhcp(mac, address=network.guest, gateway=network.gateway.ip, mtu=pod.mtu)
        return mac

    def _serve_dhcp(
        self, mac: str, *, address: IPv4Interface, gateway: IPv4Address | None, mtu: int
    ) -> None:
        lease = dhcp.Lease(
            mac=mac,
            address=address,
            gateway=gateway,
            dns=resolvconf.read(self._resolv_conf),
            mtu=mtu,
        )
        self._dhcp.start(lease, interface=links.BRIDGE)

    def addresses(self) -> dict[str, tuple[str, ...]]:
        """Spec interface name → its IPs as the VMI reports them: the pod IP (see above)."""
        wired = self._wired or self._recorded()
        if wired is None:
            return {}
        return {wired.interface: (str(wired.pod.address.ip),)}

    def release(self) -> None:
        """The domain is gone: end the DHCP server, but remember the pod interface, since a
        later DefineDomain in this pod finds eth0 already without its IP."""
        with self._lock:
            self._dhcp.stop()

    def close(self) -> None:
        """The launcher ends: end the DHCP server, delete the NAT table it loaded, and remove
        the files (the links end with the pod's netns)."""
        with self._lock:
            self._dhcp.stop()
            if self._nat:
                try:
                    nat.remove()
                except LauncherError as exc:  # the netns, and the table with it, ends anyway
                    log.warning("masquerade_rules_not_removed", error=str(exc))
                self._nat = False
            self._wired = None
            shutil.rmtree(self.directory, ignore_errors=True)

    def _pod_link(self) -> links.PodLink:
        """The pod interface as the pod made it: recorded once, before it is rewired."""
        state = self._load()
        if state is not None:
            return links.PodLink.from_json(state["pod"])
        _refuse_host_network()
        pod = links.read_pod_link(self._pod_interface)
        self._save(pod, guest=None)
        return pod

    def _recorded(self) -> _Wired | None:
        """What an earlier launcher in this pod wired, so a restarted one reports it too."""
        state = self._load()
        if state is None or not state.get("guest"):
            return None
        guest = state["guest"]
        pod = links.PodLink.from_json(state["pod"])
        binding: plan.Binding = "masquerade" if guest.get("binding") == "masquerade" else "bridge"
        return _Wired(
            interface=str(guest["interface"]), mac=str(guest["mac"]), binding=binding, pod=pod
        )

    def _load(self) -> dict[str, Any] | None:
        try:
            state: dict[str, Any] = json.loads(self._state.read_text())
        except FileNotFoundError:
            return None
        return state

    def _save(self, pod: links.PodLink, *, guest: dict[str, str] | None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self._state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pod": pod.to_json(), "guest": guest}))
        tmp.replace(self._state)


def _guest_mac() -> str:
    """A MAC for a masquerade guest whose spec gives none (KubeVirt lets libvirt pick one)."""
    while (mac := links.random_mac()) == links.MASQUERADE_BRIDGE_MAC:
        pass
    return mac


def _refuse_host_network() -> None:
    """Never take over a host's interface: a launcher outside a pod shares the host's netns.

    The host's init (pid 1) lives in the host's network namespace; a launcher in a pod either
    has its own netns, or is (a child of) the pod's pid 1 in the pod's mount namespace. Only a
    launcher in pid 1's netns but another mount namespace — a kvd sandbox on the host, without a
    pod network — is refused.
    """
    try:
        same_net = os.readlink("/proc/1/ns/net") == os.readlink("/proc/self/ns/net")
        same_mnt = os.readlink("/proc/1/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    except OSError:  # no access to pid 1's namespaces: it is not ours to compare with
        return
    if same_net and not same_mnt:
        raise Conflict(
            "the launcher runs in the host's network namespace, not a pod's: refusing to move "
            f"the host's {POD_INTERFACE} onto a bridge (give the VMI no interfaces, or "
            "autoattachPodInterface: false, to run it without a network)"
        )
