"""Discovery and OpenAPI: how kubectl and client-go learn what the server serves.

kubectl resolves `vmi`, `po`, `no` through `/api`, `/apis` and the per-group-version resource
lists (verbs, short names, categories, namespaced). Before it sends an object with
`--validate=strict` (its default) it looks in `/openapi/v3` for the resource's PATCH operation
and its `fieldValidation` query parameter; finding it, kubectl leaves validation to the server
(which honours `fieldValidation=Strict`) instead of needing full client-side schemas.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kvd.local.apiserver import schema
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
        if sub == "scale":
            out.append(
                {
                    "name": f"{r.plural}/scale",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "group": "autoscaling",
                    "version": "v1",
                    "kind": "Scale",
                    "verbs": ["get", "patch", "update"],
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


# --- OpenAPI v3 ------------------------------------------------------------------------------

_QUERY = [
    {"name": n, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
    for n in ("dryRun", "fieldManager", "fieldValidation", "pretty")
]


def _paths(r: ResourceDef, version: str) -> dict[str, Any]:
    prefix = f"/apis/{r.group}/{version}" if r.group else f"/api/{version}"
    scope = f"{prefix}/namespaces/{{namespace}}" if r.namespaced else prefix
    gvk = {"group": r.group, "version": version, "kind": r.kind}
    ref = {"$ref": f"#/components/schemas/{_schema_name(r, version)}"}
    body = {"content": {"application/json": {"schema": ref}}}
    ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}

    def op(action: str) -> dict[str, Any]:
        return {
            "operationId": f"{action}{r.kind}",
            "parameters": list(_QUERY),
            "responses": ok,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        }

    item = {
        "get": op("get"),
        "put": {**op("put"), "requestBody": body},
        "patch": {
            **op("patch"),
            "requestBody": {
                "content": {
                    t: {"schema": {"type": "object"}}
                    for t in (
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/strategic-merge-patch+json",
                        "application/apply-patch+yaml",
                    )
                }
            },
        },
        "delete": op("delete"),
    }
    collection = {"get": op("list"), "post": {**op("post"), "requestBody": body}}
    return {f"{scope}/{r.plural}": collection, f"{scope}/{r.plural}/{{name}}": item}


def _schema_name(r: ResourceDef, version: str) -> str:
    group = ".".join(reversed(r.group.split("."))) if r.group else "io.k8s.api.core"
    return f"{group}.{version}.{r.kind}"


def openapi_v3_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    resources = registry.in_group_version(group, version)
    if not resources:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for r in resources:
        paths.update(_paths(r, version))
        v = r.version(version)
        body = (
            schema.openapi_v3(v.schema)
            if v is not None and v.schema
            else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        )
        schemas[_schema_name(r, version)] = {
            **body,
            "x-kubernetes-group-version-kind": [
                {"group": r.group, "version": version, "kind": r.kind}
            ],
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "kvd local API server", "version": "v1.37.0-kvd"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_v3_root(registry: Registry) -> dict[str, Any]:
    paths = {}
    for group, versions in registry.group_versions().items():
        for v in versions:
            key = f"apis/{group}/{v}" if group else f"api/{v}"
            doc = openapi_v3_document(registry, group, v)
            digest = (
                hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
            )
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
    return {"paths": paths}
