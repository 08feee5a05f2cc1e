"""Pod networking on one host: a bridge, and per pod a network namespace with a veth on it.

The bridge holds the gateway (the CIDR's first host) with a fixed MAC (a bridge otherwise takes
its lowest port's, and pods would cache a gateway MAC that changes as pods come and go). Each pod
gets a named netns `<bridge>_<uid>` (bridge names cannot hold `_`, so one bridge's prefix never
matches another's), a veth created with its pod end directly inside as `eth0` (no window with a
stray interface on the host), `lo` up, its IP and a default route via the gateway, and a
resolv.conf. Pods talk to each other through the bridge; the host reaches them through the
bridge's connected route. Nothing here forwards or NATs to the outside world.

IP allocations are files `state_dir/ips/<ip>` holding the pod uid, made with link(2), which fails
when the name exists: two attaches — or a node before and after a restart — never hand out one IP
twice, and the same uid always finds its IP again. Addresses are handed out round robin (the last
one is remembered), so a just-released IP is not reused while neighbours may still cache its MAC.
Everything runs `ip` (iproute2), bounded by a timeout; a failure names the command and its stderr.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import subprocess
import threading
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from kvd import logs

log = logs.get_logger(__name__)

NETNS_DIR = Path("/run/netns")
IP_TIMEOUT = 10.0
HOST_RESOLV_CONF = Path("/etc/resolv.conf")
SYSTEMD_RESOLV_CONF = Path("/run/systemd/resolve/resolv.conf")  # upstreams behind a 127.0.0.53 stub
_BRIDGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,14}$")
_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")


class NetworkError(RuntimeError):
    """Pod networking that cannot be set up as configured; the message says which step failed."""


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    bridge: str = "kvd0"
    cidr: IPv4Network = field(default_factory=lambda: IPv4Network("10.88.0.0/16"))
    nameservers: tuple[str, ...] = ()
    """Empty: the host's nameservers and search domains, as the kubelet's `Default` DNS policy."""

    def __post_init__(self) -> None:
        if not _BRIDGE.match(self.bridge):
            raise NetworkError(
                f"bridge name {self.bridge!r}: 1-15 characters, letters, digits, '.' and '-'"
            )
        if not isinstance(self.cidr, IPv4Network):
            raise NetworkError(f"pod CIDR must be an IPv4 network, not {self.cidr!r}")
        if self.cidr.prefixlen > 29:
            raise NetworkError(f"pod CIDR {self.cidr} is too small: use /29 or larger")
        for ns in self.nameservers:
            try:
                ipaddress.ip_address(ns)
            except ValueError:
                raise NetworkError(f"nameserver {ns!r} is not an IP address") from None

    @property
    def gateway(self) -> IPv4Address:
        return self.cidr.network_address + 1


@dataclass(frozen=True, kw_only=True)
class PodNetwork:
    uid: str
    netns: str
    netns_path: Path
    ip: IPv4Address
    prefix: int
    gateway: IPv4Address
    host_veth: str
    resolv_conf: Path


class Network:
    def __init__(self, config: NetworkConfig, state_dir: Path) -> None:
        self.config = config
        self._ips = state_dir / "ips"
        self._resolv = state_dir / "resolv"
        self._last = state_dir / "last-ip"
        self._ips.mkdir(parents=True, exist_ok=True)
        self._resolv.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # the bridge and the IP allocations
        self._pod_locks: dict[str, threading.Lock] = {}  # one pod's netns and veth

    # --- the bridge --------------------------------------------------------------------------

    def ensure_bridge(self) -> None:
        """The bridge exists, is up and holds the gateway address (idempotent)."""
        c = self.config
        link = _link(c.bridge)
        if link is None:
            mac = _mac(c.bridge)
            done = _ip(
                "link", "add", "name", c.bridge, "address", mac, "type", "bridge",
                "stp_state", "0", "forward_delay", "0", check=False,
            )  # fmt: skip
            if done.returncode != 0 and _link(c.bridge) is None:
                raise _error(done)
            log.info("bridge_created", bridge=c.bridge, cidr=str(c.cidr))
        elif (link.get("linkinfo") or {}).get("info_kind") != "bridge":
            raise NetworkError(f"{c.bridge} exists and is not a bridge: choose another bridge name")
        _batch([
            f"address replace {c.gateway}/{c.cidr.prefixlen} dev {c.bridge}",
            f"link set dev {c.bridge} up",
        ])  # fmt: skip

    def remove_bridge(self) -> None:
        """Delete the bridge (idempotent); pods' host veths merely fall off it."""
        if _link(self.config.bridge) is not None:
            _ip("link", "del", "dev", self.config.bridge, check=False)
            if _link(self.config.bridge) is not None:
                raise NetworkError(f"bridge {self.config.bridge} is still there after deleting it")
            log.info("bridge_removed", bridge=self.config.bridge)

    # --- pods --------------------------------------------------------------------------------

    def attach(self, uid: str) -> PodNetwork:
        """The pod's network, made or completed: the same uid gets the same netns and IP."""
        _check_uid(uid)
        with self._lock:
            self.ensure_bridge()
            pod = self._pod(uid, self._allocate(uid))
            pod_lock = self._pod_locks.setdefault(uid, threading.Lock())
        # The pod's own netns, veth and addresses, under its own lock: about ten `ip` runs,
        # which under the node-wide lock made twenty pods starting together wait in line.
        with pod_lock:
            if not pod.netns_path.exists():
                done = _ip("netns", "add", pod.netns, check=False)
                if done.returncode != 0 and not pod.netns_path.exists():
                    raise _error(done)
            # The pair exists whole or not at all; a host end whose peer is not this netns'
            # eth0 (a netns re-made underneath) is replaced.
            if _link(pod.host_veth) is not None and _link("eth0", netns=pod.netns) is None:
                _ip("link", "del", "dev", pod.host_veth)
            if _link(pod.host_veth) is None:
                _ip(
                    "link", "add", "name", pod.host_veth, "type", "veth",
                    "peer", "name", "eth0", "netns", pod.netns,
                )  # fmt: skip
            _batch([f"link set dev {pod.host_veth} master {self.config.bridge} up"])
            _batch(
                [
                    "link set dev lo up",
                    f"address replace {pod.ip}/{pod.prefix} dev eth0",
                    "link set dev eth0 up",
                    f"route replace default via {pod.gateway} dev eth0",
                ],
                netns=pod.netns,
            )
            _write_atomic(pod.resolv_conf, self._resolv_conf())
            log.info("pod_network_attached", uid=uid, ip=str(pod.ip), netns=pod.netns)
            return pod

    def detach(self, uid: str) -> None:
        """Remove the pod's veth, netns, resolv.conf and IP allocation (idempotent)."""
        _check_uid(uid)
        with self._lock:
            pod_lock = self._pod_locks.setdefault(uid, threading.Lock())
        with pod_lock, self._lock:
            ips = self._allocations().get(uid, [])
            pod = self._pod(uid, ips[0] if ips else self.config.gateway)
            # The host end first: deleting it takes the pair away at once, even while some
            # process still holds the netns open.
            if _link(pod.host_veth) is not None:
                _ip("link", "del", "dev", pod.host_veth, check=False)
            if pod.netns_path.exists():
                done = _ip("netns", "del", pod.netns, check=False)
                if done.returncode != 0 and pod.netns_path.exists():
                    raise _error(done)
            if ips and _link(self.config.bridge) is not None:
                for ip in ips:  # a neighbour entry for a gone pod would outlive it by minutes
                    _ip("neigh", "flush", "to", str(ip), "dev", self.config.bridge, check=False)
            pod.resolv_conf.unlink(missing_ok=True)
            for ip in ips:
                (self._ips / str(ip)).unlink(missing_ok=True)
            log.info("pod_network_detached", uid=uid)

    def attached(self) -> list[str]:
        """Uids with anything left (an IP allocation or a netns): what to clean up after a crash."""
        uids = set(self._allocations())
        prefix = self._netns_prefix()
        if NETNS_DIR.is_dir():
            uids |= {n[len(prefix) :] for n in os.listdir(NETNS_DIR) if n.startswith(prefix)}
        return sorted(uids)

    # --- internals ---------------------------------------------------------------------------

    def _netns_prefix(self) -> str:
        return f"{self.config.bridge}_"

    def _pod(self, uid: str, ip: IPv4Address) -> PodNetwork:
        netns = f"{self._netns_prefix()}{uid}"
        digest = hashlib.sha256(f"{self.config.bridge}/{uid}".encode()).hexdigest()
        return PodNetwork(
            uid=uid, netns=netns, netns_path=NETNS_DIR / netns, ip=ip,
            prefix=self.config.cidr.prefixlen, gateway=self.config.gateway,
            host_veth=f"veth{digest[:11]}", resolv_conf=self._resolv / f"{uid}.conf",
        )  # fmt: skip

    def _allocations(self) -> dict[str, list[IPv4Address]]:
        found: dict[str, list[IPv4Address]] = {}
        for entry in os.listdir(self._ips):
            try:
                ip = IPv4Address(entry)
                uid = (self._ips / entry).read_text().strip()
            except (ValueError, FileNotFoundError):  # a temp file, or released meanwhile
                continue
            found.setdefault(uid, []).append(ip)
        return found

    def _allocate(self, uid: str) -> IPv4Address:
        cidr = self.config.cidr
        for ip in self._allocations().get(uid, []):
            if ip in cidr and ip not in (
                cidr.network_address,
                cidr.broadcast_address,
                self.config.gateway,
            ):
                return ip
            (self._ips / str(ip)).unlink(missing_ok=True)  # from an earlier CIDR
        first, last = int(self.config.gateway) + 1, int(cidr.broadcast_address) - 1
        try:
            hint = int(IPv4Address(self._last.read_text().strip())) + 1
        except (FileNotFoundError, ValueError):
            hint = first
        if not first <= hint <= last:
            hint = first
        taken = set(os.listdir(self._ips))
        tmp = self._ips / f".{uid}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(uid)
        try:
            for n in [*range(hint, last + 1), *range(first, hint)]:
                ip = IPv4Address(n)
                if str(ip) in taken:
                    continue
                try:
                    os.link(tmp, self._ips / str(ip))
                except FileExistsError:
                    continue
                _write_atomic(self._last, str(ip))
                return ip
        finally:
            tmp.unlink()
        raise NetworkError(f"no free IP in {cidr}: {len(taken)} allocated")

    def _resolv_conf(self) -> str:
        if self.config.nameservers:
            return "".join(f"nameserver {ns}\n" for ns in self.config.nameservers)
        servers, other = _parse_resolv(HOST_RESOLV_CONF)
        if not servers and SYSTEMD_RESOLV_CONF.exists():
            servers, other = _parse_resolv(SYSTEMD_RESOLV_CONF)
        return "".join(f"nameserver {ns}\n" for ns in servers) + "".join(f"{o}\n" for o in other)


