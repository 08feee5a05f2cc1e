"""Defaulting: filling in a custom resource from its schema's `default`s, as kube does it.

This follows apiextensions' algorithm step for step, quirks included, because what a client reads
back is what it produces. First nulls the schema neither allows (`nullable`) nor defaults are
dropped, then missing properties (and non-nullable nulls) are filled from `default`, recursing
only into what exists, so a child's default applies under an absent parent only if the parent
itself gets a default.

The input is never changed: the object is copied first, without recursion.
"""

from __future__ import annotations

from typing import Any

from kvd.local.apiserver.schema.values import copy_json


def _schema(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties")
    return properties if isinstance(properties, dict) else {}


def apply_defaults(obj: Any, schema: dict[str, Any]) -> Any:
    """A copy of `obj` with the schema's defaults applied, as kube does on every decode."""
    copied = copy_json(obj)
    _drop_nulls(copied, _schema(schema))
    _default(copied, _schema(schema))
    return copied


def _field_schema(key: str, schema: dict[str, Any] | None) -> dict[str, Any] | None:
    if schema is None:
        return None
    properties = _properties(schema)
    if key in properties:
        return _schema(properties[key])
    return _schema(schema.get("additionalProperties"))


def _nullable(schema: dict[str, Any]) -> bool:
    return schema.get("nullable") is True


def _drop_nulls(value: Any, schema: dict[str, Any] | None) -> None:
    """kube's PruneNonNullableNullsWithoutDefaults; a null with a default is left to `_default`."""
    if schema is None:
        return  # nothing below can be pruned without a schema
    if isinstance(value, dict):
        for key in list(value):
            sub = _field_schema(key, schema)
            if (
                value[key] is None
                and sub is not None
                and not _nullable(sub)
                and sub.get("default") is None
            ):
                del value[key]
            else:
                _drop_nulls(value[key], sub)
    elif isinstance(value, list):
        items = _schema(schema.get("items"))
        for item in value:
            _drop_nulls(item, items)


def _default(value: Any, schema: dict[str, Any] | None) -> None:
    if schema is None:
        return
    if isinstance(value, dict):
        properties = _properties(schema)
        for key, prop in properties.items():
            if not isinstance(prop, dict) or prop.get("default") is None:
                continue
            if key not in value or (value[key] is None and not _nullable(prop)):
                value[key] = copy_json(prop["default"])
        additional = _schema(schema.get("additionalProperties"))
        for key in value:
            if key in properties:
                _default(value[key], _schema(properties[key]))
            elif additional is not None:
                if value[key] is None and not _nullable(additional):
                    value[key] = copy_json(additional.get("default"))
                _default(value[key], additional)
    elif isinstance(value, list):
        items = _schema(schema.get("items"))
        for index, item in enumerate(value):
            if items is not None and item is None and not _nullable(items):
                value[index] = copy_json(items.get("default"))
            _default(value[index], items)
