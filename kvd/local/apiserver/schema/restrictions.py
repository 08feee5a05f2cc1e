"""The OpenAPI restrictions apiextensions puts on a CRD schema beyond being structural.

kube's ValidateCustomResourceDefinitionOpenAPISchema refuses what its validator cannot run or what
contradicts Kubernetes conventions: `$ref` and friends, `uniqueItems` (quadratic),
`additionalProperties` beside `properties`, defaults in metadata, malformed
`x-kubernetes-list-type`/`map-type` declarations. kvd also refuses `x-kubernetes-validations`:
it has no CEL evaluator, and a rule that is accepted but never enforced is a silent hole.

Before any of that, keywords of the wrong JSON type are reported as kube's decoder would reject
them, so the later checks can trust the shape of what they read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kvd.local.apiserver.schema.values import (
    forbidden,
    go_quote,
    invalid,
    is_number,
    not_supported,
    required,
)

CEL_UNSUPPORTED = "x-kubernetes-validations (CEL) is not supported by kvd's local API server"
META = ("apiVersion", "kind", "metadata")
_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_UNSUPPORTED = ("id", "additionalItems", "patternProperties", "definitions", "dependencies", "$ref")


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def type_of(schema: dict[str, Any]) -> str:
    declared = schema.get("type")
    return declared if isinstance(declared, str) else ""


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


_BOOLS = (
    *("nullable", "uniqueItems", "exclusiveMinimum", "exclusiveMaximum"),
    *("x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource"),
    "x-kubernetes-int-or-string",
)
_STRINGS = (
    *("type", "format", "description", "title", "pattern", "$ref", "id"),
    *("x-kubernetes-list-type", "x-kubernetes-map-type"),
)
_COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties")
_SHAPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    **{key: (_is_bool, "must be a boolean") for key in _BOOLS},
    **{key: (_is_str, "must be a string") for key in _STRINGS},
    **{key: (_is_count, "must be an integer") for key in _COUNTS},
    **{key: (is_number, "must be a number") for key in ("minimum", "maximum", "multipleOf")},
    "required": (_is_strings, "must be a list of strings"),
    "x-kubernetes-list-map-keys": (_is_strings, "must be a list of strings"),
    **{key: (_is_list, "must be a list") for key in ("enum", "x-kubernetes-validations")},
    **{key: (_is_list, "must be a list") for key in ("allOf", "anyOf", "oneOf")},
    **{key: (_is_dict, "must be an object") for key in ("properties", "patternProperties")},
    "definitions": (_is_dict, "must be an object"),
}


def shape_errors(schema: Any, path: str) -> list[str]:
    """Keywords of the wrong JSON type, which kube's decoder would refuse outright."""
    if not isinstance(schema, dict):
        return [invalid(path, schema, "must be an object")]
    errors = []
    for key, value in schema.items():
        field = f"{path}.{key}"
        shape = _SHAPES.get(key)
        if shape is not None and not shape[0](value):
            errors.append(invalid(field, value, shape[1]))
        elif key in ("allOf", "anyOf", "oneOf"):
            for i, sub in enumerate(value):
                errors += shape_errors(sub, f"{field}[{i}]")
        elif key in ("properties", "patternProperties", "definitions"):
            for name, sub in value.items():
                errors += shape_errors(sub, f"{field}[{name}]")
        elif (
            key == "not"
            or (key == "additionalProperties" and not isinstance(value, bool))
            or (key == "items" and not isinstance(value, list))
        ):
            errors += shape_errors(value, field)
    return errors


def restriction_errors(schema: dict[str, Any], path: str) -> list[str]:
    """All restriction errors of a CRD version's schema, in kube's traversal order."""
    return _node(schema, path, root=True, inside_meta=False, no_default="")


