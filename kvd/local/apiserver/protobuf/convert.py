"""A Kubernetes protobuf message ↔ the JSON kube-apiserver writes for the same object.

`google.protobuf.json_format` is the wrong tool: Kubernetes' JSON comes from Go struct tags,
not from the messages. The differences, all handled here:

- special types have a JSON form of their own: `Quantity` is a string, `IntOrString` an int or
  a string, `Time` an RFC 3339 string in seconds and `MicroTime` one in microseconds (zero is
  `null`), `RawExtension` and `FieldsV1` embed raw JSON, int64 is a number, bytes are base64;
- some fields are inlined in JSON (a Volume's source, a Probe's handler) and named slices are
  plain lists (`ExtraValue`);
- Go clients send every non-pointer scalar, zero or not; JSON leaves a zero out unless the
  field is a pointer or lacks `omitempty`. Those facts come from Kubernetes' Go struct tags
  (`gen/json_fields.py`, see scripts/vendor-k8s-protos).

`to_json` reads what a Go client sent; `from_json` fills a message from a JSON object (only the
fields the object has, so a pointer's zero survives and an absent field stays absent). JSON
keys no message field has are dropped, as kube-apiserver's decoding drops them.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from kvd.local.apiserver.protobuf.gen import json_fields

META = "k8s.io.apimachinery.pkg.apis.meta.v1"


class ConversionError(ValueError):
    """A JSON value that the message's field cannot hold, with the field's path."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message, self.path = message, path

    def within(self, name: str) -> ConversionError:
        return ConversionError(self.message, f"{name}.{self.path}" if self.path else name)


# --- special types ------------------------------------------------------------------------------

ToJSON = Callable[[Message], Any]
FromJSON = Callable[[Any, Message], None]

RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))"
)


def parse_time(text: Any) -> tuple[int, int]:
    """RFC 3339 → (seconds since the epoch, nanoseconds), as Go's time.Parse reads it."""
    if not isinstance(text, str) or (match := RFC3339.fullmatch(text)) is None:
        raise ConversionError(f"expected an RFC 3339 time, got {text!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction, sign, offset_h, offset_m = match.group(7, 8, 9, 10)
    try:
        offset = timedelta(hours=int(offset_h or 0), minutes=int(offset_m or 0))
        zone = timezone(-offset if sign == "-" else offset)
        moment = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError as exc:
        raise ConversionError(f"invalid time {text!r}: {exc}") from None
    nanos = int((fraction or "0")[:9].ljust(9, "0"))
    return calendar.timegm(moment.astimezone(UTC).timetuple()), nanos


def format_time(seconds: int, nanos: int | None = None) -> str:
    """Go's RFC3339 (`nanos` None) or RFC3339Micro layout, in UTC."""
    try:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except OverflowError:
        raise ConversionError(f"time out of range: {seconds} s") from None
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos is not None:
        text += f".{nanos // 1000:06d}"
    return text + "Z"


def _time_to_json(msg: Any) -> str | None:
    # Go marshals the zero Time as an empty message: JSON null.
    return format_time(msg.seconds) if msg.HasField("seconds") else None


def _time_from_json(value: Any, msg: Any) -> None:
    msg.seconds, _ = parse_time(value)
    msg.nanos = 0  # kube keeps seconds only, in both encodings


def _micro_time_to_json(msg: Any) -> str | None:
    return format_time(msg.seconds, msg.nanos) if msg.HasField("seconds") else None


def _micro_time_from_json(value: Any, msg: Any) -> None:
    msg.seconds, nanos = parse_time(value)
    msg.nanos = nanos // 1000 * 1000


def _quantity_to_json(msg: Any) -> str:
    return str(msg.string) or "0"


def _quantity_from_json(value: Any, msg: Any) -> None:
    # Go's Quantity also reads a JSON number (`cpu: 1`)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConversionError(f"expected a quantity, got {value!r}")
    msg.string = value if isinstance(value, str) else str(value)


def _int_or_string_to_json(msg: Any) -> int | str:
    return str(msg.strVal) if msg.type == 1 else int(msg.intVal)


def _int_or_string_from_json(value: Any, msg: Any) -> None:
    if isinstance(value, str):
        msg.type, msg.intVal, msg.strVal = 1, 0, value
    elif isinstance(value, int) and not isinstance(value, bool):
        msg.type, msg.strVal = 0, ""
        msg.intVal = _integer(value, msg.DESCRIPTOR.fields_by_name["intVal"])
    else:
        raise ConversionError(f"expected an integer or a string, got {value!r}")


def _raw_to_json(msg: Any) -> Any:
    raw = msg.ListFields()[0][1] if msg.ListFields() else b""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ConversionError("the embedded object is not JSON") from None


def _raw_from_json(value: Any, msg: Any) -> None:
    field = msg.DESCRIPTOR.fields[0]  # RawExtension.raw, FieldsV1.Raw
    setattr(msg, field.name, json.dumps(value, separators=(",", ":")).encode())


SPECIAL: dict[str, tuple[ToJSON, FromJSON]] = {
    "k8s.io.apimachinery.pkg.api.resource.Quantity": (_quantity_to_json, _quantity_from_json),
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": (
        _int_or_string_to_json,
        _int_or_string_from_json,
    ),
    f"{META}.Time": (_time_to_json, _time_from_json),
    f"{META}.MicroTime": (_micro_time_to_json, _micro_time_from_json),
    f"{META}.FieldsV1": (_raw_to_json, _raw_from_json),
    "k8s.io.apimachinery.pkg.runtime.RawExtension": (_raw_to_json, _raw_from_json),
}


