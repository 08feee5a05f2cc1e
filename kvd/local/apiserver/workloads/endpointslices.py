"""The EndpointSlice controller, as kube-controller-manager's: a Service's selected pods.

For each Service with a selector (not ExternalName), the pods of its namespace it selects that
have an IP and have not finished become endpoints: the address, `nodeName`, a `targetRef` to the
pod and kube's conditions (`ready`: Ready and not terminating, or the Service publishes
not-ready addresses; `serving`: Ready; `terminating`: being deleted). Each Service port is
resolved per pod (a named `targetPort` looks up the container port of that name and protocol),
and pods that resolve to the same ports share a slice. Slices are named `<service>-<5 random>`,
owned by the Service, labelled `kubernetes.io/service-name` and managed-by
`endpointslice-controller.k8s.io`; a Service selecting nothing keeps one empty slice.

Slices this controller does not manage (a selectorless Service's, which their users write, as the
aggregation layer's APIService backends are) are never touched.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from kvd import logs
from kvd.local.apiserver import errors
from kvd.local.apiserver.deletion import Deleter
from kvd.local.apiserver.objects import Target
from kvd.local.apiserver.store import Event
from kvd.local.apiserver.workloads import ownership
from kvd.local.apiserver.workloads.loop import Key
from kvd.local.apiserver.workloads.replicasets import PODS
from kvd.local.apiserver.workloads.services import SERVICE_NAME_LABEL, SERVICES, SLICES

log = logs.get_logger(__name__)

Json = dict[str, Any]
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER = "endpointslice-controller.k8s.io"


def selects(svc: Json, labels: dict[str, str]) -> bool:
    selector = (svc.get("spec") or {}).get("selector") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def resolve_ports(svc: Json, pod: Json) -> tuple[tuple[str, int, str], ...]:
    """(name, port on the pod, protocol) of each Service port this pod serves."""
    out = []
    containers = (pod.get("spec") or {}).get("containers") or []
    for port in (svc.get("spec") or {}).get("ports") or ():
        protocol = port.get("protocol", "TCP")
        target = port.get("targetPort", port.get("port"))
        if isinstance(target, str):
            found = next(
                (
                    int(cp["containerPort"])
                    for c in containers
                    for cp in c.get("ports") or ()
                    if cp.get("name") == target and cp.get("protocol", "TCP") == protocol
                ),
                None,
            )
            if found is None:
                continue  # this pod does not serve that port
            target = found
        out.append((str(port.get("name") or ""), int(target), protocol))
    return tuple(sorted(out))


def endpoint(svc: Json, pod: Json) -> Json:
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    serving = ownership.ready(pod)
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    out: Json = {
        "addresses": [(pod.get("status") or {}).get("podIP")],
        "conditions": {
            "ready": publish or (serving and not terminating),
            "serving": publish or serving,
            "terminating": terminating,
        },
        "targetRef": {
            "kind": "Pod",
            "namespace": pod["metadata"]["namespace"],
            "name": pod["metadata"]["name"],
            "uid": pod["metadata"]["uid"],
        },
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        out["nodeName"] = node
    return out


class EndpointSliceController:
    name = "endpointslice"
    watched = frozenset({SERVICES, PODS, SLICES})

    def __init__(self, deleter: Deleter) -> None:
        self.deleter = deleter
        self.objects = deleter.objects
        self.store = deleter.store
        resource = deleter.registry.get("discovery.k8s.io", "endpointslices")
        assert resource is not None
        self.resource = resource

    def keys(self) -> Iterable[Key]:
        items, _ = self.store.list(SERVICES, None)
        return [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in items]

    def keys_for(self, event: Event) -> Iterable[Key]:
        if event.key == SERVICES:
            return [(event.namespace, event.name)]
        if event.key == SLICES:
            labels = ownership.labels_of(event.object)
            if labels.get(MANAGED_BY) == CONTROLLER and labels.get(SERVICE_NAME_LABEL):
                return [(event.namespace, labels[SERVICE_NAME_LABEL])]
            return []
        states = [event.object] + ([event.previous] if event.previous is not None else [])
        services, _ = self.store.list(SERVICES, event.namespace)
        return [
            (event.namespace, svc["metadata"]["name"])
            for svc in services
            if any(selects(svc, ownership.labels_of(pod)) for pod in states)
        ]

    def sync(self, key: Key) -> float | None:
        namespace, name = key
        svc = self.store.get(SERVICES, namespace, name)
        items, _ = self.store.list(SLICES, namespace)
        mine = [
            s
            for s in items
            if ownership.labels_of(s).get(MANAGED_BY) == CONTROLLER
            and ownership.labels_of(s).get(SERVICE_NAME_LABEL) == name
        ]
        spec = (svc or {}).get("spec") or {}
        if svc is None or not spec.get("selector") or spec.get("type") == "ExternalName":
            for s in mine:
                self._delete(s)
            return None
        pods, _ = self.store.list(PODS, namespace)
        groups: dict[tuple[tuple[str, int, str], ...], list[Json]] = {}
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            status = pod.get("status") or {}
            if not status.get("podIP") or status.get("phase") in ownership.TERMINAL:
                continue
            if not selects(svc, ownership.labels_of(pod)):
                continue
            groups.setdefault(resolve_ports(svc, pod), []).append(endpoint(svc, pod))
        if not groups:
            groups[()] = []  # kube's placeholder: a Service selecting nothing has one empty slice
        unused = list(mine)
        for ports, endpoints in groups.items():
            wanted_ports = (
                [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]
                if ports or endpoints
                else None
            )
            existing = next((s for s in unused if _ports_key(s) == ports), None)
            if existing is None and unused and len(groups) == 1:
                existing = unused[0]
            if existing is not None:
                unused.remove(existing)
            self._write(svc, existing, wanted_ports, endpoints)
        for s in unused:
            self._delete(s)
        return None

    def _write(
        self, svc: Json, existing: Json | None, ports: list[Json] | None, endpoints: list[Json]
    ) -> None:
        name = svc["metadata"]["name"]
        labels = {
            **{k: v for k, v in ownership.labels_of(svc).items() if k != SERVICE_NAME_LABEL},
            SERVICE_NAME_LABEL: name,
            MANAGED_BY: CONTROLLER,
        }
        body: Json = (
            copy.deepcopy(existing)
            if existing is not None
            else {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "generateName": f"{name}-",
                    "ownerReferences": [ownership.reference(svc, "v1", "Service")],
                },
                "addressType": "IPv4",
            }
        )
        body["metadata"]["labels"] = labels
        body["endpoints"] = endpoints
        if ports is None:
            body.pop("ports", None)
        else:
            body["ports"] = ports
        if existing is not None and body == existing:
            return
        namespace = svc["metadata"]["namespace"]
        if existing is None:
            t = Target(self.resource, "v1", namespace)
            self.objects.create(
                t, body, validation="Ignore", dry_run=False, manager=ownership.MANAGER
            )
        else:
            t = Target(self.resource, "v1", namespace, existing["metadata"]["name"])
            self.objects.update(
                t, body, validation="Ignore", dry_run=False, manager=ownership.MANAGER
            )

    def _delete(self, s: Json) -> None:
        t = Target(self.resource, "v1", s["metadata"]["namespace"], s["metadata"]["name"])
        try:
            self.deleter.delete(t, {}, dry_run=False)
        except errors.APIError as exc:
            if exc.code != 404:
                raise


def _ports_key(s: Json) -> tuple[tuple[str, int, str], ...]:
    return tuple(
        sorted(
            (str(p.get("name") or ""), int(p.get("port") or 0), str(p.get("protocol", "TCP")))
            for p in s.get("ports") or ()
        )
    )
