"""A CRD version's schema as kube-apiserver publishes it under /openapi/v3.

`kubectl explain` and client-side validation (`kubectl apply --validate=strict`) read these
documents. kube publishes only what a structural schema carries, documents apiVersion, kind and
metadata itself (TypeMeta's and ObjectMeta's words, not the CRD author's), and points metadata at
ObjectMeta's own schema; so does this.
"""

from __future__ import annotations

from typing import Any

from kvd.local.apiserver.schema.values import copy_json

OBJECT_META_REF = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_CONVENTIONS = "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
# kube publishes TypeMeta's and ObjectMeta's own documentation, not the CRD author's.
_TYPE_META = {
    "apiVersion": "APIVersion defines the versioned schema of this representation of an object. "
    "Servers should convert recognized schemas to the latest internal value, and may reject "
    f"unrecognized values. More info: {_CONVENTIONS}#resources",
    "kind": "Kind is a string value representing the REST resource this object represents. "
    "Servers may infer this from the endpoint the client submits requests to. Cannot be updated. "
    f"In CamelCase. More info: {_CONVENTIONS}#types-kinds",
}
_EMBEDDED_TYPE_META = {
    "apiVersion": "apiVersion defines the versioned schema of this representation of an object. "
    f"More info: {_CONVENTIONS}#resources",
    "kind": "kind is a string value representing the type of this object. In CamelCase. "
    f"More info: {_CONVENTIONS}#types-kinds",
}
_METADATA = {
    "description": f"Standard object's metadata. More info: {_CONVENTIONS}#metadata",
    "allOf": [{"$ref": OBJECT_META_REF}],
}
# What a structural schema carries; anything else (example, externalDocs, ...) is not published.
_PUBLISHED = frozenset(
    {
        *("type", "format", "description", "title", "default", "nullable", "enum", "required"),
        *("additionalProperties", "items", "properties", "allOf", "anyOf", "oneOf", "not"),
        *("pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
        *("minLength", "maxLength", "minItems", "maxItems", "uniqueItems"),
        *("minProperties", "maxProperties"),
        *(f"x-kubernetes-{ext}" for ext in ("preserve-unknown-fields", "embedded-resource")),
        *(f"x-kubernetes-{ext}" for ext in ("int-or-string", "list-type", "list-map-keys")),
        *(f"x-kubernetes-{ext}" for ext in ("map-type", "validations")),
    }
)
_FALSE_IS_ABSENT = frozenset(
    {"nullable", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource"}
    | {"x-kubernetes-int-or-string"}
)


def openapi_v3(
    schema: dict[str, Any], *, group_version_kind: tuple[str, str, str] | None = None
) -> dict[str, Any]:
    """The schema as kube publishes it in /openapi/v3 (kubectl explain reads it from there).

    Kept: everything structural, x-kubernetes-* extensions and `nullable`. Changed: keywords a
    structural schema has no place for are dropped; apiVersion/kind/metadata get TypeMeta's and
    ObjectMeta's documentation, metadata as a reference the document must define under
    components/schemas (also for embedded resources); `group_version_kind` adds kube's
    x-kubernetes-group-version-kind."""
    published: dict[str, Any] = _published(schema) if isinstance(schema, dict) else {}
    properties = published.setdefault("properties", {})
    for key, text in _TYPE_META.items():
        properties[key] = {"description": text, "type": "string"}
    properties["metadata"] = copy_json(_METADATA)
    if group_version_kind is not None:
        group, version, kind = group_version_kind
        published["x-kubernetes-group-version-kind"] = [
            {"group": group, "kind": kind, "version": version}
        ]
    return published


def _published(node: Any) -> Any:
    if not isinstance(node, dict):
        return copy_json(node)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _PUBLISHED or (key in _FALSE_IS_ABSENT and value is False):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _published(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _published(value)
        elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
            out[key] = [_published(sub) for sub in value]
        else:
            out[key] = copy_json(value)
    if out.get("x-kubernetes-embedded-resource") is True:
        properties = out.setdefault("properties", {})
        for key, text in _EMBEDDED_TYPE_META.items():
            properties[key] = {"description": text, "type": "string"}
        properties["metadata"] = copy_json(_METADATA)
        required = out.setdefault("required", [])
        required += [key for key in ("kind", "apiVersion") if key not in required]
    return out
