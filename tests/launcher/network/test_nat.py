"""The masquerade binding's nftables rules, rendered as KubeVirt's virt-launcher lays them out."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from ipaddress import IPv4Address

import pytest

from kvd.launcher.network import nat
from kvd.launcher.network.plan import ForwardedPort

BASE = nat.Masquerade(
    pod_interface="eth0",
    bridge="k6t-eth0",
    gateway=IPv4Address("10.0.2.1"),
    guest=IPv4Address("10.0.2.2"),
)
LISTED = nat.Masquerade(
    pod_interface="eth0",
    bridge="k6t-eth0",
    gateway=IPv4Address("10.0.2.1"),
    guest=IPv4Address("10.0.2.2"),
    ports=(ForwardedPort(protocol="tcp", port=80), ForwardedPort(protocol="udp", port=53)),
)

# The chains every masquerade table has, whatever the ports.
HOOKS = {
    "prerouting": [
        "type nat hook prerouting priority -100; policy accept;",
        'iifname "eth0" counter jump KUBEVIRT_PREINBOUND',
    ],
    "input": ["type nat hook input priority 100; policy accept;"],
    "postrouting": [
        "type nat hook postrouting priority 100; policy accept;",
        "ip saddr 10.0.2.2 counter masquerade",
        'oifname "k6t-eth0" counter jump KUBEVIRT_POSTINBOUND',
    ],
}


def _chains(script: str) -> dict[str, list[str]]:
    """chain name → its lines, from the `table ip nat { … }` block of the script."""
    chains: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in script.splitlines():
        text = line.strip()
        if text.startswith("chain "):
            current = chains.setdefault(text.split()[1], [])
        elif text == "}":
            current = None
        elif current is not None:
            current.append(text)
    return chains


@pytest.mark.parametrize(
    ("masquerade", "expected"),
    [
        pytest.param(
            BASE,
            {
                "output": [
                    "type nat hook output priority -100; policy accept;",
                    "ip daddr { 127.0.0.1 } counter dnat to 10.0.2.2",
                ],
                "KUBEVIRT_PREINBOUND": ["counter dnat to 10.0.2.2"],
                "KUBEVIRT_POSTINBOUND": ["ip saddr { 127.0.0.1 } counter snat to 10.0.2.1"],
            },
            id="all-ports",
        ),
        pytest.param(
            LISTED,
            {
                "output": [
                    "type nat hook output priority -100; policy accept;",
                    "ip daddr { 127.0.0.1 } tcp dport 80 counter dnat to 10.0.2.2",
                    "ip daddr { 127.0.0.1 } udp dport 53 counter dnat to 10.0.2.2",
                ],
                "KUBEVIRT_PREINBOUND": [
                    "tcp dport { 80 } counter dnat to 10.0.2.2",
                    "udp dport { 53 } counter dnat to 10.0.2.2",
                ],
                "KUBEVIRT_POSTINBOUND": [
                    "tcp dport 80 ip saddr { 127.0.0.1 } counter snat to 10.0.2.1",
                    "udp dport 53 ip saddr { 127.0.0.1 } counter snat to 10.0.2.1",
                ],
            },
            id="listed-ports",
        ),
    ],
)
def test_the_rules_are_kubevirts(
    masquerade: nat.Masquerade, expected: dict[str, list[str]]
) -> None:
    assert _chains(nat.ruleset(masquerade)) == {**HOOKS, **expected}


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace of the test's own: nft never touches the host's rules."""
    name = f"kvd-test-nat-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True, timeout=10)


def _nft(netns: str, *args: str, script: str | None = None) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "nft", *args],
        input=script,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("nft") is None, reason="needs nft (Debian's nftables)")
@pytest.mark.parametrize("masquerade", [BASE, LISTED], ids=["all-ports", "listed-ports"])
def test_loading_again_replaces_the_rules(netns: str, masquerade: nat.Masquerade) -> None:
    script = nat.ruleset(masquerade)
    _nft(netns, "-f", "-", script=script)
    once = _nft(netns, "list", "ruleset")
    _nft(netns, "-f", "-", script=script)  # a repeated DefineDomain, a restarted launcher
    assert _nft(netns, "list", "ruleset") == once
    # what nft holds is what was rendered (nft prints `dstnat` for priority -100 and so on)
    assert _chains(once).keys() == _chains(script).keys()
    assert "dnat to 10.0.2.2" in once and "masquerade" in once
