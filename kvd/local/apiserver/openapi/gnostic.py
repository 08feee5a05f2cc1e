"""The swagger 2.0 document in protobuf, the form kubectl asks /openapi/v2 for.

client-go fetches /openapi/v2 accepting only
`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, and unmarshals the body as gnostic's
`openapi.v2.Document` message. kube-apiserver parses its JSON document into that message and
marshals it; this module writes the same message straight from the JSON document, in protobuf's
wire format, for the parts a Kubernetes document uses: info, paths (operations with body, query
and path parameters, responses with a schema) and definitions (every schema keyword, vendor
extensions). A value without a message field of its own (a vendor extension, `default`, `enum`,
`example`) travels as gnostic's `Any` with its YAML text; JSON is YAML, so it is written as JSON.
Field numbers are gnostic's OpenAPIv2.proto.
"""

from __future__ import annotations

import json
import struct
from typing import Any

_VARINT, _FIXED64, _BYTES = 0, 1, 2


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s are ten bytes, two's complement
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


class _Message:
    """One message being written; fields are appended in the order they are set."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def tag(self, number: int, wire: int) -> None:
        self.parts.append(_varint(number << 3 | wire))

    def string(self, number: int, value: Any) -> None:
        if isinstance(value, str) and value:
            self.raw(number, value.encode())

    def raw(self, number: int, value: bytes) -> None:
        self.tag(number, _BYTES)
        self.parts.append(_varint(len(value)))
        self.parts.append(value)

    def strings(self, number: int, values: Any) -> None:
        for value in values if isinstance(values, list) else []:
            if isinstance(value, str):
                self.raw(number, value.encode())

    def message(self, number: int, body: _Message) -> None:
        self.raw(number, body.encode())

    def boolean(self, number: int, value: Any) -> None:
        if value is True:
            self.tag(number, _VARINT)
            self.parts.append(b"\x01")

    def integer(self, number: int, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value:
            self.tag(number, _VARINT)
            self.parts.append(_varint(value))

    def double(self, number: int, value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool) and value:
            self.tag(number, _FIXED64)
            self.parts.append(struct.pack("<d", float(value)))

    def encode(self) -> bytes:
        return b"".join(self.parts)


def _any(value: Any) -> _Message:
    """gnostic's Any: the value's YAML (here JSON) text in field 2."""
    m = _Message()
    m.string(2, json.dumps(value, sort_keys=True))
    return m


def _named_any(number: int, parent: _Message, name: str, value: Any) -> None:
    m = _Message()
    m.string(1, name)
    m.message(2, _any(value))
    parent.message(number, m)


def _extensions(number: int, parent: _Message, node: dict[str, Any]) -> None:
    for key, value in node.items():
        if key.startswith("x-"):
            _named_any(number, parent, key, value)


def schema(node: dict[str, Any]) -> _Message:
    """gnostic's Schema: the scalar keywords, then the nested schemas."""
    m = _Message()
    _schema_scalars(m, node)
    _schema_nested(m, node)
    m.string(26, node.get("discriminator"))
    m.boolean(27, node.get("readOnly"))
    if "example" in node:
        m.message(30, _any(node["example"]))
    _extensions(31, m, node)
    return m


def _schema_scalars(m: _Message, node: dict[str, Any]) -> None:
    m.string(1, node.get("$ref"))
    m.string(2, node.get("format"))
    m.string(3, node.get("title"))
    m.string(4, node.get("description"))
    if "default" in node:
        m.message(5, _any(node["default"]))
    m.double(6, node.get("multipleOf"))
    m.double(7, node.get("maximum"))
    m.boolean(8, node.get("exclusiveMaximum"))
    m.double(9, node.get("minimum"))
    m.boolean(10, node.get("exclusiveMinimum"))
    for number, key in (
        (11, "maxLength"),
        (12, "minLength"),
        (14, "maxItems"),
        (15, "minItems"),
        (17, "maxProperties"),
        (18, "minProperties"),
    ):
        m.integer(number, node.get(key))
    m.string(13, node.get("pattern"))
    m.boolean(16, node.get("uniqueItems"))
    m.strings(19, node.get("required"))
    for value in node.get("enum") or []:
        m.message(20, _any(value))


