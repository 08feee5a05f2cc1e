"""Service cluster IPs and node ports, as kube-apiserver's Service REST storage allocates them.

The service CIDR is 10.43.0.0/16 (k3s's): it collides neither with the local node's pod network
(10.88.0.0/16 by default, 10.100-199.x.x in tests) nor with podman's default network. Its first
address is the `kubernetes` Service's, in `default`, which `publish_apiserver` makes (and
points, through a selectorless EndpointSlice, at the address the API server listens on).

What is allocated is read from the stored Services, never kept apart: an address is free again
the moment its Service is deleted, and a restart cannot leak one. Writes are serialised on the
server's loop, so two creates cannot take the same address. A requested address is refused, with
kube's messages, when it is not an IP, outside the range, or taken; `clusterIP: None` makes a
headless Service; the address never changes once set (an update that leaves it out keeps it).
NodePort and LoadBalancer Services get node ports from 30000-32767 the same way.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from typing import Any

from kvd import logs
from kvd.local.apiserver import errors
from kvd.local.apiserver.kinds import fields
from kvd.local.apiserver.objects import Objects, Target
from kvd.local.apiserver.registry import ResourceDef
from kvd.local.apiserver.store import ResourceKey, Store

log = logs.get_logger(__name__)

Json = dict[str, Any]
SERVICE_CIDR = ipaddress.IPv4Network("10.43.0.0/16")
NODE_PORTS = range(30000, 32768)
SERVICES = ResourceKey("", "services")
SLICES = ResourceKey("discovery.k8s.io", "endpointslices")
HEADLESS = "None"
KUBERNETES = "kubernetes"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class ServiceAllocation:
    """The admission link that gives Services their cluster IP and node ports."""

    def __init__(self, store: Store, cidr: ipaddress.IPv4Network = SERVICE_CIDR) -> None:
        self.store = store
        self.cidr = cidr

    def on_create(self, resource: ResourceDef, obj: Json) -> Sequence[str]:
        if (resource.group, resource.plural) != ("", "services"):
            return []
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return []
        name = str(obj["metadata"].get("name", ""))
        if spec.get("type") == "ExternalName":
            return []
        requested = spec.get("clusterIP") or next(iter(spec.get("clusterIPs") or []), "")
        ip = HEADLESS if requested == HEADLESS else self._allocate(str(requested or ""), name)
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            self._node_ports(spec, name, {})
        return []

    def on_update(self, resource: ResourceDef, old: Json, new: Json) -> Sequence[str]:
        if (resource.group, resource.plural) != ("", "services"):
            return []
        before, after = old.get("spec") or {}, new.get("spec")
        if not isinstance(after, dict):
            return []
        name = str(new["metadata"].get("name", ""))
        was_ip = before.get("type") != "ExternalName" and before.get("clusterIP")
        if after.get("type") == "ExternalName":
            for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                after.pop(key, None)
        elif was_ip:
            wanted = after.get("clusterIP") or next(iter(after.get("clusterIPs") or []), "")
            if wanted and wanted != before["clusterIP"]:
                errs = fields.Errors()
                errs.invalid("spec.clusterIPs[0]", _go_list([wanted]), "may not change once set")
                raise errors.invalid("", "Service", name, errs.causes)
            after["clusterIP"] = before["clusterIP"]
            after["clusterIPs"] = list(before.get("clusterIPs") or [before["clusterIP"]])
            for key in ("ipFamilies", "ipFamilyPolicy"):
                if key in before:
                    after.setdefault(key, before[key])
        else:  # from ExternalName to a type with an address
            self.on_create(resource, new)
            return []
        self._update_node_ports(before, after, name)
        return []

    def _update_node_ports(self, before: Json, after: Json, name: str) -> None:
        """Node ports are kept across updates (by port and protocol), dropped with the type."""
        if after.get("type") in ("NodePort", "LoadBalancer"):
            kept = {
                (p.get("port"), p.get("protocol")): p.get("nodePort")
                for p in before.get("ports") or ()
                if p.get("nodePort")
            }
            self._node_ports(after, name, kept)
        else:
            for port in after.get("ports") or ():
                if isinstance(port, dict):
                    port.pop("nodePort", None)

    # --- allocation --------------------------------------------------------------------------

    def _taken(self, skip: str = "") -> tuple[set[str], set[int]]:
        items, _ = self.store.list(SERVICES, None)
        ips: set[str] = set()
        ports: set[int] = set()
        for svc in items:
            if f"{svc['metadata']['namespace']}/{svc['metadata']['name']}" == skip:
                continue
            spec = svc.get("spec") or {}
            ips.update(spec.get("clusterIPs") or [spec.get("clusterIP") or ""])
            ports.update(int(p["nodePort"]) for p in spec.get("ports") or () if p.get("nodePort"))
        return ips, ports

    def _allocate(self, requested: str, name: str) -> str:
        taken, _ = self._taken()
        if requested:
            return self._claim(requested, taken, name)
        hosts = int(self.cidr.num_addresses) - 2
        first = int(self.cidr.network_address) + 1
        for _ in range(64):  # random as kube's allocator; scanned in order once mostly full
            ip = str(ipaddress.IPv4Address(first + 1 + random.randrange(hosts - 1)))
            if ip not in taken:
                return ip
        for offset in range(1, hosts + 1):
            ip = str(ipaddress.IPv4Address(first - 1 + offset))
            if ip not in taken:
                return ip
        raise errors.APIError(
            500, "InternalError", f"failed to allocate a serviceIP: range is full ({self.cidr})"
        )

    def _claim(self, requested: str, taken: set[str], name: str) -> str:
        errs = fields.Errors()
        try:
            ip = ipaddress.ip_address(requested)
        except ValueError:
            errs.invalid(
                "spec.clusterIPs[0]",
                requested,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            )
            raise errors.invalid("", "Service", name, errs.causes) from None
        usable = ip in self.cidr and ip not in (
            self.cidr.network_address,
            self.cidr.broadcast_address,
        )
        if not usable:
            errs.invalid(
                "spec.clusterIPs[0]",
                _go_list([requested]),
                f"failed to allocate IP {requested}: the provided IP ({requested}) is not in the "
                f"valid range. The range of valid IPs is {self.cidr}",
            )
        elif str(ip) in taken:
            errs.invalid(
                "spec.clusterIPs[0]",
                _go_list([requested]),
                f"failed to allocate IP {requested}: provided IP is already allocated",
            )
        if errs.causes:
            raise errors.invalid("", "Service", name, errs.causes)
        return str(ip)

    def _node_ports(self, spec: Json, name: str, kept: dict[Any, Any]) -> None:
        _, taken = self._taken()
        taken -= {int(v) for v in kept.values()}
        errs = fields.Errors()
        for i, port in enumerate(spec.get("ports") or ()):
            if not isinstance(port, dict):
                continue
            wanted = port.get("nodePort") or kept.get((port.get("port"), port.get("protocol")))
            if wanted:
                if int(wanted) not in NODE_PORTS:
                    errs.invalid(
                        f"spec.ports[{i}].nodePort",
                        wanted,
                        "provided port is not in the valid range. The range of valid ports is "
                        f"{NODE_PORTS.start}-{NODE_PORTS.stop - 1}",
                    )
                elif int(wanted) in taken:
                    errs.invalid(
                        f"spec.ports[{i}].nodePort", wanted, "provided port is already allocated"
                    )
                port["nodePort"] = int(wanted)
            else:
                free = [p for p in NODE_PORTS if p not in taken]
                if not free:
                    errs.invalid(f"spec.ports[{i}].nodePort", 0, "range is full")
                    continue
                port["nodePort"] = random.choice(free)
            taken.add(int(port["nodePort"]))
        if errs.causes:
            raise errors.invalid("", "Service", name, errs.causes)


class _go_list:  # noqa: N801 - reads as the function it stands for
    """A []string as kube's field errors print it (shown as is, not quoted)."""

    def __init__(self, values: list[str]) -> None:
        self.values = values

    def __str__(self) -> str:
        return "[]string{" + ", ".join(f'"{v}"' for v in self.values) + "}"


