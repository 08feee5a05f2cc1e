from __future__ import annotations

import os
import shutil
import subprocess
import sys
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from kvd.launcher.errors import LauncherError
from kvd.launcher.network import dhcp
from kvd.launcher.network.resolvconf import DnsConfig

LEASE = dhcp.Lease(
    mac="02:00:0a:01:02:03",
    address=IPv4Interface("10.1.2.3/24"),
    gateway=IPv4Address("10.1.2.1"),
    dns=DnsConfig(nameservers=("10.96.0.10", "10.96.0.11"), search=("ns.svc.local", "svc.local")),
    mtu=1450,
)


def test_the_guest_is_offered_exactly_the_pod_ip_with_gateway_and_dns() -> None:
    conf = dhcp.udhcpd_conf(
        LEASE, interface="k6t-eth0", lease_file=Path("/r/leases"), pid_file=Path("/r/pid")
    )
    lines = conf.splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == [
        "start 10.1.2.3",
        "end 10.1.2.3",
        "interface k6t-eth0",
        "max_leases 1",
        "lease_file /r/leases",
        "pidfile /r/pid",
        "static_lease 02:00:0a:01:02:03 10.1.2.3",
        "option subnet 255.255.255.0",
        f"option lease {dhcp.LEASE_SECONDS}",
        "option mtu 1450",
        "option router 10.1.2.1",
        "option dns 10.96.0.10 10.96.0.11",
        "option domain ns.svc.local",
        "option search ns.svc.local svc.local",
    ]


def test_no_gateway_and_no_dns_means_no_such_options() -> None:
    bare = dhcp.Lease(
        mac=LEASE.mac, address=IPv4Interface("10.1.2.3/32"), gateway=None, dns=DnsConfig(), mtu=1500
    )
    conf = dhcp.udhcpd_conf(bare, interface="br", lease_file=Path("/l"), pid_file=Path("/p"))
    assert "option subnet 255.255.255.255" in conf
    for option in ("router", "dns", "domain", "search"):
        assert f"option {option} " not in conf


@pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox (busybox-static)")
def test_a_server_that_cannot_start_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    server = dhcp.DhcpServer(tmp_path / "dhcp")
    with pytest.raises(LauncherError, match="udhcpd"):
        server.start(LEASE, interface="kvd-no-such-if")  # udhcpd exits: no such interface
    assert server.pid is None
    server.stop()
    assert list((tmp_path / "dhcp").iterdir()) == []


def test_a_started_server_is_known_by_its_bound_port_not_by_a_wait() -> None:
    # what start() waits for: the child's own UDP socket on the port, seen in /proc
    program = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.bind(('127.0.0.1', 0))\n"
        "print(s.getsockname()[1], flush=True)\n"
        "sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        port = int(proc.stdout.readline())
        assert dhcp._listening(proc.pid, port)
        assert not dhcp._listening(proc.pid, port + 1 if port < 65535 else port - 1)
        assert not dhcp._listening(os.getpid(), port)  # another process's socket is not ours
    finally:
        proc.kill()
        proc.wait()
    assert not dhcp._listening(proc.pid, port)  # gone