def _schema_nested(m: _Message, node: dict[str, Any]) -> None:
    additional = node.get("additionalProperties")
    if isinstance(additional, dict):
        item = _Message()
        item.message(1, schema(additional))
        m.message(21, item)
    elif isinstance(additional, bool):
        item = _Message()
        item.tag(2, _VARINT)
        item.parts.append(b"\x01" if additional else b"\x00")
        m.message(21, item)
    kind = node.get("type")
    if isinstance(kind, str | list):
        types = _Message()
        types.strings(1, [kind] if isinstance(kind, str) else kind)
        m.message(22, types)
    items = node.get("items")
    if isinstance(items, dict | list):
        holder = _Message()
        for sub in items if isinstance(items, list) else [items]:
            if isinstance(sub, dict):
                holder.message(1, schema(sub))
        m.message(23, holder)
    for sub in node.get("allOf") or []:
        if isinstance(sub, dict):
            m.message(24, schema(sub))
    properties = node.get("properties")
    if isinstance(properties, dict):
        holder = _Message()
        for name, sub in properties.items():
            if isinstance(sub, dict):
                holder.message(1, _named(name, schema(sub)))
        m.message(25, holder)


def _named(name: str, value: _Message) -> _Message:
    m = _Message()
    m.string(1, name)
    m.message(2, value)
    return m


def _parameter(p: dict[str, Any]) -> _Message:
    """ParametersItem → Parameter → body, or non-body (query or path) parameter."""
    where = p.get("in")
    sub = _Message()
    if where == "body":
        sub.string(1, p.get("description"))
        sub.string(2, p.get("name"))
        sub.string(3, where)
        sub.boolean(4, p.get("required"))
        if isinstance(p.get("schema"), dict):
            sub.message(5, schema(p["schema"]))
        _extensions(6, sub, p)
        parameter = _Message()
        parameter.message(1, sub)
    else:
        sub.boolean(1, p.get("required"))
        sub.string(2, where)
        sub.string(3, p.get("description"))
        sub.string(4, p.get("name"))
        path = where == "path"
        # QueryParameterSubSchema has allow_empty_value at 5, shifting its later fields by one
        shift = 0 if path else 1
        sub.string(5 + shift, p.get("type"))
        sub.string(6 + shift, p.get("format"))
        sub.boolean(19 + shift, p.get("uniqueItems"))
        _extensions(22 + shift, sub, p)
        non_body = _Message()
        non_body.message(4 if path else 3, sub)
        parameter = _Message()
        parameter.message(2, non_body)
    item = _Message()
    item.message(1, parameter)
    return item


def _operation(o: dict[str, Any]) -> _Message:
    m = _Message()
    m.strings(1, o.get("tags"))
    m.string(2, o.get("summary"))
    m.string(3, o.get("description"))
    m.string(5, o.get("operationId"))
    m.strings(6, o.get("produces"))
    m.strings(7, o.get("consumes"))
    for p in o.get("parameters") or []:
        m.message(8, _parameter(p))
    responses = _Message()
    for code, response in (o.get("responses") or {}).items():
        r = _Message()
        r.string(1, response.get("description"))
        if isinstance(response.get("schema"), dict):
            item = _Message()
            item.message(1, schema(response["schema"]))
            r.message(2, item)
        value = _Message()
        value.message(1, r)
        responses.message(1, _named(code, value))
    m.message(9, responses)
    m.strings(10, o.get("schemes"))
    m.boolean(11, o.get("deprecated"))
    _extensions(13, m, o)
    return m


_METHODS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def document(doc: dict[str, Any]) -> bytes:
    """The swagger 2.0 document `doc` as a serialized openapi.v2.Document."""
    m = _Message()
    m.string(1, doc.get("swagger"))
    info = _Message()
    info.string(1, doc.get("info", {}).get("title"))
    info.string(2, doc.get("info", {}).get("version"))
    m.message(2, info)
    paths = _Message()
    for path, item in (doc.get("paths") or {}).items():
        p = _Message()
        for method, number in _METHODS.items():
            if isinstance(item.get(method), dict):
                p.message(number, _operation(item[method]))
        for parameter in item.get("parameters") or []:
            p.message(9, _parameter(parameter))
        _extensions(10, p, item)
        paths.message(2, _named(path, p))
    m.message(8, paths)
    definitions = _Message()
    for name, node in (doc.get("definitions") or {}).items():
        definitions.message(1, _named(name, schema(node)))
    m.message(9, definitions)
    return m.encode()
