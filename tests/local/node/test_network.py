"""kvd.local.node.network: real bridges, network namespaces and veths; pods ping each other.

Every host-global name is unique per test run (bridge, and through it every netns and veth), and
every CIDR is one no route on the host overlaps, so tests running side by side never collide.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvd.local.node import network

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(os.geteuid() != 0, reason="pod networking needs root"),
]
# The tests that make real bridges, veths and network namespaces on the host, and run
# processes in them, are marked integration; the ones of configuration and resolv.conf are not.


def unique_bridge() -> str:
    return f"kt{uuid.uuid4().hex[:10]}"


def free_cidr() -> ipaddress.IPv4Network:
    """A /24 in 10.200.0.0-10.254.255.255 that no route on the host overlaps."""
    routes = json.loads(subprocess.run(["ip", "-j", "route"], capture_output=True, text=True,
                                       check=True).stdout)  # fmt: skip
    used = [ipaddress.ip_network(r["dst"], strict=False) for r in routes if r["dst"] != "default"]
    for _ in range(100):
        cidr = ipaddress.IPv4Network(f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
        if not any(cidr.overlaps(u) for u in used):
            return cidr
    raise AssertionError("no free /24 for a test pod network")


def links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def netns_list() -> str:
    return subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout


def ping(ip: object, *, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run(
        [*prefix, "busybox", "ping", "-c1", "-W2", str(ip)],
        capture_output=True,
        text=True,
        check=False,
    )


def assert_nothing_left(net: network.Network, pods: list[network.PodNetwork]) -> None:
    assert f"{net.config.bridge}_" not in netns_list()
    listed = links()
    for pod in pods:
        assert pod.host_veth not in listed
    assert net.attached() == []


@pytest.fixture
def config() -> network.NetworkConfig:
    return network.NetworkConfig(bridge=unique_bridge(), cidr=free_cidr())


@pytest.fixture
def net(config: network.NetworkConfig, tmp_path: Path) -> Iterator[network.Network]:
    n = network.Network(config, tmp_path / "state")
    try:
        yield n
    finally:
        for uid in n.attached():
            n.detach(uid)
        n.remove_bridge()
        assert config.bridge not in links()


@pytest.mark.integration
def test_two_pods_get_distinct_ips_and_reach_each_other_and_the_host(net: network.Network) -> None:
    a, b = net.attach(str(uuid.uuid4())), net.attach(str(uuid.uuid4()))
    assert a.ip != b.ip
    assert {a.ip, b.ip} <= set(net.config.cidr.hosts()) - {net.config.gateway}
    assert (a.gateway, a.prefix) == (net.config.gateway, net.config.cidr.prefixlen)
    for src, dst in ((a, b.ip), (b, a.ip), (a, a.gateway)):
        done = ping(dst, netns=src.netns)
        assert done.returncode == 0, f"{src.ip} -> {dst}: {done.stdout}{done.stderr}"
    for pod in (a, b):
        done = ping(pod.ip)
        assert done.returncode == 0, f"host -> {pod.ip}: {done.stdout}{done.stderr}"
    inside = subprocess.run(["ip", "-n", a.netns, "-o", "addr", "show", "dev", "eth0"],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert f"{a.ip}/{a.prefix}" in inside
    route = subprocess.run(["ip", "-n", a.netns, "route", "show", "default"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert f"via {a.gateway} dev eth0" in route


@pytest.mark.integration
def test_attach_is_idempotent_and_survives_a_new_network_object(
    net: network.Network, config: network.NetworkConfig, tmp_path: Path
) -> None:
    uid = str(uuid.uuid4())
    first = net.attach(uid)
    assert net.attach(uid) == first
    restarted = network.Network(config, tmp_path / "state")  # a restarted node
    assert restarted.attach(uid) == first
    assert restarted.attach(str(uuid.uuid4())).ip != first.ip  # no duplicate after a restart
    assert links().count(first.host_veth) == 1
    assert netns_list().count(first.netns) == 1
    assert ping(first.ip).returncode == 0


@pytest.mark.integration
def test_detach_and_remove_bridge_leave_nothing(net: network.Network, tmp_path: Path) -> None:
    pods = [net.attach(str(uuid.uuid4())) for _ in range(2)]
    assert net.attached() == sorted(p.uid for p in pods)
    assert all(p.resolv_conf.exists() for p in pods)
    for p in pods:
        net.detach(p.uid)
        net.detach(p.uid)  # idempotent
        assert not p.resolv_conf.exists()
    assert_nothing_left(net, pods)
    assert list((tmp_path / "state" / "ips").iterdir()) == []
    net.remove_bridge()
    net.remove_bridge()
    assert net.config.bridge not in links()


@pytest.mark.integration
def test_leftovers_of_a_crash_are_listed_and_cleaned(net: network.Network) -> None:
    # A netns the node made before dying, with no allocation recorded: attached() still finds it.
    uid = str(uuid.uuid4())
    netns = f"{net.config.bridge}_{uid}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    assert net.attached() == [uid]
    net.detach(uid)
    assert netns not in netns_list()
    assert net.attached() == []


@pytest.mark.integration
def test_a_released_ip_is_not_handed_out_again_at_once(net: network.Network) -> None:
    first = net.attach(str(uuid.uuid4()))
    net.detach(first.uid)
    assert net.attach(str(uuid.uuid4())).ip != first.ip


@pytest.mark.integration
def test_concurrent_attaches_from_two_objects_never_share_an_ip(
    config: network.NetworkConfig, tmp_path: Path
) -> None:
    nets = [network.Network(config, tmp_path / "state") for _ in range(2)]
    uids = [str(uuid.uuid4()) for _ in range(6)]
    got: dict[str, network.PodNetwork] = {}
    errors: list[BaseException] = []

    def attach(n: network.Network, mine: list[str]) -> None:
        try:
            for uid in mine:
                got[uid] = n.attach(uid)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attach, args=(n, uids[i::2])) for i, n in enumerate(nets)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        assert len({p.ip for p in got.values()}) == len(uids)
    finally:
        for uid in uids:
            nets[0].detach(uid)
        nets[0].remove_bridge()
    assert_nothing_left(nets[0], list(got.values()))


def test_resolv_conf_lists_the_configured_nameservers(tmp_path: Path) -> None:
    config = network.NetworkConfig(
        bridge=unique_bridge(), cidr=free_cidr(), nameservers=("192.0.2.53", "192.0.2.54")
    )
    net = network.Network(config, tmp_path / "state")
    try:
        pod = net.attach(str(uuid.uuid4()))
        assert pod.resolv_conf.read_text() == "nameserver 192.0.2.53\nnameserver 192.0.2.54\n"
    finally:
        for uid in net.attached():
            net.detach(uid)
        net.remove_bridge()


def test_host_resolv_conf_without_loopback_servers(tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example.org\n# x\n")
    assert network._parse_resolv(host) == (["192.0.2.1"], ["search example.org"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"bridge": "a" * 16}, "1-15 characters", id="bridge-too-long"),
        pytest.param({"bridge": "kvd_0"}, "1-15 characters", id="bridge-underscore"),
        pytest.param({"bridge": ""}, "1-15 characters", id="bridge-empty"),
        pytest.param({"cidr": ipaddress.IPv4Network("10.9.9.0/30")}, "too small", id="cidr-small"),
        pytest.param({"nameservers": ("dns.example",)}, "not an IP", id="nameserver"),
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(network.NetworkError, match=message):
        network.NetworkConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.integration
def test_a_bridge_name_taken_by_another_kind_of_link_is_refused(tmp_path: Path) -> None:
    name = unique_bridge()
    peer = unique_bridge()
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", peer], check=True)
    try:
        net = network.Network(network.NetworkConfig(bridge=name, cidr=free_cidr()), tmp_path)
        with pytest.raises(network.NetworkError, match="not a bridge"):
            net.ensure_bridge()
    finally:
        subprocess.run(["ip", "link", "del", name], check=True)


@pytest.mark.integration
def test_a_failing_ip_command_is_named_with_its_stderr(net: network.Network) -> None:
    net.ensure_bridge()
    with pytest.raises(network.NetworkError) as info:
        network._batch(["link set dev kvd-no-such-dev up"])
    assert "ip -batch -" in str(info.value)
    assert "kvd-no-such-dev" in str(info.value)


@pytest.mark.integration
def test_pods_networks_are_made_side_by_side(
    net: network.Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each attach holds its veth creation until every attach has reached it: attaches made one
    # at a time (a node-wide lock around the `ip` runs) break the barrier and fail.
    count = 4
    barrier = threading.Barrier(count, timeout=20)
    real_ip = network._ip

    def held_ip(*args: str, **kwargs: object) -> object:
        if args[:2] == ("link", "add") and "veth" in args:
            barrier.wait()
        return real_ip(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(network, "_ip", held_ip)
    uids = [str(uuid.uuid4()) for _ in range(count)]
    got: dict[str, network.PodNetwork] = {}
    errors: list[BaseException] = []

    def attach(uid: str) -> None:
        try:
            got[uid] = net.attach(uid)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attach, args=(uid,)) for uid in uids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert errors == [] and not barrier.broken
    assert len({p.ip for p in got.values()}) == count
    for uid in uids:
        net.detach(uid)
    assert_nothing_left(net, list(got.values()))
