"""Validation of custom resources, keyword by keyword, in kube-openapi's words."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.local.apiserver.schema import (
    Cause,
    validate,
)
from tests.local.apiserver.schema.cases import (
    VMI,
    VMI_MANIFEST,
    manifest,
    nested_lists,
    put,
    table,
)

# -- validation, keyword by keyword --------------------------------------------------------------

KEYWORDS = table(
    """
- id: type-integer
  schema: {type: integer}
  value: s
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "string": x in body must be of type integer: "string"'}
- id: type-integer-given-a-float-beyond-2^53
  schema: {type: integer}
  value: 1.0e+20
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "number": x in body must be of type integer: "number"'}
- id: type-integer-given-an-integer-beyond-int64
  schema: {type: integer}
  value: 1180591620717411303424
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "number": x in body must be of type integer: "number"'}
- {id: type-number-takes-integers, schema: {type: number}, value: 1, causes: []}
- id: type-string
  schema: {type: string}
  value: 1
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "integer": x in body must be of type string: "integer"'}
- id: type-boolean
  schema: {type: boolean}
  value: "true"
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "string": x in body must be of type boolean: "string"'}
- id: type-array
  schema: {type: array, items: {type: string}}
  value: {}
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "object": x in body must be of type array: "object"'}
- id: type-object
  schema: {type: object}
  value: []
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "array": x in body must be of type object: "array"'}
- id: null
  schema: {type: string}
  value: null
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "null": x in body must be of type string: "null"'}
- {id: nullable, schema: {type: string, nullable: true}, value: null, causes: []}
- id: required
  schema: {type: object, required: [a], properties: {a: {type: string}}}
  value: {}
  causes: [{reason: FieldValueRequired, field: x.a, message: Required value}]
- id: additional-properties-schema
  schema: {type: object, additionalProperties: {type: integer}}
  value: {k: v}
  causes:
  - {reason: FieldValueTypeInvalid, field: x.k,
     message: 'Invalid value: "string": x.k in body must be of type integer: "string"'}
- id: additional-properties-false
  schema: {type: object, additionalProperties: false}
  value: {k: 1}
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: 'Invalid value: "k": x.k in body is a forbidden property'}
- id: items
  schema: {type: array, items: {type: integer}}
  value: [1, a]
  causes:
  - {reason: FieldValueTypeInvalid, field: "x[1]",
     message: 'Invalid value: "string": x[1] in body must be of type integer: "string"'}
- id: enum-of-numbers
  schema: {type: integer, enum: [1, 2]}
  value: 3
  causes:
  - {reason: FieldValueNotSupported, field: x,
     message: 'Unsupported value: 3: supported values: "1", "2"'}
- {id: enum-compares-numbers-by-value, schema: {type: number, enum: [1, 2]}, value: 1.0, causes: []}
- id: exclusive-minimum
  schema: {type: integer, minimum: 1, exclusiveMinimum: true}
  value: 1
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: "Invalid value: 1: x in body should be greater than 1"}
- id: maximum-float
  schema: {type: number, maximum: 1.5}
  value: 2.5
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: "Invalid value: 2.5: x in body should be less than or equal to 1.5"}
- id: exclusive-maximum
  schema: {type: integer, maximum: 10, exclusiveMaximum: true}
  value: 10
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: "Invalid value: 10: x in body should be less than 10"}
- id: numbers-printed-as-go-prints-float64
  schema: {type: number, maximum: 1.0e+6}
  value: 2.0e+6
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: "Invalid value: 2e+06: x in body should be less than or equal to 1e+06"}
- id: multiple-of-integer
  schema: {type: integer, multipleOf: 3}
  value: 7
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: "Invalid value: 7: x in body should be a multiple of 3"}
- id: multiple-of-float-tolerates-rounding
  schema: {type: number, multipleOf: 0.1}
  value: 0.3
  causes: []
- id: multiple-of-float
  schema: {type: number, multipleOf: 0.1}
  value: 0.35
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: "Invalid value: 0.35: x in body should be a multiple of 0.1"}
- id: min-length
  schema: {type: string, minLength: 3}
  value: ab
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: 'Invalid value: "ab": x in body should be at least 3 chars long'}
- {id: max-length-counts-code-points, schema: {type: string, maxLength: 3}, value: ééé, causes: []}
- id: max-length
  schema: {type: string, maxLength: 1}
  value: éé
  causes:
  - {reason: FieldValueTooLong, field: x, message: "Too long: may not be more than 1 byte"}
