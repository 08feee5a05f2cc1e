"""The OpenAPI documents the server publishes: one swagger 2.0 document, one 3.0 per group-version.

Built-in kinds get Kubernetes' own definitions (`definitions`), CRDs their structural schema as
kube publishes it (`schema.openapi_v3`; in 2.0 without what 2.0 cannot say). Each document holds
the paths of the resources it describes, with kube's operation ids, x-kubernetes-action and
x-kubernetes-group-version-kind, and the query parameters kubectl looks for (`fieldValidation`
on PATCH tells it the server validates fields itself), plus every schema those reference.
"""

from __future__ import annotations

from typing import Any

from kvd.local.apiserver import schema
from kvd.local.apiserver.openapi.definitions import (
    OBJECT_META,
    V2_PREFIX,
    V3_PREFIX,
    Definitions,
)
from kvd.local.apiserver.registry import Registry, ResourceDef

KUBE_VERSION = "v1.37.0"
_QUERY = {
    "dryRun": "When present, indicates that modifications should not be persisted.",
    "fieldManager": "fieldManager is a name associated with the actor or entity that is making "
    "these changes.",
    "fieldValidation": "fieldValidation instructs the server on how to handle objects in the "
    "request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
    "pretty": "If 'true', then the output is pretty printed.",
}
_WRITE_QUERY = ("dryRun", "fieldManager", "fieldValidation", "pretty")
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
# what kube accepts for a custom resource: no strategic merge patch, which needs Go struct tags.
# kubectl computes a strategic merge patch only for kinds whose PATCH accepts one.
_CR_PATCH_TYPES = tuple(t for t in _PATCH_TYPES if "strategic" not in t)
# 2.0 has no place for these; kube leaves them out of a CRD's schema there
_NOT_IN_V2 = frozenset({"nullable", "anyOf", "oneOf", "not", "x-kubernetes-validations"})


def schema_name(r: ResourceDef, version: str, defs: Definitions) -> str:
    """Where a resource's schema lives: kube's definition name for a built-in kind,
    `io.kubevirt.v1.VirtualMachine` (the group reversed) for a CRD's."""
    if r.crd_name is None:
        name = defs.name_of(r.group, version, r.kind)
        if name is not None:
            return name
    group = ".".join(reversed(r.group.split("."))) if r.group else "io.k8s.api.core"
    return f"{group}.{version}.{r.kind}"


def _crd_schema(r: ResourceDef, version: str) -> dict[str, Any] | None:
    v = r.version(version)
    if r.crd_name is None or v is None:
        return None
    return schema.openapi_v3(v.schema or {}, group_version_kind=(r.group, version, r.kind))


def _operations(r: ResourceDef, version: str, defs: Definitions) -> dict[str, dict[str, Any]]:
    """path → method → (action, operationId, schema name, has body, query params)."""
    prefix = f"/apis/{r.group}/{version}" if r.group else f"/api/{version}"
    scope = f"{prefix}/namespaces/{{namespace}}" if r.namespaced else prefix
    name = schema_name(r, version, defs)
    listed = f"{name}List" if r.crd_name is None and f"{name}List" in defs.schemas else name
    group_part = "".join(p.capitalize() for p in r.group.split(".")[0:1]) or "Core"
    tag = f"{group_part}{version.capitalize()}"
    where = "Namespaced" if r.namespaced else ""

    def op(action: str, verb: str, ref: str, *, body: bool = False) -> dict[str, Any]:
        query = _WRITE_QUERY if action in ("post", "put", "patch") else ("pretty",)
        return {
            "action": action,
            "operationId": f"{verb}{tag}{where}{r.kind}",
            "ref": ref,
            "body": body,
            "query": query,
            "patch_types": _CR_PATCH_TYPES if r.crd_name is not None else _PATCH_TYPES,
        }

    paths: dict[str, dict[str, Any]] = {}
    verbs = set(r.verbs)
    collection: dict[str, Any] = {}
    if "list" in verbs:
        collection["get"] = op("list", "list", listed)
    if "create" in verbs:
        collection["post"] = op("post", "create", name, body=True)
    if "deletecollection" in verbs:
        collection["delete"] = op("deletecollection", "deleteCollection", name)
    if collection:
        paths[f"{scope}/{r.plural}"] = collection
    item: dict[str, Any] = {}
    if "get" in verbs:
        item["get"] = op("get", "read", name)
    if "update" in verbs:
        item["put"] = op("put", "replace", name, body=True)
    if "patch" in verbs:
        item["patch"] = op("patch", "patch", name, body=True)
    if "delete" in verbs:
        item["delete"] = op("delete", "delete", name)
    if item:
        paths[f"{scope}/{r.plural}/{{name}}"] = item
    return paths


def _path_params(path: str, kind: str) -> list[tuple[str, str]]:
    out = []
    if "{name}" in path:
        out.append(("name", f"name of the {kind}"))
    if "{namespace}" in path:
        out.append(("namespace", "object name and auth scope, such as for teams and projects"))
    return out


# --- OpenAPI 3.0 -----------------------------------------------------------------------------


