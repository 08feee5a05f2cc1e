"""Discovery: how kubectl and client-go learn what the server serves.

kubectl resolves `vmi`, `po`, `no` through `/api`, `/apis` and the per-group-version resource
lists (verbs, short names, categories, namespaced). The OpenAPI documents it reads next (for
`explain`, client-side apply, and to learn that the server validates fields) are `openapi`'s.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kvd.local.apiserver.registry import Registry, ResourceDef
from kvd.version import kvd_version

KUBE_VERSION = {"major": "1", "minor": "37"}


def version() -> dict[str, Any]:
    return {
        **KUBE_VERSION,
        "gitVersion": "v1.37.0-kvd",
        "gitCommit": kvd_version(),
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "python",
        "compiler": "cpython",
        "platform": "linux/amd64",
        "emulationMajor": "1",
        "emulationMinor": "37",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "36",
    }


def api_versions(host: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [_group(g, vs) for g, vs in sorted(registry.group_versions().items()) if g != ""]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, name: str) -> dict[str, Any] | None:
    versions = registry.group_versions().get(name)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


# subresource → (kind, or "" for the resource's own; verbs), as kube-apiserver lists them
_POD_SUBRESOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "log": ("", ("get",)),
    "exec": ("PodExecOptions", ("create", "get")),
    "binding": ("Binding", ("create",)),
}

# subresource → (group, version, kind, verbs): those whose kind is of another API group
_OTHER_KINDS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "scale": ("autoscaling", "v1", "Scale", ("get", "patch", "update")),
    "token": ("authentication.k8s.io", "v1", "TokenRequest", ("create",)),
}


def _resource_entries(r: ResourceDef, version: str) -> list[dict[str, Any]]:
    v = r.version(version)
    assert v is not None
    main = {
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": list(r.verbs),
        "storageVersionHash": hashlib.sha256(f"{r.group}/{r.plural}".encode()).hexdigest()[:12],
    }
    if r.short_names:
        main["shortNames"] = list(r.short_names)
    if r.categories:
        main["categories"] = list(r.categories)
    out = [main]
    for sub in sorted(v.subresources):
        if sub in _OTHER_KINDS:
            group, kind_version, kind, verbs = _OTHER_KINDS[sub]
            out.append(
                {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "group": group,
                    "version": kind_version,
                    "kind": kind,
                    "verbs": list(verbs),
                }
            )
        elif sub in _POD_SUBRESOURCES:
            kind, verbs = _POD_SUBRESOURCES[sub]
            out.append(
                {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": kind or r.kind,
                    "verbs": list(verbs),
                }
            )
        else:
            out.append(
                {
                    "name": f"{r.plural}/{sub}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return out


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    resources = registry.in_group_version(group, version)
    if not resources:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [e for r in resources for e in _resource_entries(r, version)],
    }
