"""JSON values as kube-apiserver's CRD schema code sees, compares and prints them.

kube decodes a request body into Go values (a JSON number becomes int64 when it is a whole number
that fits, float64 otherwise), checks `pattern` with Go's RE2, and prints a bad value the way
apimachinery's `field.Error` does (Go's `%q`, `%v`, `%#v`). Doing the same here keeps kvd's
messages what users of a real cluster see, down to `1e+06` and `map[string]interface {}`.
"""

from __future__ import annotations

import decimal
import functools
import json
import math
import re
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# go-openapi's swag.IsFloat64AJSONInteger: beyond 2^53 a float64 no longer names one integer.
_MAX_JSON_FLOAT = float(2**53 - 1)
_EPSILON = 1e-9


def json_type(value: Any) -> str:
    """The OpenAPI type kube infers for a decoded value (Go's int64/float64 split included)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer" if INT64_MIN <= value <= INT64_MAX else "number"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return ""


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def as_float(value: Any) -> float:
    """A number as float64; integers too large for a float become infinities instead of raising."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def is_json_integer(value: float) -> bool:
    """Whether a float64 stands for an integer, with go-openapi's tolerance for rounding error."""
    if math.isnan(value) or math.isinf(value) or abs(value) > _MAX_JSON_FLOAT:
        return False
    nearest = float(round(value))
    if value == nearest:
        return True
    if value == 0 or nearest == 0:
        return False
    return abs(value - nearest) / (abs(value) + abs(nearest)) < _EPSILON


# Values nested deeper than this compare as distinct and print as "...": a pathological document
# must not exhaust the stack of a server that only wanted to quote it in an error.
_MAX_DEPTH = 100


