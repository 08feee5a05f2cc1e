"""The guest behind KubeVirt's masquerade binding: a real launcher in a pod-like netns.

The pod's veth peer sits in a second netns playing the world outside the pod, which has no
route to the guest's network: a guest that reaches it does so through the pod's NAT. The guest
serves HTTP on ports 80 and 8080 (busybox httpd, from its user-data). One boot forwards only
port 80, as `ports` asks; another forwards every port, on a network of its own
(`vmNetworkCIDR`, set by a second DefineDomain that moves the gateway). Both check that the pod
keeps its eth0, the guest leases the masquerade address with the gateway and the pod's DNS,
reaches the outside, is reached from outside on the pod IP and from the pod on 127.0.0.1, that
GetDomain reports the pod IP, and that nothing of the binding outlives the launcher.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kvd.rpc.launcher.v1 import launcher_pb2
from tests.launcher.harness import RPC_TIMEOUT, Console, Launcher
from tests.launcher.podnet import NAMESERVER, PodNetns, ip, link, run_in

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture
def podnet() -> Iterator[PodNetns]:
    with PodNetns(outside=True) as netns:
        yield netns


@pytest.fixture
def launcher(tmp_path: Path, guest_dir: Path, podnet: PodNetns) -> Iterator[Launcher]:
    launcher = Launcher(tmp_path / "l", guest_dir, netns=podnet.name)
    try:
        yield launcher.start()
    finally:
        launcher.close()


def _user_data(outside: str) -> str:
    return (
        "#!/bin/sh\n"
        "for port in 80 8080; do\n"
        "  mkdir -p /www/$port && echo GUEST-$port >/www/$port/index.html\n"
        "  httpd -p $port -h /www/$port\n"
        "done\n"
        # the guest does serve 8080, so a port the pod does not forward is the pod's doing
        "wget -q -O - http://127.0.0.1:8080/ | sed 's/^/SELF /'\n"
        f"ping -c 1 -W 5 {outside} >/dev/null && echo PING-OK\n"
        "ip route show default | sed 's/^/ROUTE /'\n"
        "sed 's/^/RESOLV /' /etc/resolv.conf\n"
    )


def _manifest(
    launcher: Launcher, podnet: PodNetns, interface: dict[str, Any], cidr: str | None = None
) -> dict[str, Any]:
    manifest = launcher.manifest(
        user_data=_user_data(str(podnet.gateway_ip)), interfaces=[interface]
    )
    if cidr is not None:
        manifest["spec"]["networks"][0]["pod"]["vmNetworkCIDR"] = cidr
    return manifest


# Debian 12's static busybox wget crashes on the host (SIGSEGV), so the client is Python's.
_HTTP_GET = (
    "import sys, urllib.request\n"
    "print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())\n"
)


def _get(netns: str, url: str) -> tuple[bool, str]:
    done = run_in(netns, sys.executable, "-c", _HTTP_GET, url)
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def _fetch(netns: str, url: str, timeout: float = 30) -> str:
    """The body at `url`, fetched from `netns`, retried until the guest answers."""
    deadline = time.monotonic() + timeout
    while True:
        ok, out = _get(netns, url)
        if ok:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} from {netns}: no answer in {timeout}s: {out}")
        time.sleep(0.5)


def _refused(netns: str, url: str) -> str:
    ok, out = _get(netns, url)
    assert not ok, f"{url} from {netns} answered: {out}"
    return out


def _wired(podnet: PodNetns, gateway: str) -> None:
    """The pod kept eth0 as it was; the guest's tap is on a bridge holding its gateway."""
    eth0 = link("eth0", netns=podnet.name)
    assert eth0["address"] == podnet.pod_mac
    assert "master" not in eth0
    assert [a["local"] for a in eth0["addr_info"] if a["family"] == "inet"] == [str(podnet.pod.ip)]
    bridge = link("k6t-eth0", netns=podnet.name)
    assert bridge["address"] == "02:00:00:00:00:00"
    inet = [f"{a['local']}/{a['prefixlen']}" for a in bridge["addr_info"] if a["family"] == "inet"]
    assert inet == [gateway]
    assert link("tap0", netns=podnet.name).get("master") == "k6t-eth0"
    tap = json.loads(ip("-details", "-json", "link", "show", "tap0", netns=podnet.name))[0]
    owner = tap["linkinfo"]["info_data"]  # QEMU's unprivileged user's
    assert (owner["user"], owner["group"]) == ("libvirt-qemu", "libvirt-qemu"), owner
    forwarding = run_in(podnet.name, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip()
    assert forwarding == "1"
    assert "KUBEVIRT_PREINBOUND" in run_in(podnet.name, "nft", "list", "table", "ip", "nat").stdout


def _ends_clean(launcher: Launcher, podnet: PodNetns) -> None:
    launcher.stub.KillDomain(launcher_pb2.KillDomainRequest(), timeout=RPC_TIMEOUT)
    assert launcher.wait_exit(60) == 2, launcher.log()
    assert podnet.pids() == []  # no DHCP server (nor anything else) outlives the launcher
    assert run_in(podnet.name, "nft", "list", "tables").stdout.strip() == ""
    assert not (launcher.run_dir / "network").exists()


def test_masquerade_forwards_the_listed_ports(launcher: Launcher, podnet: PodNetns) -> None:
    pod_ip, outside = str(podnet.pod.ip), podnet.outside
    assert outside is not None
    interface = {"name": "default", "masquerade": {}, "ports": [{"name": "http", "port": 80}]}

    # a guest network with no room for a guest is refused before anything changes
    with pytest.raises(grpc.RpcError) as refused:
        launcher.define(_manifest(launcher, podnet, interface, cidr="10.0.2.0/31"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "vmNetworkCIDR" in (refused.value.details() or "")
    assert "k6t-eth0" not in run_in(podnet.name, "ip", "-brief", "link").stdout

    manifest = _manifest(launcher, podnet, interface)
    defined = launcher.define(manifest)
    assert "<target dev='tap0' managed='no'/>" in defined.domain_xml, defined.domain_xml
    again = launcher.define(manifest)  # wiring again changes nothing
    assert again.domain_xml == defined.domain_xml
    (interface_status,) = again.domain.interfaces
    mac = interface_status.mac_address
    assert interface_status.name == "default" and mac not in (podnet.pod_mac, "02:00:00:00:00:00")
    assert list(interface_status.ip_addresses) == [pod_ip]  # the pod IP, as KubeVirt reports
    _wired(podnet, gateway="10.0.2.1/24")

    # the pod's network is masqueraded now: the bridge binding cannot have it too
    with pytest.raises(grpc.RpcError) as switched:
        launcher.define(launcher.manifest(interfaces=[{"name": "default", "bridge": {}}]))
    assert switched.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "masquerade binding" in (switched.value.details() or "")
    assert link("eth0", netns=podnet.name)["address"] == podnet.pod_mac

    launcher.stub.LaunchDomain(launcher_pb2.LaunchDomainRequest(), timeout=RPC_TIMEOUT)
    console = Console(launcher.stub)
    console.wait_for("KVD-NET eth0 10.0.2.2/24")
    console.wait_for("SELF GUEST-8080")
    console.wait_for("PING-OK")  # the outside has no route to 10.0.2.0/24: this was NATed
    console.wait_for("ROUTE default via 10.0.2.1 dev eth0")
    console.wait_for(f"RESOLV nameserver {NAMESERVER}")
    console.wait_for("KVD-READY")

    assert _fetch(outside, f"http://{pod_ip}:80/") == "GUEST-80"
    assert "refused" in _refused(outside, f"http://{pod_ip}:8080/")  # not forwarded
    assert _fetch(podnet.name, "http://127.0.0.1:80/") == "GUEST-80"  # the pod's own localhost
    _refused(podnet.name, "http://127.0.0.1:8080/")

    domain = launcher.stub.GetDomain(launcher_pb2.GetDomainRequest(), timeout=RPC_TIMEOUT).domain
    assert [(i.name, i.mac_address, list(i.ip_addresses)) for i in domain.interfaces] == [
        ("default", mac, [pod_ip])
    ]
    _ends_clean(launcher, podnet)


def test_masquerade_forwards_every_port_on_its_own_network(
    launcher: Launcher, podnet: PodNetns
) -> None:
    pod_ip, outside = str(podnet.pod.ip), podnet.outside
    assert outside is not None
    mac = "02:4b:56:44:00:01"
    interface = {"name": "default", "masquerade": {}, "macAddress": mac.upper()}
    launcher.define(_manifest(launcher, podnet, interface))  # first on the default network
    _wired(podnet, gateway="10.0.2.1/24")
    defined = launcher.define(_manifest(launcher, podnet, interface, cidr="10.11.12.0/28"))
    (interface_status,) = defined.domain.interfaces
    assert (interface_status.mac_address, list(interface_status.ip_addresses)) == (mac, [pod_ip])
    _wired(podnet, gateway="10.11.12.1/28")

    launcher.stub.LaunchDomain(launcher_pb2.LaunchDomainRequest(), timeout=RPC_TIMEOUT)
    console = Console(launcher.stub)
    console.wait_for("KVD-NET eth0 10.11.12.2/28")
    console.wait_for("PING-OK")
    console.wait_for("ROUTE default via 10.11.12.1 dev eth0")
    console.wait_for("KVD-READY")

    assert _fetch(outside, f"http://{pod_ip}:8080/") == "GUEST-8080"
    assert _fetch(outside, f"http://{pod_ip}:80/") == "GUEST-80"
    assert _fetch(podnet.name, "http://127.0.0.1:8080/") == "GUEST-8080"
    _ends_clean(launcher, podnet)