def _parse_resolv(path: Path) -> tuple[list[str], list[str]]:
    """Nameservers a pod can reach (not loopback: that is the pod's own) and search/options."""
    servers, other = [], []
    try:
        text = path.read_text()
    except OSError:
        return [], []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                if not ipaddress.ip_address(words[1].split("%")[0]).is_loopback:
                    servers.append(words[1])
            except ValueError:
                continue
        elif words and words[0] in ("search", "options"):
            other.append(" ".join(words))
    return servers, other


def _check_uid(uid: str) -> None:
    if not _UID.match(uid):
        raise NetworkError(f"pod uid {uid!r} is not valid (letters, digits and '-', up to 64)")


def _mac(bridge: str) -> str:
    """A stable, locally administered unicast MAC for the bridge."""
    digest = hashlib.sha256(bridge.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


def _link(name: str, *, netns: str | None = None) -> dict[str, Any] | None:
    done = _ip("-j", "-d", "link", "show", "dev", name, check=False, netns=netns)
    if done.returncode != 0:
        return None
    links: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return links[0] if links else None


def _batch(commands: list[str], *, netns: str | None = None) -> None:
    _ip("-batch", "-", netns=netns, input="\n".join(commands) + "\n")


def _ip(
    *args: str, check: bool = True, netns: str | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    try:
        done = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=IP_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise NetworkError(f"`{' '.join(argv)}` did not finish in {IP_TIMEOUT}s") from None
    except FileNotFoundError:
        raise NetworkError("`ip` not found: install iproute2") from None
    if check and done.returncode != 0:
        raise _error(done, input=input)
    return done


def _error(done: subprocess.CompletedProcess[str], *, input: str | None = None) -> NetworkError:
    command = " ".join(str(a) for a in done.args)
    batch = f" (commands: {input.strip()!r})" if input else ""
    return NetworkError(
        f"`{command}` failed with status {done.returncode}{batch}: {done.stderr.strip()}"
    )


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(text)
    os.replace(tmp, path)
