"""JSON ⇄ API dataclasses, strictly: every unknown or mistyped field becomes a `FieldError`.

`decode` never raises anything but `ValidationError`, whatever the input (a test feeds it
hypothesis-generated junk). Unknown fields are refused rather than dropped: a KubeVirt field kvd
does not implement must not be silently ignored, and where it is a KubeVirt feature the error
names it (`unsupported`); so is a declared field whose feature kvd does not have yet
(`unsupported.DECLARED_NOT_SUPPORTED`: a DataVolume). A field whose value is `null`, or `""`
for an optional string, is unset, as KubeVirt reads it (see `fields`). `encode` writes
camelCase names and leaves out what is unset (None, empty lists and maps), as Go's `omitempty`
does.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from datetime import datetime
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from kvd.api import fields, unsupported
from kvd.api.errors import FieldError, Path, ValidationError
from kvd.api.quantity import Quantity, QuantityError

T = TypeVar("T")

# A JSON object kvd passes through untouched (Kubernetes types such as `affinity`).
JSONObject = dict[str, Any]


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@functools.cache
def _fields(cls: type) -> tuple[tuple[dataclasses.Field[Any], str, Any], ...]:
    hints = _hints(cls)
    return tuple((f, fields.wire_name(f), hints[f.name]) for f in dataclasses.fields(cls))


def describe(value: object) -> str:
    """The JSON type name of a value, for error messages."""
    match value:
        case None:
            return "null"
        case bool():
            return "boolean"
        case int():
            return "integer"
        case float():
            return "number"
        case str():
            return "string"
        case list() | tuple():
            return "array"
        case dict():
            return "object"
    return type(value).__name__


def strip_optional(tp: Any) -> tuple[Any, bool]:
    """`X | None` → (X, True); anything else → (tp, False)."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def decode(cls: type[T], data: object, path: Path | None = None) -> T:
    """Parse `data` into `cls`, raising `ValidationError` with every problem found."""
    errors: list[FieldError] = []
    result = _decode(cls, data, path or Path(), errors)
    if errors:
        raise ValidationError(errors)
    return typing.cast(T, result)


def _decode(tp: Any, value: object, path: Path, errors: list[FieldError]) -> Any:  # noqa: PLR0912
    tp, optional = strip_optional(tp)
    if value is None:
        if not optional:
            errors.append(path.error("must not be null"))
        return None
    origin = get_origin(tp)
    if tp is Quantity:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            errors.append(
                path.error(f"must be a quantity (string or number), got {describe(value)}")
            )
            return None
        try:
            return Quantity.parse(value)
        except QuantityError as exc:
            errors.append(path.error(str(exc)))
            return None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _decode_object(tp, value, path, errors)
    if tp is bool:
        if not isinstance(value, bool):
            errors.append(path.error(f"must be a boolean, got {describe(value)}"))
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(path.error(f"must be an integer, got {describe(value)}"))
        return value
    if tp is str:
        if not isinstance(value, str):
            errors.append(path.error(f"must be a string, got {describe(value)}"))
        return value
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed or not isinstance(value, str):
            choices = ", ".join(f'"{a}"' for a in allowed)
            errors.append(
                path.error(f"Unsupported value: {_quote(value)}: supported values: {choices}")
            )
        return value
    if origin is tuple:
        (item_type, _ellipsis) = get_args(tp)
        if not isinstance(value, list):
            errors.append(path.error(f"must be an array, got {describe(value)}"))
            return ()
        return tuple(_decode(item_type, item, path[i], errors) for i, item in enumerate(value))
    if origin is dict:
        _key_type, value_type = get_args(tp)
        if not isinstance(value, dict):
            errors.append(path.error(f"must be an object, got {describe(value)}"))
            return {}
        if value_type is Any:
            return _copy_json(value)
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append(path.error(f"keys must be strings, got {describe(key)}"))
                continue
            out[key] = _decode(value_type, item, path / key, errors)
        return out
    if tp is Any:
        return _copy_json(value)
    raise TypeError(f"kvd.api.codec cannot decode {tp!r}")  # a programming error, not input


