"""Decoding a built-in kind's JSON the way kube-apiserver's decoder reads it into Go structs.

kube-apiserver decodes a body into the kind's Go type before anything else looks at it. That
decoder (Go's encoding/json, case-sensitive) is what this module follows, with the kind's
OpenAPI definition standing in for the Go type:

- a value of the wrong JSON type is the first error, in document order, worded as Go words it:
  `json: cannot unmarshal bool into Go struct field ConfigMap.data of type string` (the struct is
  the one holding the field, the path its JSON names from the root, without indices); the
  caller answers 400 `<Kind> in version "v1" cannot be handled as a <Kind>: <error>`;
- the types with their own decoding say what theirs say: a quantity that does not parse
  (apimachinery's regular expression), an int-or-string that is neither, a time that is not
  RFC 3339, `[]byte` that is not base64;
- a field the type does not have is dropped, and its path (`spec.containers[0].imagePullPolizy`)
  reported, for `fieldValidation` to refuse or warn about;
- a null field is the field's zero value, so it is dropped; a null map value or list item
  becomes the zero value of its type.

Where kvd is approximate: Go names a field's named type (`v1.PullPolicy`) where only `string` is
known here, and a time's parse error always names the year as the part that failed.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from kvd.local.apiserver.kinds import quantity
from kvd.local.apiserver.openapi.definitions import V2_PREFIX, Definitions

# node kinds
STRING, INT32, INT64, FLOAT, BOOL, BYTES = "string", "int32", "int64", "float64", "bool", "bytes"
QUANTITY, INT_OR_STRING, TIME, ANY, STRUCT, LIST, MAP = (
    "quantity",
    "intstr",
    "time",
    "any",
    "struct",
    "list",
    "map",
)
_SPECIAL = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": QUANTITY,
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": INT_OR_STRING,
    "io.k8s.apimachinery.pkg.apis.meta.v1.Time": TIME,
    "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": TIME,
}
# kinds whose valid values are exactly one Python type, taken as they are
_SCALARS: dict[str, type] = {STRING: str, BOOL: bool}
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


class DecodeError(ValueError):
    """The body cannot be read as the kind: Go's (or the type's own) error text."""


@dataclass(frozen=True)
class Node:
    kind: str
    go: str  # the Go type as Go prints it in an error: string, int32, []v1.Container, ...
    ref: str = ""  # STRUCT: the definition
    item: Node | None = None  # LIST and MAP: the element


@dataclass
class Struct:
    name: str  # Container
    fields: dict[str, Node] = field(default_factory=dict)


def _go_name(definition: str) -> str:
    # io.k8s.api.core.v1.Container -> v1.Container
    parts = definition.split(".")
    return f"{parts[-2]}.{parts[-1]}"


class Compiled:
    """The definitions as decodable types, compiled lazily, one struct at a time."""

    def __init__(self, definitions: Definitions) -> None:
        self.definitions = definitions
        self._structs: dict[str, Struct] = {}

    def struct(self, name: str) -> Struct:
        found = self._structs.get(name)
        if found is None:
            schema = self.definitions.schemas[name]
            found = Struct(name.rsplit(".", 1)[-1])
            self._structs[name] = found
            for prop, sub in (schema.get("properties") or {}).items():
                found.fields[prop] = self.node(sub)
        return found

    def node(self, schema: dict[str, Any]) -> Node:
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.removeprefix(V2_PREFIX)
            if name in _SPECIAL:
                return Node(_SPECIAL[name], _go_name(name))
            target = self.definitions.schemas.get(name, {})
            if target.get("properties"):
                return Node(STRUCT, _go_name(name), ref=name)
            return self._plain(target, _go_name(name))
        return self._plain(schema, "")

    def _plain(self, schema: dict[str, Any], named: str) -> Node:
        kind = schema.get("type")
        fmt = schema.get("format")
        if kind == "array" and isinstance(schema.get("items"), dict):
            item = self.node(schema["items"])
            return Node(LIST, named or f"[]{item.go}", item=item)
        if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
            item = self.node(schema["additionalProperties"])
            return Node(MAP, named or f"map[string]{item.go}", item=item)
        if kind == "string":
            if fmt == "byte":
                return Node(BYTES, "[]uint8")
            if fmt == "date-time":
                return Node(TIME, named or "v1.Time")
            return Node(STRING, "string")
        if kind == "integer":
            return Node(INT32, "int32") if fmt == "int32" else Node(INT64, "int64")
        if kind == "number":
            return Node(FLOAT, "float64")
        if kind == "boolean":
            return Node(BOOL, "bool")
        return Node(ANY, named or "interface {}")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _zero(node: Node) -> Any:
    return {
        STRING: "",
        BYTES: "",
        INT32: 0,
        INT64: 0,
        FLOAT: 0,
        BOOL: False,
        QUANTITY: "0",
        STRUCT: {},
    }.get(node.kind)


class _Decoding:
    def __init__(self, compiled: Compiled) -> None:
        self.compiled = compiled
        self.unknown: list[str] = []

    def fail(self, value: Any, node: Node, where: tuple[str, str], what: str = "") -> DecodeError:
        struct, path = where
        shown = what or _json_kind(value)
        return DecodeError(
            f"json: cannot unmarshal {shown} into Go struct field {struct}.{path} of type {node.go}"
        )

    def struct(self, value: dict[str, Any], name: str, at: str, go_path: str) -> dict[str, Any]:
        s = self.compiled.struct(name)
        fields = s.fields
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = fields.get(key)
            if sub is None:
                self.unknown.append(f"{at}.{key}" if at else key)
                continue
            if item is None:
                continue  # the zero value, which an omitempty field does not write back
            # the common case first, without building paths only errors and nesting need
            scalar = _SCALARS.get(sub.kind)
            if scalar is not None and type(item) is scalar:
                out[key] = item
                continue
            here = f"{at}.{key}" if at else key
            go_here = f"{go_path}.{key}" if go_path else key
            out[key] = self.value(item, sub, here, (s.name, go_here))
        return out

    def value(self, value: Any, node: Node, at: str, where: tuple[str, str]) -> Any:  # noqa: PLR0912
        kind = node.kind
        if value is None:
            return _zero(node)
        if kind == STRING:
            if not isinstance(value, str):
                raise self.fail(value, node, where)
            return value
        if kind in (INT32, INT64):
            return self.integer(value, node, where)
        if kind == BOOL:
            if not isinstance(value, bool):
                raise self.fail(value, node, where)
            return value
        if kind == FLOAT:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.fail(value, node, where)
            return value
        if kind == STRUCT:
            if not isinstance(value, dict):
                raise self.fail(value, node, where)
            return self.struct(value, node.ref, at, where[1])
        if kind == LIST:
            if not isinstance(value, list):
                raise self.fail(value, node, where)
            item = node.item
            assert item is not None
            if _SCALARS.get(item.kind) is str and all(type(v) is str for v in value):
                return list(value)
            return [self.value(v, item, f"{at}[{i}]", where) for i, v in enumerate(value)]
        if kind == MAP:
            if not isinstance(value, dict):
                raise self.fail(value, node, where)
            item = node.item
            assert item is not None
            if _SCALARS.get(item.kind) is str and all(type(v) is str for v in value.values()):
                return dict(value)
            return {k: self.value(v, item, f"{at}.{k}", where) for k, v in value.items()}
        if kind == QUANTITY:
            try:
                quantity.parse_json(value)
            except quantity.QuantityError as exc:
                raise DecodeError(str(exc)) from None
            return value
        if kind == INT_OR_STRING:
            return value if isinstance(value, str) else _int32_value(value)
        if kind == TIME:
            return _time(value)
        if kind == BYTES:
            if not isinstance(value, str):
                raise self.fail(value, node, where)
            _base64(value)
            return value
        return value  # ANY: whatever JSON it is

    def integer(self, value: Any, node: Node, where: tuple[str, str]) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(value, node, where)
        low, high = _INT32 if node.kind == INT32 else _INT64
        if isinstance(value, float) or not low <= value <= high:
            raise self.fail(value, node, where, f"number {_number(value)}")
        return value


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def _int32_value(value: Any) -> int:
    """IntOrString's own decoding of a non-string: json.Unmarshal into an int32."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type int32")
    if isinstance(value, float) or not _INT32[0] <= value <= _INT32[1]:
        raise DecodeError(
            f"json: cannot unmarshal number {_number(value)} into Go value of type int32"
        )
    return value


def _time(value: Any) -> Any:
    """metav1.Time's decoding: a JSON string, then RFC 3339."""
    if not isinstance(value, str):
        raise DecodeError(
            f"json: cannot unmarshal {_json_kind(value)} into Go value of type string"
        )
    if not _RFC3339.fullmatch(value):
        raise DecodeError(
            f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": '
            f'cannot parse "{value}" as "2006"'
        )
    return value


def _base64(text: str) -> None:
    """Go's base64.StdEncoding, which is what []byte fields are decoded with."""
    for index, char in enumerate(text):
        if char not in _BASE64 and char not in "=\r\n":
            raise DecodeError(f"illegal base64 data at input byte {index}")
    try:
        base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(f"illegal base64 data at input byte {len(text)}") from None


def decode(
    compiled: Compiled, definition: str, obj: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """`obj` read as the definition's type: the decoded copy and the unknown fields' paths.
    DecodeError when it cannot be read at all."""
    decoding = _Decoding(compiled)
    try:
        out = decoding.struct(obj, definition, "", "")
    except RecursionError:
        raise DecodeError("the object is nested too deeply") from None
    return out, decoding.unknown
