"""The pod's links, read and rewired with iproute2 (`ip -json`), as KubeVirt's bindings.

`read_pod_link` records what the pod interface holds (IPv4 address and prefix, default
gateway, MAC, MTU) before anything changes. `wire_bridge` then moves the pod onto a bridge
(the bridge binding):

    eth0 (IP removed, random MAC) ─┐
                                   ├─ k6t-eth0 (169.254.75.10/32, for the DHCP server)
    tap0 (QEMU's, MTU of eth0)  ───┘

`wire_masquerade` leaves eth0 as it is and puts the guest on a bridge of its own, routed and
NATed (`nat`) to eth0 (the masquerade binding):

    eth0 (the pod's IP, untouched)      k6t-eth0 (the gateway, 10.0.2.1/24; MAC 02:00:00:00:00:00)
                                           └─ tap0 (QEMU's, MTU of eth0)

with IPv4 forwarding on in the pod's netns and `route_localnet` on the bridge (so that the
pod's own traffic to 127.0.0.1, DNATed to the guest, may leave through it), as KubeVirt sets.

The tap is created owned by QEMU's unprivileged user and group (`ip tuntap add … user UID group
GID`): that user may attach to it without CAP_NET_ADMIN, and no other may. (Today the privileged
libvirtd opens it and hands QEMU the descriptor; a session libvirtd run as QEMU's user could
open it itself.) A tap another owner made (an older launcher in the same pod) is made again.
Creating links, moving eth0 and writing the pod's sysctls needs CAP_NET_ADMIN in the pod's
netns: the launcher's, never QEMU's.

Each step checks first and changes only what is not yet so, so wiring again — a repeated
DefineDomain, or a restarted launcher in the same pod — changes nothing. Every `ip` call is
bounded by a timeout; a failure names the command and its stderr.
"""

from __future__ import annotations

import grp
import json
import pwd
import secrets
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

from kvd.launcher.errors import Conflict, LauncherError

IP_TIMEOUT = 10.0
BRIDGE = "k6t-eth0"
TAP = "tap0"
# KubeVirt's bridge binding gives the bridge this link-local address, so the DHCP server has a
# source address that is not the pod's (which now belongs to the guest).
BRIDGE_ADDRESS = IPv4Interface("169.254.75.10/32")
# KubeVirt's masquerade bridge has this fixed MAC (link.StaticMasqueradeBridgeMAC), which the API
# refuses for the guest: a bridge otherwise takes its lowest port's, the tap's.
MASQUERADE_BRIDGE_MAC = "02:00:00:00:00:00"
SYSCTL = Path("/proc/sys")


@dataclass(frozen=True, kw_only=True)
class TapOwner:
    """Who may attach to the tap: QEMU's user and group. None is nobody in particular (a tap
    made without `user`/`group`), which only root may attach to."""

    uid: int | None
    gid: int | None


@dataclass(frozen=True, kw_only=True)
class PodLink:
    """The pod interface as the pod got it, before the binding took it over."""

    name: str
    address: IPv4Interface
    gateway: IPv4Address | None
    mac: str
    mtu: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": str(self.address),
            "gateway": None if self.gateway is None else str(self.gateway),
            "mac": self.mac,
            "mtu": self.mtu,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PodLink:
        gateway = data.get("gateway")
        return cls(
            name=str(data["name"]),
            address=IPv4Interface(data["address"]),
            gateway=None if gateway is None else IPv4Address(gateway),
            mac=str(data["mac"]),
            mtu=int(data["mtu"]),
        )


