"""The guest on the pod network (bridge binding): a real launcher in a pod-like netns.

One boot covers the path: the bridge binding wires eth0 onto a bridge with a tap, the guest
leases exactly the pod IP with gateway and DNS from DHCP, pings the gateway, answers the host's
ping, GetDomain reports the interface with the pod's MAC and IP, a repeated DefineDomain is
harmless, asking the bridged pod for masquerade is refused, and nothing is left running after
the launcher exits. (The masquerade binding: test_masquerade.py.)
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from kvd.rpc.launcher.v1 import launcher_pb2
from tests.launcher.harness import RPC_TIMEOUT, Console, Launcher
from tests.launcher.podnet import NAMESERVER, SEARCH, PodNetns, ip, link
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
BRIDGE = [{"name": "default", "bridge": {}}]


@pytest.fixture
def podnet() -> Iterator[PodNetns]:
    with PodNetns() as netns:
        yield netns


@pytest.fixture
def launcher(tmp_path: Path, guest_dir: Path, podnet: PodNetns) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path / "l", guest_dir, netns=podnet.name)
    try:
        yield launcher.start()
    finally:
        launcher.close()


def _user_data(gateway: str) -> str:
    return (
        "#!/bin/sh\n"
        f"ping -c 1 -W 5 {gateway} >/dev/null && echo PING-OK\n"
        "ip route show default | sed 's/^/ROUTE /'\n"
        "sed 's/^/RESOLV /' /etc/resolv.conf\n"
    )


def _host_pings(address: str, timeout: float) -> None:
    """Ping from the host's netns until it answers; the last output on failure."""
    last: list[str] = []

    def answers() -> bool:
        done = subprocess.run(
            ["busybox", "ping", "-c", "1", "-W", "1", address],
            check=False,
            capture_output=True,
            text=True,
        )
        last[:] = [done.stdout + done.stderr]
        return done.returncode == 0

    wait_for(f"{address} to answer a ping", answers, timeout=timeout, diagnose=lambda: last)


def test_bridge_binding_gives_the_guest_the_pod_ip(launcher: Launcher, podnet: PodNetns) -> None:
    pod_ip, gateway = str(podnet.pod.ip), str(podnet.gateway_ip)

    manifest = launcher.manifest(user_data=_user_data(gateway), interfaces=BRIDGE)
    ip("tuntap", "add", "dev", "tap0", "mode", "tap", netns=podnet.name)  # root's: made again
    defined = launcher.define(manifest)
    assert "<target dev='tap0' managed='no'/>" in defined.domain_xml, defined.domain_xml
    again = launcher.define(manifest)  # wiring again changes nothing
    assert again.domain_xml == defined.domain_xml
    (interface,) = again.domain.interfaces
    assert (interface.name, interface.mac_address) == ("default", podnet.pod_mac)
    assert list(interface.ip_addresses) == [pod_ip]

    # the pod's eth0 now is a bridge port with another MAC and no IP
    eth0 = link("eth0", netns=podnet.name)
    assert eth0["address"] != podnet.pod_mac
    assert eth0.get("master") == "k6t-eth0"
    assert not [a for a in eth0.get("addr_info", []) if a["family"] == "inet"]
    assert link("tap0", netns=podnet.name).get("master") == "k6t-eth0"
    # the tap is QEMU's unprivileged user's, which runs the guest
    tap = json.loads(ip("-details", "-json", "link", "show", "tap0", netns=podnet.name))[0]
    owner = tap["linkinfo"]["info_data"]
    assert (owner["user"], owner["group"]) == ("libvirt-qemu", "libvirt-qemu"), owner

    # the pod's IP is the guest's now: masquerade (NAT on that IP) cannot have the pod too
    masquerade = launcher.manifest(interfaces=[{"name": "default", "masquerade": {}}])
    with pytest.raises(grpc.RpcError) as refused:
        launcher.define(masquerade)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "bridge binding" in (refused.value.details() or "")
    assert link("eth0", netns=podnet.name).get("master") == "k6t-eth0"
    assert "10.0.2.1" not in str(link("k6t-eth0", netns=podnet.name)["addr_info"])

    launcher.stub.LaunchDomain(launcher_pb2.LaunchDomainRequest(), timeout=RPC_TIMEOUT)
    console = Console(launcher.stub)
    console.wait_for(f"KVD-NET eth0 {pod_ip}/24")
    console.wait_for("PING-OK")
    console.wait_for(f"ROUTE default via {gateway} dev eth0")
    console.wait_for(f"RESOLV nameserver {NAMESERVER}")
    console.wait_for(f"RESOLV search {SEARCH[0]}")
    console.wait_for("KVD-READY")
    _host_pings(pod_ip, timeout=20)

    domain = launcher.stub.GetDomain(launcher_pb2.GetDomainRequest(), timeout=RPC_TIMEOUT).domain
    (interface,) = domain.interfaces
    assert (interface.name, interface.mac_address) == ("default", podnet.pod_mac)
    assert list(interface.ip_addresses) == [pod_ip]
    # a DefineDomain while it runs is still harmless (one tap, one DHCP server)
    redefined = launcher.define(manifest).domain  # the live XML differs (ids, tap state)
    assert [(i.name, i.mac_address) for i in redefined.interfaces] == [("default", podnet.pod_mac)]
    dhcp = [p for p in podnet.pids() if b"udhcpd" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert len(dhcp) == 1, dhcp

    launcher.stub.KillDomain(launcher_pb2.KillDomainRequest(), timeout=RPC_TIMEOUT)
    assert launcher.wait_exit(60) == 2, launcher.log()
    assert podnet.pids() == []  # no DHCP server (nor anything else) outlives the launcher
    assert not (launcher.run_dir / "network").exists()


def test_a_launcher_without_a_pod_network_refuses_interfaces(
    tmp_path: Path, guest_dir: Path
) -> None:
    launcher = Launcher(tmp_path / "l", guest_dir)
    try:
        launcher.start()
        with pytest.raises(grpc.RpcError) as refused:
            launcher.define(launcher.manifest(interfaces=BRIDGE))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "--pod-network" in (refused.value.details() or "")
        assert "k6t-eth0" not in ip("-brief", "link")  # the host's network is untouched
    finally:
        launcher.close()
