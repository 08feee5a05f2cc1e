"""The pod's DNS settings, read from its /etc/resolv.conf, for the guest's DHCP lease.

KubeVirt's bridge binding hands the guest the pod's nameservers and search domains, so the
guest resolves names as the pod does. Only `nameserver` (IPv4: DHCP option 6 carries IPv4
addresses alone) and `search` (the last one wins, as in glibc) are read; comments, `options`
and malformed lines are ignored, as the resolver ignores them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

RESOLV_CONF = Path("/etc/resolv.conf")
# glibc's resolver uses at most three nameservers (MAXNS); more would never be asked.
MAX_NAMESERVERS = 3


@dataclass(frozen=True, kw_only=True)
class DnsConfig:
    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()


def parse(text: str) -> DnsConfig:
    nameservers: list[str] = []
    search: tuple[str, ...] = ()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].split()
        if not line:
            continue
        keyword, args = line[0], line[1:]
        if keyword == "nameserver" and len(args) >= 1:
            try:
                address = ipaddress.ip_address(args[0])
            except ValueError:
                continue
            if address.version == 4 and str(address) not in nameservers:
                nameservers.append(str(address))
        elif keyword in ("search", "domain"):
            # `domain` is the obsolete single-entry form; whichever comes last wins.
            search = tuple(args)
    return DnsConfig(nameservers=tuple(nameservers[:MAX_NAMESERVERS]), search=search)


def read(path: Path = RESOLV_CONF) -> DnsConfig:
    """The pod's DNS settings; none when it has no resolv.conf (a pod with dnsPolicy None)."""
    try:
        return parse(path.read_text(errors="replace"))
    except FileNotFoundError:
        return DnsConfig()