def random_mac() -> str:
    """A random locally administered unicast MAC."""
    octets = bytearray(secrets.token_bytes(6))
    octets[0] = (octets[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in octets)


def read_pod_link(name: str) -> PodLink:
    """The pod interface's IPv4 address, gateway, MAC and MTU; Conflict if it has none."""
    link = show(name)
    if link is None:
        raise Conflict(f"the pod has no interface {name!r}: no pod network to bind the guest to")
    addresses = [
        IPv4Interface(f"{a['local']}/{a['prefixlen']}")
        for a in link.get("addr_info", [])
        if a.get("family") == "inet" and a.get("scope", "global") == "global"
    ]
    if not addresses:
        raise Conflict(f"the pod interface {name} has no IPv4 address to hand to the guest")
    gateway = None
    for route in _json("-4", "route", "show", "default", "dev", name):
        if route.get("gateway"):
            gateway = IPv4Address(route["gateway"])
            break
    return PodLink(
        name=name,
        address=addresses[0],
        gateway=gateway,
        mac=str(link["address"]).lower(),
        mtu=int(link["mtu"]),
    )


def show(name: str) -> dict[str, Any] | None:
    """`ip -j addr show dev NAME`, or None when there is no such link."""
    done = _run("-json", "addr", "show", "dev", name, check=False)
    if done.returncode != 0:
        if "does not exist" in done.stderr:
            return None
        raise LauncherError(f"ip addr show dev {name} failed: {done.stderr.strip()}")
    found = json.loads(done.stdout or "[]")
    return found[0] if found else None


def wire_bridge(pod: PodLink, *, new_mac: str, owner: TapOwner) -> None:
    """Move the pod interface onto the bridge beside the guest's tap (see the module doc)."""
    link = show(pod.name)
    if link is None:
        raise Conflict(f"the pod interface {pod.name} disappeared")
    if _has_address(link, pod.address):
        # The address (and with it the default route) goes: it is the guest's from now on.
        _run("addr", "del", str(pod.address), "dev", pod.name)
    if str(link["address"]).lower() == pod.mac:
        # The guest takes the pod's MAC, so neighbours' ARP caches stay right; eth0 needs another.
        _run("link", "set", "dev", pod.name, "down")
        _run("link", "set", "dev", pod.name, "address", new_mac)
    bridge = show(BRIDGE)
    if bridge is None:
        _run("link", "add", BRIDGE, "type", "bridge")
        bridge = show(BRIDGE) or {}
    if not _has_address(bridge, BRIDGE_ADDRESS):
        _run("addr", "add", str(BRIDGE_ADDRESS), "dev", BRIDGE)
    _tap(owner)
    _run("link", "set", "dev", TAP, "mtu", str(pod.mtu))
    _run("link", "set", "dev", pod.name, "master", BRIDGE)
    _run("link", "set", "dev", TAP, "master", BRIDGE)
    for name in (pod.name, TAP, BRIDGE):
        _run("link", "set", "dev", name, "up")


def wire_masquerade(pod: PodLink, *, gateway: IPv4Interface, owner: TapOwner) -> None:
    """Put the guest's tap on a bridge holding its gateway; eth0 stays (see the module doc)."""
    if show(pod.name) is None:
        raise Conflict(f"the pod interface {pod.name} disappeared")
    bridge = show(BRIDGE)
    if bridge is None:
        _run("link", "add", BRIDGE, "type", "bridge")
        bridge = show(BRIDGE) or {}
    if str(bridge.get("address", "")).lower() != MASQUERADE_BRIDGE_MAC:
        _run("link", "set", "dev", BRIDGE, "address", MASQUERADE_BRIDGE_MAC)
    _run("link", "set", "dev", BRIDGE, "mtu", str(pod.mtu))
    for a in bridge.get("addr_info", []):
        # a gateway of another vmNetworkCIDR, from an earlier DefineDomain in this pod
        here = (a.get("local"), a.get("prefixlen"))
        if a.get("family") == "inet" and here != (str(gateway.ip), gateway.network.prefixlen):
            _run("addr", "del", f"{a['local']}/{a['prefixlen']}", "dev", BRIDGE)
    if not _has_address(bridge, gateway):
        _run("addr", "add", str(gateway), "dev", BRIDGE)
    _tap(owner)
    _run("link", "set", "dev", TAP, "mtu", str(pod.mtu))
    _run("link", "set", "dev", TAP, "master", BRIDGE)
    for name in (TAP, BRIDGE):
        _run("link", "set", "dev", name, "up")
    # /proc/sys/net is the netns of the process that opens it: these are the pod's settings.
    _write_sysctl(SYSCTL / "net/ipv4/ip_forward")
    _write_sysctl(SYSCTL / "net/ipv4/conf" / BRIDGE / "route_localnet")


def _tap(owner: TapOwner) -> None:
    """The guest's tap, owned by QEMU's user and group; made again if another owner made it."""
    found = tap_owner()
    if found is not None and found != owner:
        _run("link", "del", "dev", TAP)
        found = None
    if found is None:
        # Not multi-queue: QEMU opens it with one queue.
        argv = ["tuntap", "add", "dev", TAP, "mode", "tap"]
        argv += ["user", str(owner.uid)] if owner.uid is not None else []
        argv += ["group", str(owner.gid)] if owner.gid is not None else []
        _run(*argv)


def tap_owner() -> TapOwner | None:
    """Who owns the tap; None when there is no tap."""
    done = _run("-details", "-json", "link", "show", "dev", TAP, check=False)
    if done.returncode != 0:
        if "does not exist" in done.stderr:
            return None
        raise LauncherError(f"ip link show dev {TAP} failed: {done.stderr.strip()}")
    found = json.loads(done.stdout or "[]")
    if not found:
        return None
    # `ip` names the owner when it can resolve it, and prints the number otherwise.
    data = found[0].get("linkinfo", {}).get("info_data", {})
    return TapOwner(
        uid=_id(data.get("user"), lambda n: pwd.getpwnam(n).pw_uid),
        gid=_id(data.get("group"), lambda n: grp.getgrnam(n).gr_gid),
    )


def _id(value: object, resolve: Callable[[str], int]) -> int | None:
    if value is None:
        return None
    text = str(value)
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return resolve(text)
    except KeyError:
        raise LauncherError(f"{TAP} is owned by {text!r}, which this pod cannot resolve") from None


def _write_sysctl(path: Path) -> None:
    try:
        if path.read_text().strip() != "1":
            path.write_text("1\n")
    except OSError as exc:
        raise LauncherError(f"cannot set {path} to 1: {exc}") from exc


def global_ipv6(name: str) -> list[str]:
    """The pod interface's global IPv6 addresses (the masquerade binding serves IPv4 only)."""
    link = show(name) or {}
    return [
        str(a["local"])
        for a in link.get("addr_info", [])
        if a.get("family") == "inet6" and a.get("scope") == "global"
    ]


def _has_address(link: dict[str, Any], address: IPv4Interface) -> bool:
    return any(
        a.get("family") == "inet"
        and a.get("local") == str(address.ip)
        and a.get("prefixlen") == address.network.prefixlen
        for a in link.get("addr_info", [])
    )


def _json(*args: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(_run("-json", *args).stdout or "[]")
    return found


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *args]
    try:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=IP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LauncherError(f"{' '.join(argv)}: {exc}") from exc
    if check and done.returncode != 0:
        raise LauncherError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done