def _decode_object(cls: type, value: object, path: Path, errors: list[FieldError]) -> Any:
    if not isinstance(value, dict):
        errors.append(path.error(f"must be an object, got {describe(value)}"))
        return None
    known = {wire for _f, wire, _tp in _fields(cls)}
    unknown = [key for key in value if key not in known]
    for key in unknown:
        where = path / key if isinstance(key, str) else path
        errors.append(where.error(unsupported.field_message(cls.__name__, key)))
    kwargs: dict[str, Any] = {}
    given: set[str] = set()  # what the manifest sets, even where its value was refused
    for f, wire, tp in _fields(cls):
        child = path / wire
        if _is_set(f, tp, value.get(wire)):
            given.add(f.name)
            if _refused(cls, wire, value[wire], child, errors):
                continue
            decoded = _decode(tp, value[wire], child, errors)
            if decoded is not None or strip_optional(tp)[1]:
                kwargs[f.name] = decoded
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            errors.append(child.error("Required value"))
        _check_constraints(fields.info_of(f), kwargs.get(f.name), child, errors)
    groups = getattr(cls, "ONE_OF", None)
    if groups is not None:
        # An unknown field was most likely the choice (`multus:` for a network's source):
        # "must have one of pod" would only repeat that error less clearly.
        _check_one_of(groups, cls, given, path, errors, choice_unknown=bool(unknown))
    try:
        return cls(**kwargs)
    except TypeError:
        return None  # a required field was missing or broken; already reported


def _refused(cls: type, wire: str, value: object, path: Path, errors: list[FieldError]) -> bool:
    """A declared field kvd refuses for now: its one error, and nothing read from inside it.
    An empty list asks for nothing (`dataVolumeTemplates: []`), so it is not refused."""
    if (cls.__name__, wire) not in unsupported.DECLARED_NOT_SUPPORTED or value == []:
        return False
    errors.append(path.error(unsupported.declared_message(cls.__name__, wire)))
    return True


def _is_set(f: dataclasses.Field[Any], tp: Any, value: object) -> bool:
    """Whether a field's JSON value sets it: not null, and not `""` where Go cannot tell."""
    if value is None:
        return False
    return value != "" or not empties_are_unset(f, tp)


def empties_are_unset(f: dataclasses.Field[Any], tp: Any) -> bool:
    """An optional string field that is a plain Go `string` in KubeVirt: `""` means unset."""
    inner, optional = strip_optional(tp)
    is_string = inner is str or (
        get_origin(inner) is Literal and all(isinstance(a, str) for a in get_args(inner))
    )
    return optional and is_string and not fields.info_of(f).keep_empty


def _check_constraints(
    info: fields.FieldInfo, value: object, path: Path, errors: list[FieldError]
) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        if info.minimum is not None and value < info.minimum:
            errors.append(path.error(f"must be greater than or equal to {info.minimum}"))
        if info.maximum is not None and value > info.maximum:
            errors.append(path.error(f"must be less than or equal to {info.maximum}"))
    if isinstance(value, str):
        if info.max_length is not None and len(value) > info.max_length:
            errors.append(path.error(f"must be no more than {info.max_length} characters"))
        if info.pattern is not None and not _matches(info.pattern, value):
            errors.append(path.error(f"must match the regular expression '{info.pattern}'"))
        if info.format == "date-time" and not _is_datetime(value):
            errors.append(path.error(f"must be an RFC 3339 date-time, got {value!r}"))


def _check_one_of(
    groups: tuple[tuple[str, ...], bool],
    cls: type,
    given: set[str],
    path: Path,
    errors: list[FieldError],
    *,
    choice_unknown: bool,
) -> None:
    names, required = groups
    wires = {f.name: wire for f, wire, _tp in _fields(cls)}
    chosen = [wires[n] for n in names if n in given]
    listed = ", ".join(wires[n] for n in names)
    if len(chosen) > 1:
        errors.append(path.error(f"may have only one of {listed}, got {', '.join(chosen)}"))
    elif required and not chosen and not choice_unknown:
        errors.append(path.error(f"must have one of {listed}"))


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _matches(pattern: str, value: str) -> bool:
    return _compiled(pattern).search(value) is not None


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _quote(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def _omit_empty(f: dataclasses.Field[Any], tp: Any) -> bool:
    """Lists and maps that default to empty are left out when empty; an optional `{}` is kept,
    and so is a required one (`spec: {}` must load again: leaving it out makes it missing)."""
    required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    return not required and not strip_optional(tp)[1]


def encode(obj: object) -> Any:
    """An API dataclass (or a value inside one) as JSON-ready data."""
    if isinstance(obj, Quantity):
        return obj.text
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f, wire, tp in _fields(type(obj)):
            value = getattr(obj, f.name)
            if value is None or (
                _omit_empty(f, tp) and isinstance(value, (tuple, dict)) and not value
            ):
                continue
            out[wire] = encode(value)
        return out
    if isinstance(obj, (tuple, list)):
        return [encode(v) for v in obj]
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    return obj