def v3_document(
    registry: Registry, group: str, version: str, defs: Definitions
) -> dict[str, Any] | None:
    """The /openapi/v3/<group-version> document, None when nothing is served there."""
    resources = registry.in_group_version(group, version)
    if not resources:
        return None
    paths: dict[str, Any] = {}
    builtin: set[str] = set()
    schemas: dict[str, Any] = {}
    for r in resources:
        gvk = {"group": r.group, "version": version, "kind": r.kind}
        for path, methods in _operations(r, version, defs).items():
            item: dict[str, Any] = {
                "parameters": [
                    {
                        "name": n,
                        "in": "path",
                        "description": d,
                        "required": True,
                        "schema": {"type": "string", "uniqueItems": True},
                    }
                    for n, d in _path_params(path, r.kind)
                ]
            }
            for method, o in methods.items():
                item[method] = _v3_operation(o, gvk)
            paths[path] = item
        crd = _crd_schema(r, version)
        if crd is not None:
            schemas[schema_name(r, version, defs)] = crd
            builtin.add(OBJECT_META)
        else:
            operations = _operations(r, version, defs).values()
            builtin.update(o["ref"] for methods in operations for o in methods.values())
    for name in defs.closure(builtin):
        schemas[name] = defs.v3(name)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION},
        "paths": paths,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def _v3_operation(o: dict[str, Any], gvk: dict[str, str]) -> dict[str, Any]:
    ref = {"$ref": V3_PREFIX + o["ref"]}
    out: dict[str, Any] = {
        "operationId": o["operationId"],
        "parameters": [
            {
                "name": q,
                "in": "query",
                "description": _QUERY[q],
                "schema": {"type": "string", "uniqueItems": True},
            }
            for q in o["query"]
        ],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": ref}}}
        },
        "x-kubernetes-action": o["action"],
        "x-kubernetes-group-version-kind": gvk,
    }
    if o["body"]:
        types = o["patch_types"] if o["action"] == "patch" else ("*/*",)
        schema_of = {"$ref": V3_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}
        out["requestBody"] = {
            "content": {t: {"schema": schema_of if o["action"] == "patch" else ref} for t in types},
            "required": True,
        }
    return out


# --- swagger 2.0 -----------------------------------------------------------------------------


def v2_document(registry: Registry, defs: Definitions) -> dict[str, Any]:
    """The /openapi/v2 document: every served resource, every schema it references."""
    paths: dict[str, Any] = {}
    builtin: set[str] = {"io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}
    definitions: dict[str, Any] = {}
    for r in sorted(registry.all(), key=lambda r: (r.group, r.plural)):
        for v in r.versions:
            if not v.served:
                continue
            gvk = {"group": r.group, "version": v.name, "kind": r.kind}
            for path, methods in _operations(r, v.name, defs).items():
                item: dict[str, Any] = {
                    "parameters": [
                        {
                            "name": n,
                            "in": "path",
                            "description": d,
                            "required": True,
                            "type": "string",
                            "uniqueItems": True,
                        }
                        for n, d in _path_params(path, r.kind)
                    ]
                }
                for method, o in methods.items():
                    item[method] = _v2_operation(o, gvk)
                    builtin.add(o["ref"])
                paths[path] = item
            crd = _crd_schema(r, v.name)
            if crd is not None:
                definitions[schema_name(r, v.name, defs)] = _v2_schema(crd)
                builtin.add(OBJECT_META)
    for name in defs.closure(builtin):
        definitions[name] = defs.v2(name)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION},
        "paths": dict(sorted(paths.items())),
        "definitions": dict(sorted(definitions.items())),
    }


def _v2_operation(o: dict[str, Any], gvk: dict[str, str]) -> dict[str, Any]:
    ref = {"$ref": V2_PREFIX + o["ref"]}
    parameters: list[dict[str, Any]] = []
    if o["body"]:
        body = (
            {"$ref": V2_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}
            if o["action"] == "patch"
            else ref
        )
        parameters.append({"name": "body", "in": "body", "required": True, "schema": body})
    parameters += [
        {
            "name": q,
            "in": "query",
            "description": _QUERY[q],
            "type": "string",
            "uniqueItems": True,
        }
        for q in o["query"]
    ]
    return {
        "consumes": list(o["patch_types"]) if o["action"] == "patch" else ["*/*"],
        "produces": ["application/json", "application/yaml"],
        "schemes": ["https"],
        "operationId": o["operationId"],
        "parameters": parameters,
        "responses": {"200": {"description": "OK", "schema": ref}},
        "x-kubernetes-action": o["action"],
        "x-kubernetes-group-version-kind": gvk,
    }


def _v2_schema(node: Any) -> Any:
    """A CRD's published 3.0 schema in 2.0 terms: references into #/definitions/, a reference
    wrapped in allOf unwrapped, and the keywords 2.0 lacks left out."""
    if isinstance(node, list):
        return [_v2_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _NOT_IN_V2:
            continue
        if key == "$ref" and isinstance(value, str):
            out[key] = V2_PREFIX + value.removeprefix(V3_PREFIX)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {field: _v2_schema(sub) for field, sub in value.items()}
        elif key == "allOf" and isinstance(value, list) and len(value) == 1:
            out.update(_v2_schema(value[0]))
        else:
            out[key] = _v2_schema(value)
    return out