def identity(value: Any, _depth: int = 0) -> Any:
    """A hashable stand-in for a value under Go equality: int64(1) and float64(1) differ."""
    if _depth > _MAX_DEPTH:
        return ("deep", id(value))
    if isinstance(value, dict):
        return ("o", tuple(sorted((str(k), identity(v, _depth + 1)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("a", tuple([identity(v, _depth + 1) for v in value]))
    kind = json_type(value)
    if kind == "number":
        return ("f", as_float(value))
    return (kind, value)


def json_equal(left: Any, right: Any, _depth: int = 0) -> bool:
    """Enum membership as kube decides it: numbers compare by value, booleans are not numbers."""
    if is_number(left) and is_number(right):
        return bool(left == right)
    if _depth > _MAX_DEPTH:
        return left is right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(
            json_equal(left[k], right[k], _depth + 1) for k in left
        )
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            json_equal(a, b, _depth + 1) for a, b in zip(left, right, strict=True)
        )
    return type(left) is type(right) and bool(left == right)


def go_float(value: float) -> str:
    """Go's `%v` for a float64: shortest digits, exponent form below 1e-4 and from 1e+06."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = decimal.Decimal(repr(value)).as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)
    digits = digits.rstrip("0")
    minus = "-" if sign else ""
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{minus}{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{minus}{digits}{'0' * (point - len(digits))}"
    return f"{minus}{digits[:point]}.{digits[point:]}"


_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t"}
_GO_ESCAPES |= {"\v": r"\v", "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """Go's strconv.Quote (`%q`): printable characters kept, the rest escaped."""
    out = []
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _go_number(value: int | float) -> str:
    if isinstance(value, int) and INT64_MIN <= value <= INT64_MAX:
        return str(value)
    return go_float(as_float(value))


def go_value(value: Any) -> str:
    """A bad value as `field.Error.ErrorBody` prints it: strings quoted, null as "null"."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return _go_number(value)
    if isinstance(value, str):
        return go_quote(value)
    return go_sharp_v(value)


def go_sharp_v(value: Any, _depth: int = 0) -> str:
    """Go's `%#v` for decoded JSON, which is how kube prints objects and lists in messages."""
    if value is None:
        return "interface {}(nil)"
    if _depth > _MAX_DEPTH and isinstance(value, dict | list | tuple):
        return "..."
    if isinstance(value, dict):
        entries = ", ".join(
            f"{go_quote(str(k))}:{go_sharp_v(value[k], _depth + 1)}" for k in sorted(value, key=str)
        )
        return "map[string]interface {}{" + entries + "}"
    if isinstance(value, list | tuple):
        return "[]interface {}{" + ", ".join([go_sharp_v(v, _depth + 1) for v in value]) + "}"
    if isinstance(value, str):
        return go_quote(value)
    return go_value(value)


def go_json(value: Any) -> str:
    """Go's json.Marshal, used where kube lists non-string enum values (whole floats lose `.0`)."""

    def plain(v: Any) -> Any:
        if isinstance(v, float) and is_json_integer(v):
            return int(v)
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    return json.dumps(plain(value), separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class PatternError(ValueError):
    """A `pattern` that Go's regexp package would refuse, worded as Go words it."""


_MULTILINE_FLAG = re.compile(r"\(\?[a-zA-Z]*m")
_LOOKAROUNDS = ("(?=", "(?!", "(?<=", "(?<!")


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """Compile a schema `pattern` with RE2's meaning in Python's `re`.

    kube matches patterns with Go's RE2 (unanchored search), not ECMA-262. The translation makes
    `$` mean end of text (Python's `$` also matches before a final newline), `\\z` Python's `\\Z`,
    `(?<name>` a named group, and `\\d`/`\\w`/`\\s` ASCII-only as in RE2; it refuses what RE2
    refuses (lookaround, backreferences). RE2 features Python lacks (`\\pL`, flags in mid-pattern)
    make the pattern fail to compile, so such a CRD is refused rather than validated differently.
    """
    out: list[str] = []
    multiline = bool(_MULTILINE_FLAG.search(pattern))
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt and nxt in "123456789" and not in_class:
                raise PatternError(f"error parsing regexp: invalid escape sequence: `\\{nxt}`")
            out.append(r"\Z" if nxt == "z" and not in_class else pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            start = i + 1 + (pattern[i + 1 : i + 2] == "^")
            if pattern[start : start + 1] == "]":  # a leading ] is a literal, in RE2 as in Python
                start += 1
            out.append(pattern[i:start])
            i = start
            continue
        if pattern.startswith(_LOOKAROUNDS, i):
            syntax = next(p for p in _LOOKAROUNDS if pattern.startswith(p, i))
            raise PatternError(
                f"error parsing regexp: invalid or unsupported Perl syntax: `{syntax}`"
            )
        if pattern.startswith("(?<", i):
            out.append("(?P<")
            i += 3
            continue
        out.append(r"\Z" if ch == "$" and not multiline else ch)
        i += 1
    try:
        return re.compile("".join(out), re.ASCII)
    except (re.error, RecursionError, OverflowError) as err:
        raise PatternError(f"error parsing regexp: {err}") from None


def copy_json(value: Any) -> Any:
    """A deep copy of decoded JSON, made without recursion: depth must not exhaust the stack."""
    if not isinstance(value, dict | list | tuple):
        return value
    root: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any]] = [(value, root)]
    while stack:
        source, target = stack.pop()
        pairs = source.items() if isinstance(source, dict) else enumerate(source)
        for key, item in pairs:
            copied = item
            if isinstance(item, dict | list | tuple):
                copied = {} if isinstance(item, dict) else []
                stack.append((item, copied))
            if isinstance(target, dict):
                target[key] = copied
            else:
                target.append(copied)
    return root


# apimachinery field.Error strings, `<field>: <ErrorBody>`, as a CRD's refusal lists them.


def required(field: str, detail: str = "") -> str:
    return f"{field}: Required value: {detail}" if detail else f"{field}: Required value"


def forbidden(field: str, detail: str) -> str:
    return f"{field}: Forbidden: {detail}"


def invalid(field: str, value: Any, detail: str, *, printed: str | None = None) -> str:
    """`printed` replaces Go's rendering of `value` where kube's value is a Go type (`[]string`)."""
    return f"{field}: Invalid value: {go_value(value) if printed is None else printed}: {detail}"


def not_supported(field: str, value: Any, supported: tuple[str, ...]) -> str:
    shown = ", ".join(go_quote(s) for s in supported)
    return f"{field}: Unsupported value: {go_value(value)}: supported values: {shown}"
