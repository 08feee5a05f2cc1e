"""Structural OpenAPI v3 schemas for CRDs, rendered from the API dataclasses.

The rules are Kubernetes' "structural schema" ones: every node has a type (quantities are
int-or-string), objects list their properties so the API server prunes what kvd does not
know, and `x-kubernetes-preserve-unknown-fields` marks only pass-through Kubernetes types.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal, get_args, get_origin

from kvd.api import codec, fields
from kvd.api.quantity import PATTERN as QUANTITY_PATTERN
from kvd.api.quantity import Quantity

_PASS_THROUGH = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def schema_of(tp: Any) -> dict[str, Any]:
    """The schema of a type used in an API dataclass."""
    tp, _optional = codec.strip_optional(tp)
    origin = get_origin(tp)
    if tp is Quantity:
        return {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return object_schema(tp)
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer", "format": "int64"}
    if origin is Literal:
        return {"type": "string", "enum": list(get_args(tp))}
    if origin is tuple:
        return {"type": "array", "items": schema_of(get_args(tp)[0])}
    if origin is dict:
        value_type = get_args(tp)[1]
        if value_type is Any:
            return dict(_PASS_THROUGH)
        return {"type": "object", "additionalProperties": schema_of(value_type)}
    raise TypeError(f"no OpenAPI schema for {tp!r}")


def object_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        info = fields.info_of(f)
        name = fields.wire_name(f)
        prop = {"description": info.doc, **schema_of(hints[f.name])}
        empty_is_unset = codec.empties_are_unset(f, hints[f.name])
        if empty_is_unset and "enum" in prop and "" not in prop["enum"]:
            prop["enum"] = [*prop["enum"], ""]
        pattern = info.pattern
        if empty_is_unset and pattern is not None:
            pattern = f"^$|{pattern}"  # "" is unset, so the server must let it through
        for key, value in (
            ("pattern", pattern),
            ("minimum", info.minimum),
            ("maximum", info.maximum),
            ("maxLength", info.max_length),
            ("format", info.format),
        ):
            if value is not None:
                prop[key] = value
        properties[name] = prop
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def root_schema(cls: type) -> dict[str, Any]:
    """A kind's top-level schema: apiVersion, kind and metadata belong to the API server."""
    schema = object_schema(cls)
    props = schema["properties"]
    props["apiVersion"] = {"type": "string", "description": props["apiVersion"]["description"]}
    props["kind"] = {"type": "string", "description": props["kind"]["description"]}
    props["metadata"] = {"type": "object"}
    schema["required"] = [r for r in schema.get("required", []) if r not in ("apiVersion", "kind")]
    return schema
