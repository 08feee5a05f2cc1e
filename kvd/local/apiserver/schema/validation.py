"""Validation of a custom resource against its structural schema, worded as kube-apiserver words it.

kube runs two passes: kube-openapi's schema validator, here (type, then allOf/anyOf/oneOf/not,
string, format, number, array, enum and object checks on every node, in that order), then the
`x-kubernetes-list-type` pass (`listtype`); `validate` runs both. Each error is a
metav1.StatusCause whose message is apimachinery's `field.Error.ErrorBody()`, so a client sees
`Invalid value: 0: spec.domain.cpu.cores in body should be greater than or equal to 1` from kvd
exactly as from a cluster.

Where kvd deliberately differs: errors kube files under the field `<nil>` (the anyOf/oneOf/allOf/
not summaries, an out-of-range multipleOf) carry the node's path instead; an integer checked
against a fractional `multipleOf` is divided as a number (kube truncates the factor, and panics on
0); a string with a `format` given an array is a type error (kube lets it through); a null matches
an enum that lists null; `format: int32` is not range-checked, as in kube. Patterns are matched
with RE2's meaning (see `values.compile_pattern`), but by Python's backtracking engine.
"""

from __future__ import annotations

import math
from typing import Any

from kvd.local.apiserver.schema import formats
from kvd.local.apiserver.schema.causes import (
    INVALID,
    NOT_SUPPORTED,
    REQUIRED,
    TOO_LONG,
    TOO_MANY,
    TYPE_INVALID,
    Cause,
)
from kvd.local.apiserver.schema.listtype import list_type_causes
from kvd.local.apiserver.schema.values import (
    PatternError,
    as_float,
    compile_pattern,
    go_float,
    go_json,
    go_quote,
    go_value,
    identity,
    is_json_integer,
    is_number,
    json_equal,
    json_type,
)


def validate(obj: Any, schema: dict[str, Any]) -> list[Cause]:
    """Every way `obj` (already defaulted and pruned) breaks `schema`, as the causes of kube's 422
    Invalid: the schema pass, then the list-type pass. Empty when the object is valid."""
    return value_causes(obj, schema) + list_type_causes(obj, schema)


def value_causes(value: Any, schema: dict[str, Any], *, field: str = "") -> list[Cause]:
    """The schema-validator pass over `value`. `field` roots every cause's field: kube validates
    a CRD's `default` this way, at `...properties[x].default`."""
    checker = _Checker(field)
    checker.node(value, schema, "")
    return checker.causes


def _child(name: str, key: object) -> str:
    return f"{name}.{key}" if name else str(key)


def _in_body(name: str) -> str:
    # kube-openapi says "<path> in body"; at the root of a validated default the path is empty.
    return f"{name} in body" if name else "in body"


def _int(schema: dict[str, Any], key: str) -> int | None:
    value = schema.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return int(value) if value == int(value) else None
    return None


def _num(schema: dict[str, Any], key: str) -> float | None:
    value = schema.get(key)
    return as_float(value) if is_number(value) else None


def _types(schema: dict[str, Any]) -> list[str]:
    # kube validates x-kubernetes-int-or-string as `type: [integer, string]`.
    if schema.get("x-kubernetes-int-or-string") is True:
        return ["integer", "string"]
    declared = schema.get("type")
    return [declared] if isinstance(declared, str) and declared else []


