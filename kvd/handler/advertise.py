"""Where the controller finds a node's HandlerService: an annotation on the node.

The handler, once its HandlerService listens, annotates its Node with
`kvd.io/handler-address: HOST:PORT` (`keys.HANDLER_ADDRESS`); the controller, which caches
every node anyway, reads it when a console (or, later, another node call) is asked for. A
handler listening on a wildcard (`0.0.0.0:8186`) cannot know which of its addresses callers
reach, so it is told (`--advertise-address`, the node's IP on a real cluster, from the
downward API). Its TLS certificate must name that address. A clean stop removes the annotation;
after a crash the stale address refuses connections, which callers report as UNAVAILABLE,
until the restarted handler writes its new one.
"""

from __future__ import annotations

import ipaddress

from kvd.api import keys
from kvd.kube.client import Raw

WILDCARDS = ("", "0.0.0.0", "::", "[::]")


class AdvertiseError(ValueError):
    """No address to advertise; the message says what to give."""


def address(listen: str, port: int, advertise_host: str | None) -> str:
    """HOST:PORT for callers: `advertise_host`, else the host `listen` names, with `port`."""
    host = advertise_host or listen.rpartition(":")[0]
    if host in WILDCARDS:
        raise AdvertiseError(
            f"--listen {listen} names no address callers can dial: give --advertise-address "
            "(the node's IP, which the handler's certificate names)"
        )
    host = host.strip("[]")
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass  # a DNS name
    return f"{host}:{port}"


def publish(raw: Raw, node_name: str, where: str) -> None:
    raw.merge_patch(
        f"/api/v1/nodes/{node_name}", {"metadata": {"annotations": {keys.HANDLER_ADDRESS: where}}}
    )


def withdraw(raw: Raw, node_name: str) -> None:
    raw.merge_patch(
        f"/api/v1/nodes/{node_name}", {"metadata": {"annotations": {keys.HANDLER_ADDRESS: None}}}
    )
