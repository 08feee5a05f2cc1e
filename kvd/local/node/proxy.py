"""Cluster IPs reachable from pods and the host, as kube-proxy's nftables mode makes them.

One nftables table per node, `ip kvd-<bridge>`: a `services` chain, jumped to from the nat
`prerouting` hook for what comes in on this node's bridge (its pods: another local cluster on the
same host has its own `kubernetes` Service at the same address) and from the `output` hook (the
host), DNATs each Service port's cluster IP to one of its ready endpoints, picked at random
(`numgen random mod N`). From the host, two local clusters with a Service on the same cluster IP
and port are ambiguous (the first table wins); cluster IPs are random, as kube's, so only the
`kubernetes` Service's first address is certain to be shared, and the host reaches the API server
directly. Traffic from the pod network
that was DNATed is masqueraded on its way out, so a pod reaching a pod through a Service (both on
the bridge) gets its answer back through the host, which undoes the translation; forwarding is
turned on for the bridge alone (`net.ipv4.conf.<bridge>.forwarding`, and `route_localnet` for
the API server's loopback endpoint), never host-wide.

`ruleset` is pure: Services and EndpointSlices in, the nft script out. The script replaces the
table in one transaction (create, delete, define), so a rule set is never half applied.
`ServiceProxy` keeps it in step with the API server from two informers, writing only when the
script changes; `remove(bridge)` deletes the table (`kvd local down`).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterable
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from kvd import logs
from kvd.kube import client, informer

log = logs.get_logger(__name__)

Json = dict[str, Any]
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
RESYNC_SECONDS = 30.0
_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}


def table_name(bridge: str) -> str:
    return f"kvd-{bridge}"


def _endpoints(service: Json, port: Json, slices: Iterable[Json]) -> list[tuple[str, int]]:
    """(address, port) of the ready endpoints serving one Service port."""
    name = port.get("name") or ""
    protocol = port.get("protocol", "TCP")
    out = []
    for s in slices:
        if s.get("addressType", "IPv4") != "IPv4":
            continue
        number = next(
            (
                int(p["port"])
                for p in s.get("ports") or ()
                if (p.get("name") or "") == name
                and p.get("protocol", "TCP") == protocol
                and p.get("port")
            ),
            None,
        )
        if number is None:
            continue
        for e in s.get("endpoints") or ():
            if (e.get("conditions") or {}).get("ready") is False:
                continue
            out += [(str(a), number) for a in e.get("addresses") or ()]
    return sorted(set(out))


def ruleset(
    bridge: str, cidr: IPv4Network, services: Iterable[Json], slices: Iterable[Json]
) -> str:
    """The nft script that makes the node's table reflect these Services and slices."""
    by_service: dict[tuple[str, str], list[Json]] = {}
    for s in slices:
        labels = (s.get("metadata") or {}).get("labels") or {}
        if labels.get(SERVICE_NAME_LABEL):
            key = (s["metadata"].get("namespace", ""), labels[SERVICE_NAME_LABEL])
            by_service.setdefault(key, []).append(s)
    rules = []
    for svc in sorted(
        services, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
    ):
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or spec.get("type") == "ExternalName":
            continue
        key = (svc["metadata"].get("namespace", ""), svc["metadata"]["name"])
        for port in spec.get("ports") or ():
            protocol = _PROTOCOLS.get(port.get("protocol", "TCP"))
            if protocol is None or not port.get("port"):
                continue
            targets = _endpoints(svc, port, by_service.get(key, []))
            match = f"ip daddr {ip} {protocol} dport {int(port['port'])}"
            comment = f'comment "{key[0]}/{key[1]}:{port.get("name") or port["port"]}"'
            if len(targets) == 1:
                address, number = targets[0]
                rules.append(f"{match} dnat ip to {address}:{number} {comment}")
            elif targets:
                mapping = ", ".join(f"{i} : {a} . {n}" for i, (a, n) in enumerate(targets))
                rules.append(
                    f"{match} dnat ip to numgen random mod {len(targets)} map {{ {mapping} }} "
                    f"{comment}"
                )
    table = table_name(bridge)
    body = "\n".join(f"    {r}" for r in rules)
    return f"""table ip {table} {{}}
delete table ip {table}
table ip {table} {{
  chain services {{
{body}
  }}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    iifname "{bridge}" jump services
  }}
  chain output {{
    type nat hook output priority -100; policy accept;
    jump services
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {cidr} ct status dnat masquerade
  }}
}}
"""


def apply(script: str) -> None:
    done = subprocess.run(
        ["nft", "-f", "-"], input=script, capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"nft refused the service rules: {done.stderr.strip()}")


def remove(bridge: str) -> None:
    """Delete the node's table, if it is there."""
    subprocess.run(
        ["nft", "delete", "table", "ip", table_name(bridge)],
        capture_output=True,
        timeout=30,
        check=False,
    )


def enable_forwarding(bridge: str) -> None:
    """Packets that come in on the bridge may be routed (back onto it, DNATed to a pod), or
    DNATed to loopback: the `kubernetes` Service's endpoint is where the API server listens,
    127.0.0.1 (`route_localnet`, as kube-proxy sets it for localhost node ports)."""
    for setting in ("forwarding", "route_localnet"):
        Path(f"/proc/sys/net/ipv4/conf/{bridge}/{setting}").write_text("1\n")


class ServiceProxy:
    def __init__(self, api: Any, *, bridge: str, cidr: IPv4Network) -> None:
        self.bridge, self.cidr = bridge, cidr
        self.services = informer.Informer(
            api, client.core_v1(api).list_service_for_all_namespaces, name="services"
        )
        self.slices = informer.Informer(
            api,
            client.list_custom(api, "discovery.k8s.io", "v1", "endpointslices"),
            name="endpointslices",
        )
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._applied = ""
        self._thread = threading.Thread(target=self._run, name="service-proxy", daemon=True)

    def start(self, *, timeout: float) -> None:
        enable_forwarding(self.bridge)
        for inf in (self.services, self.slices):
            inf.add_handler(lambda _kind, _obj: self._changed.set())
            inf.start()
        for inf in (self.services, self.slices):
            if not inf.wait_synced(timeout):
                raise TimeoutError(f"{inf.name} informer did not sync within {timeout}s")
        self.sync()
        self._thread.start()

    def stop(self) -> None:
        """Stop following the API; the rules stay (a restarted node rewrites them)."""
        self._stop.set()
        self._changed.set()
        for inf in (self.services, self.slices):
            inf.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._changed.wait(RESYNC_SECONDS)
            self._changed.clear()
            if self._stop.is_set():
                return
            try:
                self.sync()
            except Exception as exc:
                log.warning("service_rules_failed", error=str(exc))
                self._stop.wait(1.0)  # then again, whatever changed meanwhile
                self._changed.set()

    def sync(self) -> None:
        script = ruleset(self.bridge, self.cidr, self.services.items(), self.slices.items())
        if script == self._applied:
            return
        apply(script)
        self._applied = script
        log.info("service_rules_applied", table=table_name(self.bridge), rules=script.count("dnat"))
