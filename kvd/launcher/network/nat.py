"""The masquerade binding's NAT: nftables rules in the pod's network namespace, as KubeVirt's.

KubeVirt's virt-launcher (pkg/network/setup/netpod/masquerade) builds one `ip nat` table:

- `postrouting`: the guest's traffic leaving the pod is masqueraded to the pod's IP; traffic
  sent to the guest through the bridge jumps to `KUBEVIRT_POSTINBOUND`;
- `prerouting`: traffic coming in on the pod interface jumps to `KUBEVIRT_PREINBOUND`, which
  DNATs it to the guest: all of it, or only the listed ports;
- `output`: the pod's own traffic to localhost (127.0.0.1) on those ports is DNATed to the guest
  too, and `KUBEVIRT_POSTINBOUND` SNATs it to the gateway, so the guest's reply comes back
  through the bridge (the bridge needs `route_localnet` for 127.0.0.1 to leave through it);
- `input`: an empty NAT chain, as KubeVirt registers one.

KubeVirt's other port exceptions do not apply to kvd: Istio's reserved ports (only with an
Istio sidecar) and the legacy migration ports 49152-49153 (only for a launcher that migrates
over the pod network); kvd has neither. IPv4 only: KubeVirt adds the same table for IPv6 when
the pod has an IPv6 address; kvd does not yet (see `PodNetwork.prepare`).

`ruleset` is pure. `apply` loads it with `nft -f` as one transaction that first deletes the
table, so applying again — a repeated DefineDomain, a restarted launcher — replaces the rules
instead of appending copies. `remove` deletes the table; a pod's netns takes it along anyway.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from ipaddress import IPv4Address

from kvd.launcher.errors import LauncherError
from kvd.launcher.network.plan import ForwardedPort

TABLE = "nat"  # family ip, as KubeVirt names it
PREINBOUND = "KUBEVIRT_PREINBOUND"
POSTINBOUND = "KUBEVIRT_POSTINBOUND"
LOOPBACK = IPv4Address("127.0.0.1")
NFT_TIMEOUT = 10.0


@dataclass(frozen=True, kw_only=True)
class Masquerade:
    """What the rules need: the pod interface, the bridge, the gateway and guest, the ports."""

    pod_interface: str
    bridge: str
    gateway: IPv4Address
    guest: IPv4Address
    ports: tuple[ForwardedPort, ...] = ()  # empty: every port


def ruleset(m: Masquerade) -> str:
    """An `nft -f` script that (re)creates the table, replacing any earlier one atomically."""
    guest, gateway, lo = m.guest, m.gateway, LOOPBACK
    pre: list[str] = []
    post: list[str] = []
    output: list[str] = []
    if m.ports:
        for p in m.ports:
            pre.append(f"{p.protocol} dport {{ {p.port} }} counter dnat to {guest}")
            post.append(
                f"{p.protocol} dport {p.port} ip saddr {{ {lo} }} counter snat to {gateway}"
            )
            output.append(
                f"ip daddr {{ {lo} }} {p.protocol} dport {p.port} counter dnat to {guest}"
            )
    else:
        pre.append(f"counter dnat to {guest}")
        post.append(f"ip saddr {{ {lo} }} counter snat to {gateway}")
        output.append(f"ip daddr {{ {lo} }} counter dnat to {guest}")
    hooks = {
        "prerouting": (
            "prerouting priority -100",
            [f'iifname "{m.pod_interface}" counter jump {PREINBOUND}'],
        ),
        "input": ("input priority 100", []),
        "output": ("output priority -100", output),
        "postrouting": (
            "postrouting priority 100",
            [
                f"ip saddr {guest} counter masquerade",
                f'oifname "{m.bridge}" counter jump {POSTINBOUND}',
            ],
        ),
    }
    lines = [
        "# Written by the kvd launcher (kvd/launcher/network/nat.py): the masquerade binding.",
        f"table ip {TABLE}",  # so that the delete below never fails
        f"delete table ip {TABLE}",
        f"table ip {TABLE} {{",
    ]
    for name, (hook, rules) in hooks.items():
        lines += _chain(name, [f"type nat hook {hook}; policy accept;", *rules])
    lines += _chain(PREINBOUND, pre) + _chain(POSTINBOUND, post)
    return "\n".join([*lines, "}", ""])


def _chain(name: str, body: list[str]) -> list[str]:
    return [f"\tchain {name} {{", *(f"\t\t{line}" for line in body), "\t}"]


def apply(m: Masquerade, *, nft: str | None = None) -> None:
    """Load the rules into this process's network namespace (the pod's)."""
    _nft(["-f", "-"], script=ruleset(m), nft=nft)


def remove(*, nft: str | None = None) -> None:
    """Delete the table, if there is one."""
    _nft(["delete", "table", "ip", TABLE], nft=nft, missing_ok=True)


def table(*, nft: str | None = None) -> str | None:
    """`nft list table ip nat`, or None when there is none (for logs and tests)."""
    return _nft(["list", "table", "ip", TABLE], nft=nft, missing_ok=True)


def _nft(
    args: list[str], *, nft: str | None, script: str | None = None, missing_ok: bool = False
) -> str | None:
    # Debian's nftables installs nft in /usr/sbin, which a non-root PATH may lack.
    argv = [nft or shutil.which("nft") or "/usr/sbin/nft", *args]
    try:
        done = subprocess.run(
            argv, input=script, check=False, capture_output=True, text=True, timeout=NFT_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LauncherError(
            f"{' '.join(argv)}: {exc} (the masquerade binding needs nft: Debian's nftables)"
        ) from exc
    if done.returncode != 0:
        if missing_ok and "No such file or directory" in done.stderr:
            return None
        raise LauncherError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout
