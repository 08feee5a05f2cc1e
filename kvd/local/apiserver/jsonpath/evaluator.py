"""Kubernetes' JSONPath, as CRD ``additionalPrinterColumns`` and ``kubectl -o jsonpath`` use it.

This is client-go's ``util/jsonpath`` (not Goessner's JSONPath): ``.a.b``, ``['key']``, ``[0]``,
``[-1]``, ``[0:2]``, ``[0:4:2]``, ``[*]``, ``.*``, ``[0,2]``, ``..name``, filters
``[?(@.type=='Ready')]`` / ``[?(@.x)]`` with ``== != < > <= >=``, ``@``/``$`` for the current
object, and the whole expression optionally wrapped in ``{...}`` (kube-apiserver wraps a column's
path in braces itself). Expressions are parsed once by ``compile`` and evaluated many times by
``find``.

Evaluation follows client-go with missing keys allowed, as printer columns and kubectl use it: a
missing field yields nothing, while an index out of range or a comparison of unlike types is an
error. Two deliberate differences: ``['a.b']`` reads the key ``a.b`` (client-go splits it into
``.a.b``; its escaped ``['a\\.b']`` works here too), and wildcards do not descend into strings
(client-go yields their bytes). ``range``/``end`` templates and text around the braces belong to
kubectl's printer, not to the server, and are refused.

The parser lives in ``parser``; this module evaluates its tree (``cells`` formats the results).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any, Final

from kvd.local.apiserver.jsonpath.parser import (
    Field,
    Filter,
    JSONPathError,
    Literal,
    Node,
    Recursive,
    Slice,
    Union,
    Wildcard,
    parse,
)

__all__ = ["JSONPath", "JSONPathError", "compile"]


@dataclasses.dataclass(frozen=True, slots=True)
class JSONPath:
    """A compiled expression; ``find`` evaluates it against a decoded JSON object."""

    expression: str
    _nodes: tuple[Node, ...]

    def find(self, obj: Any) -> list[Any]:
        """Every value the expression selects, in order (the object's own values, not copies).

        Raises ``JSONPathError`` when evaluation fails (an index out of range, a filter comparing
        unlike types), which the table converter shows as an empty cell.
        """
        return _evaluate(self._nodes, [obj])


def compile(expression: str) -> JSONPath:
    """Parse ``.spec.replicas``, ``{.status.conditions[?(@.type=="Ready")].status}`` and the like.

    An empty expression (or ``{}``, ``{@}``) selects the object itself.
    """
    inner = expression
    if inner.startswith("{") and inner.endswith("}"):
        inner = inner[1:-1]
    elif "{" in inner or "}" in inner:
        raise JSONPathError(f"unclosed action in {expression!r}")
    return JSONPath(expression, parse(inner))


# --- evaluation --------------------------------------------------------------------------------


def _go_type(value: Any) -> str:
    # reflect.Type names, as client-go's messages print them.
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "map[string]interface {}" if isinstance(value, dict) else type(value).__name__


def _evaluate(nodes: Sequence[Node], values: list[Any]) -> list[Any]:
    for node in nodes:
        values = _step(node, values)
    return values


def _step(node: Node, values: list[Any]) -> list[Any]:
    match node:
        case Field(name):
            return [v[name] for v in values if isinstance(v, dict) and name in v]
        case Wildcard():
            return [child for v in values for child in _children(v)]
        case Recursive():
            return [found for v in values for found in _containers(v)]
        case Slice():
            return [item for v in values if v is not None for item in _index(node, v)]
        case Union(branches):
            return [found for branch in branches for found in _evaluate(branch, values)]
        case Literal(value):
            return [value] if isinstance(value, str) else [value for _ in values]
        case Filter():
            return [item for v in values if v is not None for item in _filter(node, v)]
    raise AssertionError(node)  # pragma: no cover - the match is exhaustive


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    return list(value) if isinstance(value, list) else []


def _containers(value: Any) -> list[Any]:
    # Every non-empty object or list at or below value, parents first: what `..` then filters.
    children = _children(value)
    if not children:
        return []
    return [value, *(found for child in children for found in _containers(child))]


def _index(node: Slice, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise JSONPathError(f"{_go_type(value)} is not array or slice")
    length = len(value)
    start = node.start or 0
    start += length if start < 0 else 0
    if node.single:
        end = (node.start or 0) + 1
        end += length if end <= 0 else 0
    else:
        end = length if node.end is None else node.end + (length if node.end < 0 else 0)
    if end == start:
        return []
    if not 0 <= start < length:
        raise JSONPathError(f"array index out of bounds: index {start}, length {length}")
    if not 0 <= end <= length:
        raise JSONPathError(f"array index out of bounds: index {end - 1}, length {length}")
    if start > end:
        raise JSONPathError(f"starting index {start} is greater than ending index {end}")
    if node.step is not None and node.step <= 0:
        raise JSONPathError("step must be > 0")
    return value[start : end : node.step or 1]


def _filter(node: Filter, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise JSONPathError(f"{_brief(value)} is not array or slice and cannot be filtered")
    selected = []
    for item in value:
        if node.operator == "exists":
            try:
                if _evaluate(node.left, [item]):
                    selected.append(item)
            except JSONPathError:
                pass
            continue
        left, right = _evaluate(node.left, [item]), _evaluate(node.right, [item])
        if not left or not right:
            continue
        if len(left) > 1 or len(right) > 1:
            raise JSONPathError("can only compare one element at a time")
        if _compare(node.operator, left[0], right[0]):
            selected.append(item)
    return selected


def _kind(value: Any) -> str:
    # text/template's basicKind: only these compare at all.
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    raise JSONPathError("invalid type for comparison")


_ORDERINGS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": lambda a, b: bool(a < b),
    ">": lambda a, b: bool(a > b),
    "<=": lambda a, b: bool(a <= b),
    ">=": lambda a, b: bool(a >= b),
}


def _compare(operator: str, left: Any, right: Any) -> bool:
    """Compare as Go templates do: an int never equals a float, and booleans do not order."""
    kind = _kind(left)
    if kind != _kind(right):
        raise JSONPathError("incompatible types for comparison")
    if operator in ("==", "!="):
        return bool(left == right) == (operator == "==")
    if kind == "bool":
        raise JSONPathError("invalid type for comparison")
    return _ORDERINGS[operator](left, right)


def _brief(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
