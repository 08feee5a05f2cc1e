"""A pod's network namespace for a launcher under test, as a CNI plugin would make it.

`PodNetns()` makes a named netns with `eth0` (the pod IP, a random 10.x.y.2/24, a default
route via 10.x.y.1) whose veth peer stays on the host holding the gateway IP, plus a
resolv.conf that `ip netns exec` binds over /etc/resolv.conf. With `outside=True` the peer goes
into a second netns of the test's own instead, playing the world outside the pod: nothing of
the test is then on the host, and that world knows no route but to the pod's subnet. `close()`
removes all of it; deleting the netns also deletes the veth pair.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import uuid
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from types import TracebackType
from typing import Any

NAMESERVER = "10.96.0.10"
SEARCH = ("testns.svc.cluster.local", "svc.cluster.local", "cluster.local")


def ip(*args: str, netns: str | None = None) -> str:
    argv = ["ip"] + (["-n", netns] if netns else []) + list(args)
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def link(name: str, *, netns: str | None = None) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(ip("-json", "addr", "show", "dev", name, netns=netns))
    return found[0]


def _free_subnet() -> IPv4Network:
    """A random 10.x.y.0/24 that overlaps no route of the host (another test's, a local cluster's
    pod network): a more specific route would steal their traffic while this test runs."""
    routes = json.loads(ip("-json", "-4", "route", "show", "table", "all"))
    taken = [
        IPv4Network(r["dst"], strict=False)
        for r in routes
        if r.get("dst") not in (None, "default") and r["dst"][0].isdigit()
    ]
    for _ in range(100):
        subnet = IPv4Network(f"10.{random.randint(100, 250)}.{random.randint(1, 254)}.0/24")
        if not any(subnet.overlaps(t) for t in taken):
            return subnet
    raise AssertionError(f"no free 10.x.y.0/24 beside the host's routes {taken}")


def run_in(netns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`argv` in a named netns (`ip netns exec`), its output captured; never raises on exit."""
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class PodNetns:
    def __init__(self, *, outside: bool = False) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.name = f"kvd-test-{suffix}"
        self.outside = f"kvd-test-{suffix}-out" if outside else None
        self.host_end = f"kvdt{suffix}"  # at most 15 characters
        subnet = _free_subnet()
        self.gateway = IPv4Interface(f"{subnet[1]}/{subnet.prefixlen}")
        self.pod = IPv4Interface(f"{subnet[2]}/{subnet.prefixlen}")
        self.etc = Path("/etc/netns") / self.name
        self._made = False

    def __enter__(self) -> PodNetns:
        try:
            self._make()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _make(self) -> None:
        ip("netns", "add", self.name)
        self._made = True
        if self.outside is not None:
            ip("netns", "add", self.outside)
        # the peer is created inside its namespace (the outside's, or the host's): no moment
        # where an interface of the test sits in the wrong one
        where = ["netns", self.outside] if self.outside is not None else []
        peer = ["peer", "name", "eth0", "netns", self.name]
        ip("link", "add", self.host_end, *where, "type", "veth", *peer)
        ip("addr", "add", str(self.gateway), "dev", self.host_end, netns=self.outside)
        ip("link", "set", "dev", self.host_end, "up", netns=self.outside)
        if self.outside is not None:
            ip("link", "set", "dev", "lo", "up", netns=self.outside)
        ip("link", "set", "dev", "lo", "up", netns=self.name)
        ip("addr", "add", str(self.pod), "dev", "eth0", netns=self.name)
        ip("link", "set", "dev", "eth0", "up", netns=self.name)
        ip("route", "add", "default", "via", str(self.gateway.ip), netns=self.name)
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "resolv.conf").write_text(
            f"search {' '.join(SEARCH)}\nnameserver {NAMESERVER}\noptions ndots:5\n"
        )
        self.pod_mac = str(link("eth0", netns=self.name)["address"])

    @property
    def gateway_ip(self) -> IPv4Address:
        return self.gateway.ip

    def pids(self) -> list[int]:
        """Every process in the netns (`ip netns pids`)."""
        return [int(p) for p in ip("netns", "pids", self.name).split()]

    def close(self) -> None:
        if self._made:
            subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)
            if self.outside is not None:
                subprocess.run(
                    ["ip", "netns", "del", self.outside], check=False, capture_output=True
                )
            # the host end goes with its peer; delete it anyway should the netns delete fail
            subprocess.run(["ip", "link", "del", self.host_end], check=False, capture_output=True)
        shutil.rmtree(self.etc, ignore_errors=True)
        self._made = False
