"""The aggregated groups in discovery, as kube-aggregator's `/apis` and `/apis/<group>`.

Every APIService that names a Service adds its group version to `/apis` (whether or not it is
available: kube lists it, and a client then finds the group version unreachable), after the
groups this server serves itself, ordered as kube orders them: by the highest
`groupPriorityMinimum` among the group's APIServices, then by name; within a group, by
`versionPriority` (highest first), then by version. `/apis/<group>` of such a group is answered
here from the same objects; `/apis/<group>/<version>` is the backend's (`proxy`).
"""

from __future__ import annotations

from typing import Any

from kvd.local.apiserver.aggregation import endpoints
from kvd.local.apiserver.registry import Registry
from kvd.local.apiserver.store import Store

GROUP = "apiregistration.k8s.io"


def _remote_groups(store: Store, registry: Registry) -> dict[str, list[dict[str, Any]]]:
    """group → its remote APIServices, best version first; groups served here are left out."""
    resource = registry.get(GROUP, "apiservices")
    assert resource is not None
    items, _ = store.list(resource.key, None)
    local = registry.group_versions()
    groups: dict[str, list[dict[str, Any]]] = {}
    for a in items:
        spec = a.get("spec") or {}
        group = str(spec.get("group") or "")
        if not group or endpoints.service_ref(a) is None or group in local:
            continue
        groups.setdefault(group, []).append(a)
    for members in groups.values():
        members.sort(key=lambda a: (-_priority(a, "versionPriority"), a["spec"].get("version", "")))
    return dict(
        sorted(
            groups.items(),
            key=lambda g: (-max(_priority(a, "groupPriorityMinimum") for a in g[1]), g[0]),
        )
    )


def _priority(apiservice: dict[str, Any], field: str) -> int:
    value = (apiservice.get("spec") or {}).get(field)
    return value if isinstance(value, int) else 0


def _group(name: str, members: list[dict[str, Any]]) -> dict[str, Any]:
    versions = [
        {"groupVersion": f"{name}/{a['spec']['version']}", "version": a["spec"]["version"]}
        for a in members
    ]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def merge_group_list(local: dict[str, Any], store: Store, registry: Registry) -> dict[str, Any]:
    """`/apis`: the server's own APIGroupList, then the aggregated groups."""
    remote = [_group(n, m) for n, m in _remote_groups(store, registry).items()]
    return {**local, "groups": [*local.get("groups", []), *remote]}


def api_group(name: str, store: Store, registry: Registry) -> dict[str, Any] | None:
    """`/apis/<group>` for an aggregated group; None when no APIService names one."""
    members = _remote_groups(store, registry).get(name)
    if not members:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, members)}
