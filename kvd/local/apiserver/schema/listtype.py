"""kube's x-kubernetes-list-type pass: a `set` holds no duplicates, a `map` no duplicate keys.

It runs after schema validation, as kube's listtype package does, and names fields with
apimachinery's field.Path (map keys as `[key]`), so its paths differ slightly from the schema
pass's (`labels.key`) exactly where kube's do. Duplicates are reported at their second
occurrence, once per value, printed as Go prints them (`map[string]interface {}{"name":"a"}`).
"""

from __future__ import annotations

from typing import Any

from kvd.local.apiserver.schema.causes import DUPLICATE, INVALID, Cause
from kvd.local.apiserver.schema.values import go_value, identity


def _child(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def list_type_causes(obj: Any, schema: dict[str, Any]) -> list[Cause]:
    """The causes of the list-type pass over a whole object."""
    causes: list[Cause] = []
    if isinstance(obj, dict):
        _list_types_in_object("", schema, obj, causes)
    return causes


def _list_types_in(path: str, schema: Any, value: Any, causes: list[Cause]) -> None:
    if not isinstance(schema, dict):
        return
    if isinstance(value, list):
        _list_types_in_array(path, schema, value, causes)
    elif isinstance(value, dict):
        _list_types_in_object(path, schema, value, causes)


def _list_types_in_object(
    path: str, schema: Any, value: dict[str, Any], causes: list[Cause]
) -> None:
    if not isinstance(schema, dict):
        return
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        for key, item in value.items():
            _list_types_in(f"{path}[{key}]", additional, item, causes)
    properties = schema.get("properties")
    if isinstance(properties, dict):
        for key, item in value.items():
            if key in properties:
                _list_types_in(_child(path, key), properties[key], item, causes)


def _duplicates(keys: list[Any]) -> list[int]:
    # kube reports the second occurrence of each repeated value, once.
    seen: dict[Any, int] = {}
    repeated = []
    for index, key in enumerate(keys):
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 2:
            repeated.append(index)
    return repeated


def _list_types_in_array(
    path: str, schema: dict[str, Any], value: list[Any], causes: list[Cause]
) -> None:
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        for index in _duplicates([identity(v) for v in value]):
            causes.append(
                Cause(DUPLICATE, f"Duplicate value: {go_value(value[index])}", f"{path}[{index}]")
            )
    elif list_type == "map":
        _list_map(path, schema, value, causes)
    items = schema.get("items")
    for index, item in enumerate(value):
        _list_types_in(f"{path}[{index}]", items, item, causes)


def _list_map(path: str, schema: dict[str, Any], value: list[Any], causes: list[Cause]) -> None:
    for index, item in enumerate(value):
        if item is not None and not isinstance(item, dict):
            message = (
                f"Invalid value: {go_value(item)}: must be an object for an array of list-type map"
            )
            causes.append(Cause(INVALID, message, f"{path}[{index}]"))
            return
    names = schema.get("x-kubernetes-list-map-keys")
    names = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
    keys = [{n: item[n] for n in names if n in item} if item else {} for item in value]
    for index in _duplicates([identity(key) for key in keys]):
        message = f"Duplicate value: {go_value(keys[index])}"
        causes.append(Cause(DUPLICATE, message, f"{path}[{index}]"))
