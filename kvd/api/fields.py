"""Declaring API fields once: the dataclass is the single source of the wire format and schema.

A kvd API type is a frozen, keyword-only dataclass whose fields are declared with `field()`.
From that one declaration `codec` parses and serialises JSON (camelCase names, omitting what is
unset) and `openapi` renders the CRD's structural schema, so the two cannot drift. The metadata
a field carries is what both need: its wire name, documentation and value constraints.

Unset is what KubeVirt's Go types make of a value, not what the JSON spells: a `null` is unset
(the API server drops nulls of non-nullable fields), and so is `""` for an optional string,
which is a plain Go `string` in KubeVirt, where empty and absent cannot be told apart
(`machine: {type: ""}` is the default machine). `keep_empty` marks the few optional strings
that are Go pointers (`*string`): for them `""` is a value, usually an invalid one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

METADATA_KEY: Final = "kvd"


@dataclass(frozen=True)
class FieldInfo:
    doc: str
    wire_name: str | None = None
    pattern: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    format: str | None = None
    keep_empty: bool = False


def field(
    doc: str,
    *,
    default: Any = dataclasses.MISSING,
    default_factory: Any = dataclasses.MISSING,
    wire_name: str | None = None,
    pattern: str | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
    max_length: int | None = None,
    format: str | None = None,
    keep_empty: bool = False,
) -> Any:
    """Declare an API field. No default means the field is required on the wire."""
    info = FieldInfo(
        doc=doc,
        wire_name=wire_name,
        pattern=pattern,
        minimum=minimum,
        maximum=maximum,
        max_length=max_length,
        format=format,
        keep_empty=keep_empty,
    )
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={METADATA_KEY: info}
    )


def optional(doc: str, **constraints: Any) -> Any:
    """An optional field that is absent (None) unless given."""
    return field(doc, default=None, **constraints)


def many(doc: str, **constraints: Any) -> Any:
    """An optional list field, empty unless given."""
    return field(doc, default=(), **constraints)


def mapping(doc: str, **constraints: Any) -> Any:
    """An optional string-keyed map field, empty unless given."""
    return field(doc, default_factory=dict, **constraints)


def info_of(f: dataclasses.Field[Any]) -> FieldInfo:
    info = f.metadata.get(METADATA_KEY)
    if not isinstance(info, FieldInfo):
        raise TypeError(f"field {f.name} was not declared with kvd.api.fields.field()")
    return info


def wire_name(f: dataclasses.Field[Any]) -> str:
    """`termination_grace_period_seconds` → `terminationGracePeriodSeconds` unless overridden."""
    name = info_of(f).wire_name
    if name is not None:
        return name
    head, *rest = f.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def one_of(*names: str, required: bool = True) -> tuple[tuple[str, ...], bool]:
    """Class attribute `ONE_OF = one_of(...)`: exactly one (or at most one) of these is set."""
    return names, required
