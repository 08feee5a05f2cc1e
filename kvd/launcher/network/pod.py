"""`PodNetwork`: the guest on the pod network with KubeVirt's bridge binding.

`prepare(vmi)` is what DefineDomain calls before converting: it decides from the spec which
interface to wire (`plan`), takes the pod interface over (`links`), starts the DHCP server
that hands the guest the pod's IP (`dhcp`), and returns the tap per spec interface for the
converter. What the pod interface held is recorded in `run_dir/network/pod.json` *before*
anything changes, so a repeated DefineDomain, or a launcher restarted in the same pod (whose
eth0 no longer has the IP), wires the same way again and changes nothing.

`addresses()` is what the domain reports per interface: the pod IP the guest leased (KubeVirt
learns it from the guest agent; with this binding the launcher knows it). `close()` ends the
DHCP server; the links need no undoing, as the network namespace ends with the pod.

Taking eth0 over is opt-in (`--pod-network`, which launcher pods are given): without it the
launcher refuses VMIs with interfaces (FAILED_PRECONDITION), so one run by hand on a host never
moves the host's eth0 onto a bridge. As a second guard, where pid 1's namespaces are readable, a
launcher in pid 1's netns but another mount namespace (a kvd sandbox on a host) refuses too.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvd import logs
from kvd.api.vmi import VirtualMachineInstance
from kvd.launcher.converter.context import InterfaceTarget
from kvd.launcher.errors import Conflict
from kvd.launcher.network import dhcp, links, plan, resolvconf

log = logs.get_logger(__name__)

POD_INTERFACE = "eth0"
NETWORK_DIR = "network"


@dataclass(frozen=True, kw_only=True)
class _Wired:
    interface: str  # the spec interface's name
    mac: str  # the guest's MAC
    pod: links.PodLink


class PodNetwork:
    def __init__(
        self,
        run_dir: Path,
        *,
        enabled: bool = False,
        pod_interface: str = POD_INTERFACE,
        resolv_conf: Path = resolvconf.RESOLV_CONF,
    ) -> None:
        self.enabled = enabled
        self.directory = run_dir / NETWORK_DIR
        self._state = self.directory / "pod.json"
        self._pod_interface = pod_interface
        self._resolv_conf = resolv_conf
        self._dhcp = dhcp.DhcpServer(self.directory)
        self._lock = threading.Lock()
        self._wired: _Wired | None = None

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
            mac = (wanted.mac_address or pod.mac).replace("-", ":").lower()
            links.wire_bridge(pod, new_mac=links.random_mac())
            lease = dhcp.Lease(
                mac=mac,
                address=pod.address,
                gateway=pod.gateway,
                dns=resolvconf.read(self._resolv_conf),
                mtu=pod.mtu,
            )
            self._dhcp.start(lease, interface=links.BRIDGE)
            if self._wired is None or self._wired.mac != mac:
                log.info(
                    "pod_network_bridged",
                    interface=wanted.name,
                    ip=str(pod.address),
                    gateway=str(pod.gateway),
                    mac=mac,
                )
            self._wired = _Wired(interface=wanted.name, mac=mac, pod=pod)
            self._save(pod, guest={"interface": wanted.name, "mac": mac})
        return {wanted.name: InterfaceTarget(tap=links.TAP, mac=mac)}

    def addresses(self) -> dict[str, tuple[str, ...]]:
        """Spec interface name → the IPs the guest was given on it."""
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
        """The launcher ends: end the DHCP server and remove the files (the links end with
        the pod's netns)."""
        with self._lock:
            self._dhcp.stop()
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
        return _Wired(interface=str(guest["interface"]), mac=str(guest["mac"]), pod=pod)

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
