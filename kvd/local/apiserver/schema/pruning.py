"""Pruning: dropping the fields a custom resource's schema does not specify, as kube does it.

This follows apiextensions' algorithm step for step, quirks included, because what a client reads
back is what it produces. Every field the schema does not specify goes, except under
`x-kubernetes-preserve-unknown-fields: true`, and never apiVersion/kind/metadata of the object
itself or of an `x-kubernetes-embedded-resource`; a map (`additionalProperties`) keeps its keys,
and a boolean `additionalProperties` prunes its values as if they had no schema (so nested
objects empty out). The pruned paths are what `fieldValidation` reports.

The input is never changed: the object is copied first, without recursion, and schema-less
subtrees are walked without recursion too, so a deeply nested document cannot exhaust the stack.
"""

from __future__ import annotations

from typing import Any

from kvd.local.apiserver.schema.values import copy_json

_META = frozenset({"apiVersion", "kind", "metadata"})


def prune(obj: Any, schema: dict[str, Any]) -> tuple[Any, list[str]]:
    """A copy of `obj` without unknown fields, and their paths (`spec.foo`, `spec.disks[0].foo`).

    The paths read as kube's unknown-field warnings and strict-validation errors quote them,
    `unknown field "spec.foo"`, in document order."""
    return prune_value(obj, schema, root=True)


def prune_value(obj: Any, schema: Any, *, root: bool) -> tuple[Any, list[str]]:
    """`prune` for any node: `root` keeps apiVersion/kind/metadata as at a resource's top."""
    copied = copy_json(obj)
    node = schema if isinstance(schema, dict) else None
    if root:
        node = {**(node or {}), "x-kubernetes-embedded-resource": True}
    unknown: list[str] = []
    _prune(copied, node, "", unknown)
    return copied, unknown


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _schema(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _properties(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties")
    return properties if isinstance(properties, dict) else {}


def _prune(value: Any, schema: dict[str, Any] | None, path: str, unknown: list[str]) -> None:
    if schema is None:
        _strip(value, path, unknown)
        return
    if schema.get("x-kubernetes-preserve-unknown-fields") is True:
        _keep_unknown(value, schema, path, unknown)
        return
    if isinstance(value, dict):
        embedded = schema.get("x-kubernetes-embedded-resource") is True
        properties = _properties(schema)
        for key in list(value):
            if embedded and key in _META:
                continue
            if key in properties:
                _prune(value[key], _schema(properties[key]), _join(path, key), unknown)
            elif "additionalProperties" in schema:
                _prune(
                    value[key], _schema(schema["additionalProperties"]), _join(path, key), unknown
                )
            else:
                unknown.append(_join(path, key))
                del value[key]
    elif isinstance(value, list):
        items = _schema(schema.get("items"))
        for index, item in enumerate(value):
            _prune(item, items, f"{path}[{index}]", unknown)


def _keep_unknown(value: Any, schema: dict[str, Any] | None, path: str, unknown: list[str]) -> None:
    """kube's skipPrune: unknown fields stay, but fields the schema does specify are pruned."""
    if schema is None:
        return
    if isinstance(value, dict):
        embedded = schema.get("x-kubernetes-embedded-resource") is True
        properties = _properties(schema)
        for key, item in value.items():
            if embedded and key in _META:
                continue
            if key in properties:
                _prune(item, _schema(properties[key]), _join(path, key), unknown)
            elif "additionalProperties" in schema:
                _prune(item, _schema(schema["additionalProperties"]), _join(path, key), unknown)
    elif isinstance(value, list):
        items = _schema(schema.get("items"))
        for index, item in enumerate(value):
            _keep_unknown(item, items, f"{path}[{index}]", unknown)


def _strip(value: Any, path: str, unknown: list[str]) -> None:
    """Prune under no schema at all: every object empties, lists keep their (emptied) items."""
    stack = [(value, path)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, dict):
            unknown.extend(_join(at, key) for key in node)
            node.clear()
        elif isinstance(node, list):
            stack.extend((item, f"{at}[{i}]") for i, item in reversed(list(enumerate(node))))