def _node(
    s: dict[str, Any], path: str, *, root: bool, inside_meta: bool, no_default: str
) -> list[str]:
    """One node and (depth first) its children. `no_default` says why a default is forbidden here,
    empty where defaults are allowed."""
    errors = _keywords(s, path, inside_meta=inside_meta, no_default=no_default)
    props, embedded = as_dict(s.get("properties")), s.get("x-kubernetes-embedded-resource") is True
    if "additionalProperties" in s:
        additional = s["additionalProperties"]
        if props and additional is not True:
            detail = "additionalProperties and properties are mutual exclusive"
            errors.append(forbidden(f"{path}.additionalProperties", detail))
        if isinstance(additional, dict):
            # Pruning cannot tell which map values a default in metadata would belong to.
            why = (
                "inside additionalProperties applying to object metadata"
                if inside_meta
                else no_default
            )
            sub_path = f"{path}.additionalProperties"
            errors += _node(
                additional, sub_path, root=False, inside_meta=inside_meta, no_default=why
            )
    for key, sub in props.items():
        in_meta = inside_meta or ((root or embedded) and key in META)
        why = f"in top-level {key}" if root and key in META else no_default
        sub_path = f"{path}.properties[{key}]"
        errors += _node(as_dict(sub), sub_path, root=False, inside_meta=in_meta, no_default=why)
    children = [(s.get("not"), f"{path}.not")]
    for junctor in ("allOf", "oneOf", "anyOf"):
        children += [
            (sub, f"{path}.{junctor}[{i}]") for i, sub in enumerate(as_list(s.get(junctor)))
        ]
    children.append((s.get("items"), f"{path}.items"))
    for child, child_path in children:
        if isinstance(child, dict):
            errors += _node(
                child, child_path, root=False, inside_meta=inside_meta, no_default=no_default
            )
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        field = f"{path}.x-kubernetes-preserve-unknown-fields"
        errors.append(invalid(field, False, "must be true or undefined"))
    errors += _map_and_list_types(s, path)
    if s.get("x-kubernetes-validations"):
        errors.append(forbidden(f"{path}.x-kubernetes-validations", CEL_UNSUPPORTED))
    return errors


def _keywords(s: dict[str, Any], path: str, *, inside_meta: bool, no_default: str) -> list[str]:
    """kube's specStandardValidatorV3: keywords and values its validator cannot run."""
    errors = []
    typ = type_of(s)
    if typ and typ not in _TYPES:
        errors.append(not_supported(f"{path}.type", typ, _TYPES))
    if s.get("default") is not None and no_default:
        errors.append(forbidden(f"{path}.default", f"must not be set {no_default}"))
    if s.get("uniqueItems") is True:
        detail = "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"
        errors.append(forbidden(f"{path}.uniqueItems", detail))
    for key in _UNSUPPORTED:
        if s.get(key) not in (None, "", {}):
            errors.append(forbidden(f"{path}.{key}", f"{key} is not supported"))
    if typ == "null":
        detail = "type cannot be set to null, use nullable as an alternative"
        errors.append(forbidden(f"{path}.type", detail))
    if isinstance(s.get("items"), list):
        detail = "items must be a schema object and not an array"
        errors.append(forbidden(f"{path}.items", detail))
    if inside_meta and s.get("x-kubernetes-embedded-resource") is True:
        detail = "must not be used inside of resource meta"
        errors.append(forbidden(f"{path}.x-kubernetes-embedded-resource", detail))
    return errors


