"""Table cells from JSONPath results, as kube-apiserver's CRD table converter makes them.

A printer column's value is what its expression finds, turned into the column's type; a string
column prints the value the way client-go's JSONPath printer does (objects and lists as Go's
``encoding/json`` writes them, floats as Go's ``%v``), which is what kubectl users see in a real
cluster's tables.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from decimal import Decimal
from typing import Any, Final

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
