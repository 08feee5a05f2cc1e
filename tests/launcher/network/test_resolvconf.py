from __future__ import annotations

from pathlib import Path

import pytest

from kvd.launcher.network import resolvconf
from kvd.launcher.network.resolvconf import DnsConfig


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "search ns.svc.cluster.local svc.cluster.local cluster.local\n"
            "nameserver 10.96.0.10\noptions ndots:5\n",
            DnsConfig(
                nameservers=("10.96.0.10",),
                search=("ns.svc.cluster.local", "svc.cluster.local", "cluster.local"),
            ),
            id="kubernetes-pod",
        ),
        pytest.param(
            "# generated\nnameserver 10.0.0.1 # primary\n; old comment\nnameserver 10.0.0.2\n",
            DnsConfig(nameservers=("10.0.0.1", "10.0.0.2")),
            id="comments",
        ),
        pytest.param(
            "nameserver fd00::1\nnameserver 10.0.0.1\nnameserver not-an-ip\nnameserver\n",
            DnsConfig(nameservers=("10.0.0.1",)),
            id="ipv4-only-and-malformed-skipped",
        ),
        pytest.param(
            "".join(f"nameserver 10.0.0.{i}\n" for i in range(1, 6)) + "nameserver 10.0.0.1\n",
            DnsConfig(nameservers=("10.0.0.1", "10.0.0.2", "10.0.0.3")),
            id="at-most-three-no-duplicates",
        ),
        pytest.param(
            "search a.example b.example\ndomain c.example\n",
            DnsConfig(search=("c.example",)),
            id="last-search-or-domain-wins",
        ),
        pytest.param("", DnsConfig(), id="empty"),
    ],
)
def test_parse(text: str, expected: DnsConfig) -> None:
    assert resolvconf.parse(text) == expected


def test_a_pod_without_resolv_conf_has_no_dns(tmp_path: Path) -> None:
    assert resolvconf.read(tmp_path / "missing") == DnsConfig()
