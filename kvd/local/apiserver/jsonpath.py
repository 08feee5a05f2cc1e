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

``format_cell`` turns what ``find`` returns into a table cell as the CRD table converter does.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Final


class JSONPathError(ValueError):
    """An expression that does not parse, or an evaluation that fails (client-go's wording)."""


# --- the tree ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class _Wildcard:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class _Recursive:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class _Slice:
    start: int | None
    end: int | None
    step: int | None
    single: bool  # [i]: the end is i+1, counted from the end of the list when i is negative


@dataclasses.dataclass(frozen=True, slots=True)
class _Union:
    branches: tuple[tuple[_Node, ...], ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Literal:
    value: str | int | float | bool


@dataclasses.dataclass(frozen=True, slots=True)
class _Filter:
    left: tuple[_Node, ...]
    operator: str  # "exists" or a comparison
    right: tuple[_Node, ...]


_Node = _Field | _Wildcard | _Recursive | _Slice | _Union | _Literal | _Filter


# --- parsing -----------------------------------------------------------------------------------

_TERMINATORS: Final = frozenset(" \t\r\n.,[]$@{}")
_SLICE: Final = re.compile(r"(-?[0-9]*)(:-?[0-9]*)?(:-?[0-9]*)?")
_DICT_KEY: Final = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_COMPARISON: Final = re.compile(r"([^!<>=]+)([!<>=~]+)(.+)", re.DOTALL)
_OPERATORS: Final = frozenset({"==", "!=", "<", ">", "<=", ">="})
_ESCAPES: Final = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t", "r": "\r", "/": "/"}


def _char(ch: str) -> str:
    # Go's %#U, which client-go uses to name a character it cannot parse.
    return f"U+{ord(ch):04X} '{ch}'"


class _Parser:
    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self.nodes: list[_Node] = []

    def parse(self) -> tuple[_Node, ...]:
        text = self._text
        while self._pos < len(text):
            ch = text[self._pos]
            if text.startswith("[?(", self._pos):
                self._filter()
            elif text.startswith("..", self._pos):
                self._recursive()
            elif ch in " @$":  # spaces, the current object and the root are no-ops here
                self._pos += 1
            elif ch == "[":
                self._array()
            elif ch in "'\"":
                self._quote(ch)
            elif ch == ".":
                self._pos += 1
                self._field()
            elif ch in "+-" or ch.isdigit():
                self._number()
            elif ch == "_" or ch.isalnum():
                self._identifier()
            elif ch in "\r\n":
                raise JSONPathError("unclosed action")
            elif ch in "{}":
                raise JSONPathError("only one {...} expression is supported")
            else:
                raise JSONPathError(f"unrecognized character in action: {_char(ch)}")
        return tuple(self.nodes)

    def _scan_word(self) -> str:
        start = self._pos
        while self._pos < len(self._text) and self._text[self._pos] not in _TERMINATORS:
            self._pos += 2 if self._text[self._pos] == "\\" else 1
        self._pos = min(self._pos, len(self._text))
        return self._text[start : self._pos]

    def _field(self) -> None:
        word = self._scan_word()
        self.nodes.append(_Wildcard() if word == "*" else _Field(word.replace("\\", "")))

    def _recursive(self) -> None:
        if self.nodes and isinstance(self.nodes[-1], _Recursive):
            raise JSONPathError("invalid multiple recursive descent")
        self._pos += 2
        self.nodes.append(_Recursive())
        if self._pos < len(self._text) and (
            self._text[self._pos] == "_" or self._text[self._pos].isalnum()
        ):
            self._field()

    def _number(self) -> None:
        start = self._pos
        if self._text[self._pos] in "+-":
            self._pos += 1
        while self._pos < len(self._text) and (
            self._text[self._pos] == "." or self._text[self._pos].isdigit()
        ):
            self._pos += 1
        literal = self._text[start : self._pos]
        try:
            self.nodes.append(_Literal(int(literal)))
        except ValueError:
            try:
                self.nodes.append(_Literal(float(literal)))
            except ValueError:
                raise JSONPathError(f"cannot parse number {literal}") from None

    def _identifier(self) -> None:
        word = self._scan_word()
        if word in ("true", "false"):
            self.nodes.append(_Literal(word == "true"))
        elif word in ("range", "end"):
            raise JSONPathError(f"{word!r} templates are not supported in a column path")
        else:
            raise JSONPathError(f"unrecognized identifier {word} (a field needs a leading '.')")

    def _quote(self, quote: str) -> None:
        start, self._pos = self._pos, self._pos + 1
        while True:
            if self._pos >= len(self._text) or self._text[self._pos] == "\n":
                raise JSONPathError("unterminated quoted string")
            ch = self._text[self._pos]
            self._pos += 1
            if ch == quote and self._text[self._pos - 2] != "\\":
                break
        self.nodes.append(_Literal(_unquote(self._text[start : self._pos])))

    def _array(self) -> None:
        end = self._text.find("]", self._pos)
        newline = self._text.find("\n", self._pos)
        if end < 0 or 0 <= newline < end:
            raise JSONPathError("unterminated array")
        inside, self._pos = self._text[self._pos + 1 : end], end + 1
        if inside == "*":
            inside = ":"
        if "," in inside:
            self.nodes.append(
                _Union(tuple(_Parser(f"[{part.strip(' ')}]").parse() for part in inside.split(",")))
            )
        elif key := _DICT_KEY.fullmatch(inside):
            self.nodes.append(_Field((key[1] if key[1] is not None else key[2]).replace("\\", "")))
        else:
            self.nodes.append(_slice(inside))

    def _filter(self) -> None:
        self._pos += 3
        start, opened, closed, quote = self._pos, False, False, ""
        while True:
            if self._pos >= len(self._text) or self._text[self._pos] == "\n":
                raise JSONPathError("unterminated filter")
            ch = self._text[self._pos]
            self._pos += 1
            if ch in "'\"":
                if not opened:
                    opened, quote = True, ch
                elif ch == quote and self._text[self._pos - 2] != "\\":
                    closed = True
            elif ch == ")" and opened == closed:
                break
        if self._text[self._pos : self._pos + 1] != "]":
            raise JSONPathError("unclosed array expect ]")
        inside, self._pos = self._text[start : self._pos - 1], self._pos + 1
        comparison = _COMPARISON.fullmatch(inside)
        if comparison is None:
            self.nodes.append(_Filter(_Parser(inside).parse(), "exists", ()))
            return
        left, operator, right = comparison.groups()
        if operator not in _OPERATORS:
            raise JSONPathError(f"unrecognized filter operator {operator}")
        self.nodes.append(_Filter(_Parser(left).parse(), operator, _Parser(right).parse()))


def _slice(inside: str) -> _Slice:
    match = _SLICE.fullmatch(inside)
    if match is None:
        raise JSONPathError(f"invalid array index {inside}")
    parts = [match[1], *((g[1:] if g else None) for g in (match[2], match[3]))]

    def number(text: str | None) -> int | None:
        if not text:
            return None
        try:
            return int(text)
        except ValueError:
            raise JSONPathError(f"array index {text} is not a number") from None

    start = number(parts[0])
    if match[2] is None:  # [i]: one element
        return _Slice(start, None, None, single=True)
    return _Slice(start, number(parts[1]), number(parts[2]), single=False)


def _unquote(literal: str) -> str:
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        escape = body[i + 1 : i + 2]
        if escape in _ESCAPES:
            out.append(_ESCAPES[escape])
            i += 2
        elif escape in ("x", "u", "U") and (
            digits := re.fullmatch(
                r"[0-9a-fA-F]+", body[i + 2 : i + 2 + {"x": 2, "u": 4, "U": 8}[escape]]
            )
        ):
            out.append(chr(int(digits[0], 16)))
            i += 2 + len(digits[0])
        else:
            raise JSONPathError(f"unquote string {literal} error invalid syntax")
    return "".join(out)


@dataclasses.dataclass(frozen=True, slots=True)
class JSONPath:
    """A compiled expression; ``find`` evaluates it against a decoded JSON object."""

    expression: str
    _nodes: tuple[_Node, ...]

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
    return JSONPath(expression, _Parser(inner).parse())


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


def _evaluate(nodes: Sequence[_Node], values: list[Any]) -> list[Any]:
    for node in nodes:
        values = _step(node, values)
    return values


def _step(node: _Node, values: list[Any]) -> list[Any]:
    match node:
        case _Field(name):
            return [v[name] for v in values if isinstance(v, dict) and name in v]
        case _Wildcard():
            return [child for v in values for child in _children(v)]
        case _Recursive():
            return [found for v in values for found in _containers(v)]
        case _Slice():
            return [item for v in values if v is not None for item in _index(node, v)]
        case _Union(branches):
            return [found for branch in branches for found in _evaluate(branch, values)]
        case _Literal(value):
            return [value] if isinstance(value, str) else [value for _ in values]
        case _Filter():
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


def _index(node: _Slice, value: Any) -> list[Any]:
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


def _filter(node: _Filter, value: Any) -> list[Any]:
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


# --- table cells -------------------------------------------------------------------------------

_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})"
)