# --- how each message maps to JSON --------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    descriptor: FieldDescriptor
    name: str  # the attribute
    json_name: str
    is_map: bool
    is_repeated: bool
    value: FieldDescriptor  # the map's value field, else the field itself
    inline: bool
    zero_kept: bool
    omit_zero: bool


@dataclass(frozen=True)
class _Plan:
    by_number: dict[int, _Field]
    # JSON key → the fields leading to it, through inlined messages
    routes: dict[str, tuple[_Field, ...]]
    wrapper: bool  # a named Go slice: JSON is the `items` list


@cache
def _plan(descriptor: Descriptor) -> _Plan:
    fields: dict[int, _Field] = {}
    routes: dict[str, tuple[_Field, ...]] = {}
    inlined: list[_Field] = []
    for fd in descriptor.fields:
        full = fd.full_name
        entry = fd.message_type
        is_map = entry is not None and entry.GetOptions().map_entry
        field = _Field(
            descriptor=fd,
            name=fd.name,
            json_name=json_fields.JSON_NAMES.get(full, fd.name),
            is_map=is_map,
            is_repeated=fd.is_repeated and not is_map,
            value=entry.fields_by_name["value"] if entry is not None and is_map else fd,
            inline=full in json_fields.INLINE,
            zero_kept=full in json_fields.ZERO_KEPT,
            omit_zero=full in json_fields.OMIT_ZERO,
        )
        fields[fd.number] = field
        if field.inline:
            inlined.append(field)
        else:
            routes[field.json_name] = (field,)
    for field in inlined:  # a message's own fields win over inlined ones
        for key, route in _plan(field.descriptor.message_type).routes.items():
            routes.setdefault(key, (field, *route))
    return _Plan(fields, routes, descriptor.full_name in json_fields.WRAPPERS)


# --- protobuf → JSON ----------------------------------------------------------------------------


def to_json(msg: Message) -> Any:
    """The JSON value of a message (an object, or a list for a wrapper, or a special form)."""
    descriptor = msg.DESCRIPTOR
    special = SPECIAL.get(descriptor.full_name)
    if special is not None:
        return special[0](msg)
    plan = _plan(descriptor)
    if plan.wrapper:
        return list(msg.items)  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        field = plan.by_number[fd.number]
        try:
            if field.inline:
                out.update(to_json(value))
            elif field.is_map:
                out[field.json_name] = {k: _value_to_json(field, v) for k, v in value.items()}
            elif field.is_repeated:
                out[field.json_name] = [_value_to_json(field, v) for v in value]
            elif fd.message_type is not None:
                converted = to_json(value)
                if converted is None and field.omit_zero:
                    continue
                out[field.json_name] = converted
            elif value or field.zero_kept:
                out[field.json_name] = _value_to_json(field, value)
        except ConversionError as exc:
            raise exc.within(field.json_name) from None
    return out