- id: pattern
  schema: {type: string, pattern: "^[a-z]+$"}
  value: "abc\\n"
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: "Invalid value: \\"abc\\\\n\\": x in body should match '^[a-z]+$'"}
- {id: pattern-searches-unanchored, schema: {type: string, pattern: b}, value: abc, causes: []}
- id: min-items
  schema: {type: array, items: {type: integer}, minItems: 1}
  value: []
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: "Invalid value: 0: x in body should have at least 1 items"}
- id: max-items
  schema: {type: array, items: {type: integer}, maxItems: 1}
  value: [1, 2]
  causes:
  - {reason: FieldValueTooMany, field: x, message: "Too many: 2: must have at most 1 item"}
- id: unique-items
  schema: {type: array, items: {type: integer}, uniqueItems: true}
  value: [1, 2, 1]
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: "Invalid value: \\"\\": x in body shouldn't contain duplicates"}
- id: min-properties
  schema: {type: object, minProperties: 2, additionalProperties: {type: integer}}
  value: {a: 1}
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: "Invalid value: 1: x in body should have at least 2 properties"}
- id: max-properties-stops-there
  schema: {type: object, maxProperties: 1, additionalProperties: {type: integer}}
  value: {a: 1, b: not checked}
  causes:
  - {reason: FieldValueTooMany, field: x, message: "Too many: 2: must have at most 1 item"}
- id: int32-is-not-range-checked-as-in-kube
  schema: {type: integer, format: int32}
  value: 1099511627776
  causes: []
- id: date-time
  schema: {type: string, format: date-time}
  value: "2024-01-02T03:04:05.5+01:00"
  causes: []
- id: date-time-invalid
  schema: {type: string, format: date-time}
  value: "2024-01-02"
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "2024-01-02": x in body must be of type date-time: "2024-01-02"'}
- id: date-invalid
  schema: {type: string, format: date}
  value: "2024-02-30"
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "2024-02-30": x in body must be of type date: "2024-02-30"'}
- {id: byte, schema: {type: string, format: byte}, value: aGVsbG8=, causes: []}
- id: byte-invalid
  schema: {type: string, format: byte}
  value: hello!
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "hello!": x in body must be of type byte: "hello!"'}
- id: uuid
  schema: {type: string, format: uuid}
  value: 5E8CB8A8-0A2B-4C1D-9E3F-1A2B3C4D5E6F
  causes: []
- id: uuid-invalid
  schema: {type: string, format: uuid}
  value: not-a-uuid
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "not-a-uuid": x in body must be of type uuid: "not-a-uuid"'}
- {id: email, schema: {type: string, format: email}, value: kvd@example.org, causes: []}
- id: email-invalid
  schema: {type: string, format: email}
  value: nobody
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "nobody": x in body must be of type email: "nobody"'}
- {id: unknown-format-ignored, schema: {type: string, format: kvd-special}, value: any, causes: []}
- id: format-foreign-to-the-type-ignored
  schema: {type: integer, format: date-time}
  value: 5
  causes: []
- id: formatted-string-given-a-number
  schema: {type: string, format: date-time}
  value: 5
  causes:
  - {reason: FieldValueTypeInvalid, field: x,
     message: 'Invalid value: "int64": x in body must be of type date-time: "int64"'}
- id: int-or-string-integer-skips-the-pattern
  schema: {x-kubernetes-int-or-string: true, pattern: "^[0-9]+%$"}
  value: 5
  causes: []
- id: int-or-string-string-matches-the-pattern
  schema: {x-kubernetes-int-or-string: true, pattern: "^[0-9]+%$"}
  value: 5%
  causes: []
- id: int-or-string-pattern
  schema: {x-kubernetes-int-or-string: true, pattern: "^[0-9]+%$"}
  value: "5"
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: "Invalid value: \\"5\\": x in body should match '^[0-9]+%$'"}
- id: preserve-unknown-fields-validates-what-it-specifies
  schema:
    type: object
    x-kubernetes-preserve-unknown-fields: true
    properties: {a: {type: integer}}
  value: {a: s, b: {anything: true}}
  causes:
  - {reason: FieldValueTypeInvalid, field: x.a,
     message: 'Invalid value: "string": x.a in body must be of type integer: "string"'}