def _go_float(value: float, *, for_json: bool = False) -> str:
    """A float64 as Go prints it: ``%v`` (shortest digits, exponent below 1e-4 and from 1e6) or
    ``encoding/json`` (exponent below 1e-6 and from 1e21, ``e-7`` rather than ``e-07``)."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    if not isinstance(exponent, int):  # pragma: no cover - finite values have int exponents
        raise AssertionError(exponent)
    mantissa = "".join(map(str, digits))
    point = exponent + len(mantissa) - 1  # the decimal exponent of the first digit
    prefix = "-" if sign else ""
    if for_json:
        exponential = abs(value) < 1e-6 or abs(value) >= 1e21
    else:
        exponential = point < -4 or point >= 6
    if exponential:
        fraction = f".{mantissa[1:]}" if len(mantissa) > 1 else ""
        width = 1 if for_json and point < 0 else 2
        return f"{prefix}{mantissa[0]}{fraction}e{'-' if point < 0 else '+'}{abs(point):0{width}d}"
    if point < 0:
        return f"{prefix}0.{'0' * (-point - 1)}{mantissa}"
    whole, fraction = mantissa[: point + 1].ljust(point + 1, "0"), mantissa[point + 1 :]
    return f"{prefix}{whole}.{fraction}" if fraction else f"{prefix}{whole}"


def _json_text(value: Any) -> str:
    # encoding/json: compact, keys sorted, <, > and & escaped as Go does for HTML safety.
    def encode(v: Any) -> str:
        if isinstance(v, dict):
            items = sorted(v.items())
            return "{" + ",".join(f"{encode(str(k))}:{encode(x)}" for k, x in items) + "}"
        if isinstance(v, list):
            return "[" + ",".join(encode(x) for x in v) + "]"
        if isinstance(v, float) and not isinstance(v, bool):
            return _go_float(v, for_json=True) if math.isfinite(v) else "null"
        text = json.dumps(v, ensure_ascii=False)
        for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
            text = text.replace(raw, escaped)
        return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")

    return encode(value)


def _text(value: Any) -> str:
    # client-go's PrintResults for one value: objects and lists as JSON, the rest as Go prints it.
    if isinstance(value, dict | list):
        return _json_text(value)
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    return str(value)


def format_cell(values: list[Any], column_type: str) -> Any:
    """The cell kube-apiserver's CRD table converter puts in a row for a column's ``find`` result.

    Only the first value counts (kube-apiserver takes ``results[0][0]``, so ``[*]`` shows the first
    element). No value is ``None`` (kubectl prints ``<none>``). ``string`` columns print the value
    (objects and lists as JSON); ``integer`` (floats truncated), ``number`` and ``boolean`` pass a
    value of that JSON type and give ``None`` for any other. ``date`` gives the RFC 3339 string
    back (``"<invalid>"`` when it does not parse, ``"<unknown>"`` when empty): kube-apiserver sends
    the age ("5m") there, which needs a clock, so the caller renders it from this string.
    """
    if not values:
        return None
    value = values[0]
    if column_type == "string":
        return _text(value)
    if value is None or isinstance(value, bool) != (column_type == "boolean"):
        return None
    if column_type == "boolean":
        return value
    if column_type in ("integer", "number") and isinstance(value, int | float):
        if not math.isfinite(value):
            return None
        return int(value) if column_type == "integer" else float(value)
    if column_type == "date" and isinstance(value, str):
        if not value:
            return "<unknown>"
        return value if _is_rfc3339(value) else "<invalid>"
    return None


def _is_rfc3339(text: str) -> bool:
    match = _RFC3339.fullmatch(text)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        datetime.datetime(year, month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError:
        return False
    offset = match[8]
    return offset == "Z" or (int(offset[1:3]) < 24 and int(offset[4:6]) < 60)