def _value_to_json(field: _Field, value: Any) -> Any:
    if field.value.message_type is not None:
        return to_json(value)
    if field.value.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


# --- JSON → protobuf ----------------------------------------------------------------------------


def from_json(value: Any, msg: Message) -> None:
    """Fill `msg` from its JSON value; ConversionError names the first field that cannot hold
    what the JSON has."""
    descriptor = msg.DESCRIPTOR
    special = SPECIAL.get(descriptor.full_name)
    if special is not None:
        special[1](value, msg)
        return
    plan = _plan(descriptor)
    if plan.wrapper:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConversionError(f"expected a list of strings, got {value!r}")
        msg.items.extend(value)  # type: ignore[attr-defined]
        return
    if not isinstance(value, dict):
        raise ConversionError(f"expected an object, got {_shown(value)}")
    for key, item in value.items():
        route = plan.routes.get(key)
        if route is None or item is None:
            continue  # unknown keys are dropped; null is Go's zero, sent as absent
        target: Any = msg
        for step in route[:-1]:
            target = getattr(target, step.name)
        try:
            _set(target, route[-1], item)
        except ConversionError as exc:
            raise exc.within(key) from None


def _set(msg: Any, field: _Field, value: Any) -> None:
    if field.is_map:
        _set_map(getattr(msg, field.name), field.value, value)
    elif field.is_repeated:
        _set_list(getattr(msg, field.name), field.value, value)
    elif field.descriptor.message_type is not None:
        sub = getattr(msg, field.name)
        sub.SetInParent()
        from_json(value, sub)
    else:
        setattr(msg, field.name, _scalar(field.descriptor, value))


def _set_map(container: Any, value_field: FieldDescriptor, value: Any) -> None:
    if not isinstance(value, dict):
        raise ConversionError(f"expected an object, got {_shown(value)}")
    for key, item in value.items():
        try:
            if value_field.message_type is None:
                container[key] = _scalar(value_field, item)
            elif item is None:
                container[key].SetInParent()
            else:
                from_json(item, container[key])
        except ConversionError as exc:
            raise exc.within(key) from None


def _set_list(container: Any, item_field: FieldDescriptor, value: Any) -> None:
    if not isinstance(value, list):
        raise ConversionError(f"expected a list, got {_shown(value)}")
    for index, item in enumerate(value):
        try:
            if item_field.message_type is None:
                container.append(_scalar(item_field, item))
            else:
                element = container.add()
                if item is not None:
                    from_json(item, element)
        except ConversionError as exc:
            raise exc.within(f"[{index}]") from None


_INTEGERS = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _scalar(fd: FieldDescriptor, value: Any) -> Any:
    kind = fd.type
    if value is None:  # only inside maps and lists: Go reads null as the zero value
        return fd.default_value
    if kind == FieldDescriptor.TYPE_STRING:
        if isinstance(value, str):
            return value
        raise ConversionError(f"expected a string, got {_shown(value)}")
    if kind == FieldDescriptor.TYPE_BOOL:
        if isinstance(value, bool):
            return value
        raise ConversionError(f"expected a boolean, got {_shown(value)}")
    if kind in _INTEGERS:
        return _integer(value, fd)
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConversionError(f"expected a number, got {_shown(value)}")
    if kind == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            raise ConversionError(f"expected base64 data, got {_shown(value)}")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ConversionError("illegal base64 data") from None
    raise ConversionError(f"unsupported field type {kind}")  # Kubernetes' messages have none


def _integer(value: Any, fd: FieldDescriptor) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConversionError(f"expected an integer, got {_shown(value)}")
    low, high = _INTEGERS[fd.type]
    if not low <= value <= high:
        raise ConversionError(f"{value} is out of range for this field")
    return value


def _shown(value: Any) -> str:
    scalar = isinstance(value, str | int | float | bool)
    text = json.dumps(value) if scalar else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."
