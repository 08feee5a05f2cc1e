"""The guest's DHCP server: busybox `udhcpd` on the pod bridge, offering the pod's IP.

KubeVirt's bridge binding runs a DHCP server in virt-launcher that answers only the guest and
only with the pod's own address, so the guest ends up where the pod was. Here that server is
busybox's `udhcpd` (busybox-static is on every kvd node and in the launcher image): a pool of
exactly one address, a static lease for the guest's MAC, router, DNS servers and search domains
from the pod, the pod interface's MTU, and a long lease (the address never changes while the
pod lives). It answers from the bridge's link-local address, as KubeVirt's does.

`udhcpd_conf` is pure; `DhcpServer` runs the daemon as the launcher's child, in the foreground
(`-f`), and ends it on `stop`. A server left by a killed launcher is found by its pid file and
ended before a new one starts, so a restarted launcher never runs two.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from kvd import logs
from kvd.launcher.errors import LauncherError
from kvd.launcher.network.resolvconf import DnsConfig

log = logs.get_logger(__name__)

LEASE_SECONDS = 86400 * 365  # the pod IP is the guest's for the pod's whole life
ARP_PROBE_MS = 100  # udhcpd probes an address before offering it; the pod IP is ours to give
_STOP_TIMEOUT = 5.0
# A bad config makes udhcpd exit at once: a start is good once it listens on port 67, or, when
# that cannot be seen, after this long alive. (A plain 0.2 s wait was on every VMI's start.)
_START_GRACE = 0.2
_START_POLL = 0.005
_DHCP_PORT = 67


@dataclass(frozen=True, kw_only=True)
class Lease:
    """What the guest is offered."""

    mac: str  # lowercase, colon-separated
    address: IPv4Interface  # the pod IP with its prefix
    gateway: IPv4Address | None
    dns: DnsConfig
    mtu: int


def udhcpd_conf(lease: Lease, *, interface: str, lease_file: Path, pid_file: Path) -> str:
    ip = lease.address.ip
    lines = [
        "# Written by the kvd launcher (kvd/launcher/network/dhcp.py): the guest gets the pod IP.",
        f"start {ip}",
        f"end {ip}",
        f"interface {interface}",
        "max_leases 1",
        f"lease_file {lease_file}",
        f"pidfile {pid_file}",
        f"static_lease {lease.mac} {ip}",
        f"option subnet {lease.address.netmask}",
        f"option lease {LEASE_SECONDS}",
        f"option mtu {lease.mtu}",
    ]
    if lease.gateway is not None:
        lines.append(f"option router {lease.gateway}")
    if lease.dns.nameservers:
        lines.append(f"option dns {' '.join(lease.dns.nameservers)}")
    if lease.dns.search:
        # option 119 for resolvers that read it, option 15 (the first domain) for those that don't
        lines.append(f"option domain {lease.dns.search[0]}")
        lines.append(f"option search {' '.join(lease.dns.search)}")
    return "\n".join(lines) + "\n"


class DhcpServer:
    """One udhcpd for one bridge; files under `directory`. `start` and `stop` are idempotent."""

    def __init__(self, directory: Path, *, busybox: str | None = None) -> None:
        self.directory = directory
        self.conf = directory / "udhcpd.conf"
        self.lease_file = directory / "udhcpd.leases"
        self.pid_file = directory / "udhcpd.pid"
        self.log_file = directory / "udhcpd.log"
        self._busybox = busybox or shutil.which("busybox") or "/bin/busybox"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self, lease: Lease, *, interface: str) -> None:
        conf = udhcpd_conf(
            lease, interface=interface, lease_file=self.lease_file, pid_file=self.pid_file
        )
        if self.pid is not None and _read(self.conf) == conf:
            return
        self.stop()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(conf)
        self.lease_file.touch()  # udhcpd refuses to start without it
        with open(self.log_file, "ab") as out:
            self._proc = subprocess.Popen(
                [self._busybox, "udhcpd", "-f", "-a", str(ARP_PROBE_MS), str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + _START_GRACE
        while self._proc.poll() is None and not _listening(self._proc.pid, _DHCP_PORT):
            if time.monotonic() >= deadline:
                break
            time.sleep(_START_POLL)
        if self._proc.poll() is not None:
            raise LauncherError(
                f"the guest's DHCP server (udhcpd) exited with {self._proc.returncode}: "
                f"{_read(self.log_file) or '(no output)'}"
            )
        log.info(
            "dhcp_server_started", pid=self._proc.pid, interface=interface, ip=str(lease.address)
        )

    def stop(self) -> None:
        """End our udhcpd, and one a killed launcher left behind; remove the files."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.info("dhcp_server_stopped", pid=proc.pid)
        self._end_stale()
        for path in (self.conf, self.lease_file, self.pid_file, self.log_file):
            path.unlink(missing_ok=True)

    def _end_stale(self) -> None:
        try:
            pid = int((_read(self.pid_file) or "").strip())
        except ValueError:
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return
        # Only a udhcpd serving our own configuration: a recycled pid is someone else's.
        if b"udhcpd" in cmdline and str(self.conf).encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            log.info("dhcp_server_stale_ended", pid=pid)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return None


def _listening(pid: int, port: int) -> bool:
    """Whether process `pid` has a UDP socket bound to `port` (in its own network namespace)."""
    try:
        inodes = {
            os.readlink(f"/proc/{pid}/fd/{fd}")[len("socket:[") : -1]
            for fd in os.listdir(f"/proc/{pid}/fd")
        }
        lines = Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]
    except OSError:  # gone meanwhile: the caller sees it exited
        return False
    for line in lines:
        fields = line.split()
        if int(fields[1].rpartition(":")[2], 16) == port and fields[9] in inodes:
            return True
    return False