def publish_apiserver(objects: Objects, *, host: str, port: int) -> None:
    """The `kubernetes` Service in `default` (the first address of the range, port 443) and its
    EndpointSlice, pointing at where the API server listens, as kube-apiserver keeps them."""
    registry = objects.registry
    services, slices = (
        registry.get("", "services"),
        registry.get("discovery.k8s.io", "endpointslices"),
    )
    assert services is not None and slices is not None
    first = str(SERVICE_CIDR.network_address + 1)
    body: Json = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": KUBERNETES,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": first,
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
            "sessionAffinity": "None",
        },
    }
    _put(objects, Target(services, "v1", "default", KUBERNETES), body)
    slice_body: Json = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": KUBERNETES, "labels": {SERVICE_NAME_LABEL: KUBERNETES}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }
    _put(objects, Target(slices, "v1", "default", KUBERNETES), slice_body)


def _put(objects: Objects, t: Target, body: Json) -> None:
    current = objects.store.get(t.resource.key, t.namespace, t.name)
    try:
        if current is None:
            objects.create(
                Target(t.resource, t.version, t.namespace),
                body,
                validation="Strict",
                dry_run=False,
                manager="kube-apiserver",
            )
            return
        merged = {**current, **{k: v for k, v in body.items() if k != "metadata"}}
        merged["metadata"] = {**current["metadata"], "labels": body["metadata"]["labels"]}
        if t.resource.plural == "services":
            merged["spec"] = {
                **current.get("spec", {}),
                **body["spec"],
                "clusterIP": current["spec"].get("clusterIP"),
            }
        if merged != current:
            objects.update(t, merged, validation="Strict", dry_run=False, manager="kube-apiserver")
    except errors.APIError as exc:
        # the address is taken by a Service made by hand (an older store): say so, serve anyway
        log.warning("apiserver_service_not_published", name=t.name, error=str(exc))