def _fewest(results: list[list[Cause]]) -> list[Cause]:
    # kube merges the failing branch that passed the most checks; the first with fewest errors.
    def count(causes: list[Cause]) -> int:
        return len(causes)

    return min(results, key=count)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class _Checker:
    """Walks a value beside its schema and collects causes; one per validate call or branch."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.causes: list[Cause] = []

    def add(self, reason: str, name: str, message: str) -> None:
        field = name
        if self.root:
            field = self.root + (name if name.startswith("[") or not name else "." + name)
        self.causes.append(Cause(reason, message, field))

    def invalid(self, name: str, value: Any, detail: str, reason: str = INVALID) -> None:
        self.add(reason, name, f"Invalid value: {go_value(value)}: {detail}")

    def branch(self, value: Any, schema: Any, name: str) -> list[Cause]:
        checker = _Checker(self.root)
        checker.node(value, schema, name)
        return checker.causes

    def node(self, value: Any, schema: Any, name: str) -> None:
        if not isinstance(schema, dict):
            return
        types = _types(schema)
        fmt = formats.effective(types[0] if len(types) == 1 else "", schema.get("format"))
        self.type(value, schema, types, fmt, name)
        if value is None:
            self.enum(value, schema, name)
            return
        self.junctors(value, schema, name)
        if isinstance(value, str):
            self.string(value, schema, name)
            if fmt and not formats.check(fmt, value):
                detail = f"{_in_body(name)} must be of type {fmt}: {go_quote(value)}"
                self.invalid(name, value, detail, TYPE_INVALID)
        elif is_number(value):
            self.number(value, schema, name)
        elif isinstance(value, list):
            self.array(value, schema, name)
        self.enum(value, schema, name)
        if isinstance(value, dict):
            self.object(value, schema, name)

    def type(
        self, value: Any, schema: dict[str, Any], types: list[str], fmt: str, name: str
    ) -> None:
        if not types and not fmt:
            return
        wanted = ",".join(types)
        if value is None:
            if types and schema.get("nullable") is not True:
                detail = f'{_in_body(name)} must be of type {wanted}: "null"'
                self.invalid(name, "null", detail, TYPE_INVALID)
            return
        kind = json_type(value)
        data_format = {"integer": "int64", "number": "float64"}.get(kind, "")
        float_int = kind == "number" and "integer" in types and is_json_integer(as_float(value))
        ok = kind in types or float_int or (kind == "integer" and "number" in types)
        if kind not in ("string", "array") and fmt and not (ok or data_format == fmt):
            detail = f"{_in_body(name)} must be of type {fmt}: {go_quote(data_format)}"
            self.invalid(name, data_format, detail, TYPE_INVALID)
            return
        numeric = "integer" in types or "number" in types
        if fmt and not numeric and (kind == "string" or (kind == "array" and not types)):
            return
        if not ok:
            detail = f"{_in_body(name)} must be of type {wanted}: {go_quote(kind)}"
            self.invalid(name, kind, detail, TYPE_INVALID)

    def junctors(self, value: Any, schema: dict[str, Any], name: str) -> None:
        # kube-openapi's schemaPropsValidator; its summary errors come before the branch's own.
        quoted = go_quote(name)
        any_of = schema.get("anyOf")
        if isinstance(any_of, list) and any_of:
            results = [self.branch(value, sub, name) for sub in any_of]
            if all(results):
                self.invalid(name, "", f"{quoted} must validate at least one schema (anyOf)")
                self.causes += _fewest(results)
        one_of = schema.get("oneOf")
        if isinstance(one_of, list) and one_of:
            results = [self.branch(value, sub, name) for sub in one_of]
            valid = sum(not r for r in results)
            if valid != 1:
                found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
                self.invalid(
                    name, "", f"{quoted} must validate one and only one schema (oneOf). {found}"
                )
                if valid == 0:
                    self.causes += _fewest(results)
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and all_of:
            results = [self.branch(value, sub, name) for sub in all_of]
            for result in results:
                self.causes += result
            valid = sum(not r for r in results)
            if valid != len(results):
                none = ". None validated" if valid == 0 else ""
                self.invalid(name, "", f"{quoted} must validate all the schemas (allOf){none}")
        not_schema = schema.get("not")
        if isinstance(not_schema, dict) and not self.branch(value, not_schema, name):
            self.invalid(name, "", f"{quoted} must not validate the schema (not)")

    def string(self, value: str, schema: dict[str, Any], name: str) -> None:
        # kube-openapi's stringValidator stops at the first failure: maxLength, minLength, pattern.
        max_length, min_length = _int(schema, "maxLength"), _int(schema, "minLength")
        if max_length is not None and len(value) > max_length:
            self.add(
                TOO_LONG, name, f"Too long: may not be more than {_plural(max_length, 'byte')}"
            )
            return
        if min_length is not None and len(value) < min_length:
            self.invalid(
                name, value, f"{_in_body(name)} should be at least {min_length} chars long"
            )
            return
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and pattern:
            try:
                matches = compile_pattern(pattern).search(value) is not None
            except PatternError as err:
                detail = f"{_in_body(name)} should match '{pattern}, but pattern is invalid: {err}'"
                self.invalid(name, value, detail)
                return
            if not matches:
                self.invalid(name, value, f"{_in_body(name)} should match '{pattern}'")

    def number(self, value: float, schema: dict[str, Any], name: str) -> None:
        integer = json_type(value) == "integer"
        data = as_float(value)
        factor = _num(schema, "multipleOf")
        if factor is not None:
            if factor < 0:
                detail = (
                    f"factor MultipleOf declared for {name} must be positive: {go_float(factor)}"
                )
                self.invalid(name, factor, detail)
            elif integer and factor >= 1 and is_json_integer(factor):
                if int(value) % int(factor):
                    self.invalid(
                        name, value, f"{_in_body(name)} should be a multiple of {int(factor)}"
                    )
            else:
                try:
                    ratio = 1 / factor * data if factor < 1 else data / factor
                except ZeroDivisionError:
                    ratio = math.inf
                if not is_json_integer(ratio):
                    shown = go_float(factor)
                    self.invalid(name, value, f"{_in_body(name)} should be a multiple of {shown}")
        for key, exclusive_key, below, word in (
            ("minimum", "exclusiveMinimum", True, "greater"),
            ("maximum", "exclusiveMaximum", False, "less"),
        ):
            bound = _num(schema, key)
            if bound is None:
                continue
            exclusive = schema.get(exclusive_key) is True
            # kube compares an int64 with the bound truncated to int64, a float64 with the float.
            exact: float | int = bound
            shown = go_float(bound)
            if integer and math.isfinite(bound) and abs(bound) < 2**63:
                exact = int(bound)
                shown = str(exact)
            compared: float | int = value if integer else data
            outside = compared < exact if below else compared > exact
            if outside or (exclusive and compared == exact):
                relation = f"{word} than" if exclusive else f"{word} than or equal to"
                self.invalid(name, value, f"{_in_body(name)} should be {relation} {shown}")

    def array(self, value: list[Any], schema: dict[str, Any], name: str) -> None:
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                self.node(item, items, f"{name}[{index}]")
        min_items, max_items = _int(schema, "minItems"), _int(schema, "maxItems")
        if min_items is not None and len(value) < min_items:
            self.invalid(
                name, len(value), f"{_in_body(name)} should have at least {min_items} items"
            )
        if max_items is not None and len(value) > max_items:
            body = f"Too many: {len(value)}: must have at most {_plural(max_items, 'item')}"
            self.add(TOO_MANY, name, body)
        if schema.get("uniqueItems") is True and len({identity(v) for v in value}) < len(value):
            self.invalid(name, "", f"{_in_body(name)} shouldn't contain duplicates")

    def enum(self, value: Any, schema: dict[str, Any], name: str) -> None:
        allowed = schema.get("enum")
        if not isinstance(allowed, list) or not allowed:
            return
        if any(json_equal(value, candidate) for candidate in allowed):
            return
        shown = ", ".join(go_quote(v if isinstance(v, str) else go_json(v)) for v in allowed)
        self.add(
            NOT_SUPPORTED, name, f"Unsupported value: {go_value(value)}: supported values: {shown}"
        )

    def object(self, value: dict[str, Any], schema: dict[str, Any], name: str) -> None:
        count = len(value)
        min_props, max_props = _int(schema, "minProperties"), _int(schema, "maxProperties")
        if min_props is not None and count < min_props:
            self.invalid(
                name, count, f"{_in_body(name)} should have at least {min_props} properties"
            )
            return
        if max_props is not None and count > max_props:
            body = f"Too many: {count}: must have at most {_plural(max_props, 'item')}"
            self.add(TOO_MANY, name, body)
            return
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                continue
            if additional is False:
                self.invalid(name, key, f"{_in_body(_child(name, key))} is a forbidden property")
            elif isinstance(additional, dict):
                self.node(item, additional, _child(name, key))
        for key, sub in properties.items():
            if key in value:
                self.node(value[key], sub, _child(name, key))
        required = schema.get("required")
        for key in required if isinstance(required, list) else []:
            if isinstance(key, str) and key not in value:
                self.add(REQUIRED, _child(name, key), "Required value")
