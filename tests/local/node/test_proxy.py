"""The node's Service rules (pure): which cluster IP and port go to which endpoints."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

from kvd.local.node import proxy

Json = dict[str, Any]
CIDR = IPv4Network("10.88.0.0/16")


def _service(name: str, ip: str, *ports: Json) -> Json:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "ports": list(ports)},
    }


def _slice(service: str, ports: list[Json], *endpoints: tuple[str, bool]) -> Json:
    return {
        "metadata": {
            "name": f"{service}-abcde",
            "namespace": "default",
            "labels": {proxy.SERVICE_NAME_LABEL: service},
        },
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": [{"addresses": [a], "conditions": {"ready": r}} for a, r in endpoints],
    }


def _rules(script: str) -> list[str]:
    body = script.split("chain services {")[1].split("\n  }", maxsplit=1)[0]
    return [line.strip() for line in body.splitlines() if line.strip()]


def test_ready_endpoints_only_and_by_port_name() -> None:
    services = [
        _service("web", "10.43.0.10", {"name": "http", "port": 80, "protocol": "TCP"}),
        _service("one", "10.43.0.11", {"port": 53, "protocol": "UDP"}),
        _service("headless", "None", {"port": 80, "protocol": "TCP"}),
        _service("empty", "10.43.0.12", {"port": 80, "protocol": "TCP"}),
    ]
    slices = [
        _slice(
            "web",
            [{"name": "http", "port": 8080, "protocol": "TCP"}],
            ("10.88.0.3", True),
            ("10.88.0.2", True),
            ("10.88.0.4", False),
        ),
        _slice("one", [{"port": 5353, "protocol": "UDP"}], ("10.88.0.5", True)),
        _slice("headless", [{"port": 80, "protocol": "TCP"}], ("10.88.0.6", True)),
        _slice("empty", [{"port": 80, "protocol": "TCP"}]),
    ]
    assert _rules(proxy.ruleset("kvd0", CIDR, services, slices)) == [
        'ip daddr 10.43.0.11 udp dport 53 dnat ip to 10.88.0.5:5353 comment "default/one:53"',
        "ip daddr 10.43.0.10 tcp dport 80 dnat ip to numgen random mod 2 map "
        '{ 0 : 10.88.0.2 . 8080, 1 : 10.88.0.3 . 8080 } comment "default/web:http"',
    ]


def test_the_table_is_replaced_whole_and_masquerades_the_pod_network() -> None:
    script = proxy.ruleset("kvd0", CIDR, [], [])
    assert script.startswith("table ip kvd-kvd0 {}\ndelete table ip kvd-kvd0\n")
    assert "ip saddr 10.88.0.0/16 ct status dnat masquerade" in script
    assert _rules(script) == []
    # only this node's pods go through its Services: another local cluster on the host has its
    # own `kubernetes` Service at the same first address of the range
    prerouting = script.split("chain prerouting {")[1].split("\n  }", maxsplit=1)[0]
    assert 'iifname "kvd0" jump services' in prerouting