def _map_and_list_types(s: dict[str, Any], path: str) -> list[str]:
    errors: list[str] = []
    typ, list_type = type_of(s), s.get("x-kubernetes-list-type")
    map_type = s.get("x-kubernetes-map-type")
    for ext, value, want in (("map-type", map_type, "object"), ("list-type", list_type, "array")):
        if value is not None and typ != want:
            detail, field = f"must be {want} if x-kubernetes-{ext} is specified", f"{path}.type"
            errors.append(invalid(field, typ, detail) if typ else required(field, detail))
    if map_type is not None and map_type not in ("atomic", "granular"):
        field = f"{path}.x-kubernetes-map-type"
        errors.append(not_supported(field, map_type, ("atomic", "granular")))
    item = s.get("items") if isinstance(s.get("items"), dict) else None
    if list_type == "set" and typ == "array" and item is not None:
        errors += _set_items(item, path)
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        field = f"{path}.x-kubernetes-list-type"
        errors.append(not_supported(field, list_type, ("atomic", "set", "map")))
    keys = as_list(s.get("x-kubernetes-list-map-keys"))
    if keys and list_type != "map":
        detail = "must be map if x-kubernetes-list-map-keys is non-empty"
        field = f"{path}.x-kubernetes-list-type"
        errors.append(invalid(field, list_type, detail) if list_type else required(field, detail))
    if list_type == "map":
        errors += _map_keys(item, keys, path)
    if list_type in ("set", "map") and item is not None and item.get("nullable") is True:
        detail = f"cannot be nullable when x-kubernetes-list-type is {list_type}"
        errors.append(forbidden(f"{path}.items.nullable", detail))
    if list_type == "map" and item is not None:
        errors += _map_key_properties(item, keys, path)
    return errors


def _set_items(item: dict[str, Any], path: str) -> list[str]:
    detail = "must be atomic as item of a list with x-kubernetes-list-type=set"
    item_list_type = item.get("x-kubernetes-list-type")
    if type_of(item) == "array" and item_list_type not in (None, "atomic"):
        return [invalid(f"{path}.items.x-kubernetes-list-type", item_list_type, detail)]
    if type_of(item) == "object" and item.get("x-kubernetes-map-type") != "atomic":
        # kube prints the item's list type here, not its map type.
        return [invalid(f"{path}.items.x-kubernetes-map-type", item_list_type, detail)]
    return []


def _map_keys(item: dict[str, Any] | None, keys: list[Any], path: str) -> list[str]:
    errors = []
    if not keys:
        detail = "must not be empty if x-kubernetes-list-type is map"
        errors.append(required(f"{path}.x-kubernetes-list-map-keys", detail))
    if item is None:
        return [
            *errors,
            required(f"{path}.items", "must have a schema if x-kubernetes-list-type is map"),
        ]
    if type_of(item) != "object":
        detail = "must be object if parent array's x-kubernetes-list-type is map"
        return [*errors, invalid(f"{path}.items.type", type_of(item), detail)]
    printed = "[]string{" + ", ".join(go_quote(str(k)) for k in keys) + "}"
    item_props = as_dict(item.get("properties"))
    seen: set[str] = set()
    for key in keys:
        key_path = f"{path}.items.properties[{key}]"
        if key not in item_props:
            detail = "entries must all be names of item properties"
            errors.append(
                invalid(f"{path}.x-kubernetes-list-map-keys", keys, detail, printed=printed)
            )
        elif type_of(as_dict(item_props[key])) in ("array", "object"):
            detail = "must be a scalar type if parent array's x-kubernetes-list-type is map"
            # kube prints the item's type here, not the key property's.
            errors.append(invalid(f"{key_path}.type", type_of(item), detail))
        if key in seen:
            detail = "must not contain duplicate entries"
            errors.append(
                invalid(f"{path}.x-kubernetes-list-map-keys", keys, detail, printed=printed)
            )
        seen.add(key)
    return errors


def _map_key_properties(item: dict[str, Any], keys: list[Any], path: str) -> list[str]:
    """kube's validateMapListKeysMapSet: every key is always there, and never null."""
    errors = []
    item_props, item_required = as_dict(item.get("properties")), as_list(item.get("required"))
    for key in keys:
        if key not in item_props:
            continue
        key_path, key_schema = f"{path}.items.properties[{key}]", as_dict(item_props[key])
        if key not in item_required and key_schema.get("default") is None:
            detail = "this property is in x-kubernetes-list-map-keys, "
            detail += "so it must have a default or be a required property"
            errors.append(required(f"{key_path}.default", detail))
        if key_schema.get("nullable") is True:
            detail = "this property is in x-kubernetes-list-map-keys, so it cannot be nullable"
            errors.append(forbidden(f"{key_path}.nullable", detail))
    return errors