- {id: any-of, schema: {type: integer, anyOf: [{minimum: 10}, {maximum: 1}]}, value: 0, causes: []}
- id: any-of-fails
  schema: {type: integer, anyOf: [{minimum: 10}, {maximum: 1}]}
  value: 5
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: 'Invalid value: "": "x" must validate at least one schema (anyOf)'}
  - {reason: FieldValueInvalid, field: x,
     message: "Invalid value: 5: x in body should be greater than or equal to 10"}
- id: one-of-matching-twice
  schema: {type: integer, oneOf: [{minimum: 0}, {maximum: 10}]}
  value: 5
  causes:
  - reason: FieldValueInvalid
    field: x
    message: >-
      Invalid value: "": "x" must validate one and only one schema (oneOf).
      Found 2 valid alternatives
- id: all-of
  schema: {type: string, allOf: [{minLength: 2}, {maxLength: 3}]}
  value: a
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: 'Invalid value: "a": x in body should be at least 2 chars long'}
  - {reason: FieldValueInvalid, field: x,
     message: 'Invalid value: "": "x" must validate all the schemas (allOf)'}
- id: not
  schema: {type: string, not: {enum: [root]}}
  value: root
  causes:
  - {reason: FieldValueInvalid, field: x,
     message: 'Invalid value: "": "x" must not validate the schema (not)'}
- id: list-type-set
  schema: {type: array, x-kubernetes-list-type: set, items: {type: string}}
  value: [a, b, a, a]
  causes: [{reason: FieldValueDuplicate, field: "x[2]", message: 'Duplicate value: "a"'}]
- id: list-type-map
  schema: &listmap
    type: array
    x-kubernetes-list-type: map
    x-kubernetes-list-map-keys: [name]
    items: {type: object, required: [name], properties: {name: {type: string}, v: {type: integer}}}
  value: [{name: a, v: 1}, {name: b}, {name: a, v: 2}]
  causes:
  - {reason: FieldValueDuplicate, field: "x[2]",
     message: 'Duplicate value: map[string]interface {}{"name":"a"}'}
- id: list-type-map-in-a-map
  schema: {type: object, additionalProperties: *listmap}
  value: {k: [{name: a}, {name: a}]}
  causes:
  - {reason: FieldValueDuplicate, field: "x[k][1]",
     message: 'Duplicate value: map[string]interface {}{"name":"a"}'}
- id: list-type-map-of-scalars
  schema: *listmap
  value: [{name: a}, 7]
  causes:
  - {reason: FieldValueTypeInvalid, field: "x[1]",
     message: 'Invalid value: "integer": x[1] in body must be of type object: "integer"'}
  - {reason: FieldValueInvalid, field: "x[1]",
     message: "Invalid value: 7: must be an object for an array of list-type map"}
""",
    "schema",
    "value",
    "causes",
)


@pytest.mark.parametrize(("schema", "value", "expected"), KEYWORDS)
def test_validate_keyword(schema: dict[str, Any], value: Any, expected: list[Cause]) -> None:
    """Each keyword on field `x` of an object, so that messages carry a path."""
    assert validate({"x": value}, {"type": "object", "properties": {"x": schema}}) == expected


@pytest.mark.parametrize("path", ["spec.domain.devices.disks[0].disk.bus", "spec.volumes[0]"])
def test_validate_survives_deep_values(path: str) -> None:
    obj = put(manifest(VMI_MANIFEST), path, nested_lists(3000, "bottom"))
    assert validate(obj, VMI)[0].field == path


def test_list_set_survives_deep_values() -> None:
    deep = nested_lists(3000, "bottom")
    items = {"type": "array", "items": {"type": "array"}}
    schema = {"type": "object", "properties": {"s": {**items, "x-kubernetes-list-type": "set"}}}
    [duplicate] = validate({"s": [deep, deep]}, schema)
    assert duplicate.field == "s[1]"
    assert duplicate.message.startswith("Duplicate value: []interface {}{[]interface {}{")
    assert "{...}" in duplicate.message
