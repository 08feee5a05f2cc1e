"""Which CRD schemas kube-apiserver accepts, and its words for those it refuses."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kvd.local.apiserver.schema import (
    CEL_UNSUPPORTED,
    Cause,
    check_structural,
    structural_causes,
)
from tests.local.apiserver.schema.cases import (
    REPO,
    put,
    table,
)

# -- structural schema checks --------------------------------------------------------------------

STRUCTURAL = table(
    f"""
- id: field-without-type
  schema: {{type: object, properties: {{spec: {{properties: {{}}}}}}}}
  errors:
  - >-
    openAPIV3Schema.properties[spec].type: Required value:
    must not be empty for specified object fields
- id: item-without-type
  schema: {{type: object, properties: {{xs: {{type: array, items: {{}}}}}}}}
  errors:
  - >-
    openAPIV3Schema.properties[xs].items.type: Required value:
    must not be empty for specified array items
- id: root-without-type
  schema: {{properties: {{}}}}
  errors: ["openAPIV3Schema.type: Required value: must not be empty at the root"]
- id: root-not-object
  schema: {{type: string}}
  errors: ['openAPIV3Schema.type: Invalid value: "string": must be object at the root']
- id: array-without-items
  schema: {{type: object, properties: {{xs: {{type: array}}}}}}
  errors: ["openAPIV3Schema.properties[xs].items: Required value: must be specified"]
- id: preserve-unknown-fields-needs-no-type
  schema: {{type: object, properties: {{free: {{x-kubernetes-preserve-unknown-fields: true}}}}}}
  errors: []
- id: int-or-string-may-type-its-any-of
  schema:
    type: object
    properties:
      q: {{x-kubernetes-int-or-string: true, anyOf: [{{type: integer}}, {{type: string}}]}}
  errors: []
- id: int-or-string-and-preserve-unknown-fields
  schema:
    type: object
    properties:
      q: {{x-kubernetes-int-or-string: true, x-kubernetes-preserve-unknown-fields: true}}
  errors:
  - >-
    openAPIV3Schema.properties[q].x-kubernetes-preserve-unknown-fields: Invalid value: true:
    must be false if x-kubernetes-int-or-string is true
- id: additional-properties-with-properties
  schema:
    type: object
    properties:
      m:
        type: object
        properties: {{a: {{type: string}}}}
        additionalProperties: {{type: string}}
  errors:
  - >-
    openAPIV3Schema.properties[m].additionalProperties: Forbidden:
    additionalProperties and properties are mutual exclusive
- id: additional-properties-at-root
  schema: {{type: object, additionalProperties: {{type: string}}}}
  errors: ["openAPIV3Schema.additionalProperties: Forbidden: must not be used at the root"]
- id: metadata-plain
  schema: {{type: object, properties: {{metadata: {{type: object}}}}}}
  errors: []
- id: metadata-restricting-name-only
  schema:
    type: object
    properties: {{metadata: {{type: object, properties: {{name: {{type: string, maxLength: 9}}}}}}}}
  errors: []
- id: metadata-restricting-more
  schema:
    type: object
    properties: {{metadata: {{type: object, properties: {{labels: {{type: object}}}}}}}}
  errors:
  - >-
    openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than
    name and generateName, but metadata is implicitly specified
- id: metadata-default
  schema: {{type: object, properties: {{metadata: {{type: object, default: {{name: x}}}}}}}}
  errors:
  - >-
    openAPIV3Schema.properties[metadata].default: Forbidden:
    must not be set in top-level metadata
- id: any-of-sets-type-and-description
  schema:
    type: object
    properties: {{a: {{type: string, anyOf: [{{type: string, description: x}}]}}}}
  errors:
  - >-
    openAPIV3Schema.properties[a].anyOf[0].description: Forbidden:
    must be empty to be structural
  - "openAPIV3Schema.properties[a].anyOf[0].type: Forbidden: must be empty to be structural"
- id: all-of-sets-default-and-nullable
  schema:
    type: object
    properties: {{a: {{type: string, allOf: [{{default: x, nullable: true}}]}}}}
  errors:
  - >-
    openAPIV3Schema.properties[a].allOf[0].default: Forbidden:
    must be undefined to be structural
  - >-
    openAPIV3Schema.properties[a].allOf[0].nullable: Forbidden:
    must be false to be structural
- id: value-validation-names-an-unspecified-field
  schema:
    type: object
    properties: {{a: {{type: string}}}}
    anyOf: [{{properties: {{b: {{minLength: 1}}}}}}]
  errors:
  - >-
    openAPIV3Schema.properties[b]: Required value:
    because it is defined in openAPIV3Schema.anyOf[0].properties[b]
- id: metadata-in-a-value-validation
  schema:
    type: object
    properties: {{metadata: {{type: object}}}}
    not: {{properties: {{metadata: {{}}}}}}
  errors:
  - >-
    openAPIV3Schema.not.properties[metadata]: Forbidden:
    must not be specified in a nested context
- id: embedded-resource-without-properties
  schema:
    type: object
    properties: {{t: {{type: object, x-kubernetes-embedded-resource: true}}}}
  errors:
  - >-
    openAPIV3Schema.properties[t].properties: Required value: must not be empty if
    x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields
- id: embedded-resource-kind-not-a-string
  schema:
    type: object
    properties:
      t:
        type: object
        x-kubernetes-embedded-resource: true
        properties: {{kind: {{type: integer}}}}
  errors:
  - 'openAPIV3Schema.properties[t].properties[kind].type: Invalid value: "integer": must be string'
- id: cel-refused
  schema:
    type: object
    properties: {{spec: {{type: object, x-kubernetes-validations: [{{rule: self.a > 0}}]}}}}
  errors:
  - "openAPIV3Schema.properties[spec].x-kubernetes-validations: Forbidden: {CEL_UNSUPPORTED}"
- id: unique-items
  schema:
    type: object
    properties: {{xs: {{type: array, items: {{type: string}}, uniqueItems: true}}}}
  errors:
  - >-
    openAPIV3Schema.properties[xs].uniqueItems: Forbidden:
    uniqueItems cannot be set to true since the runtime complexity becomes quadratic
- id: ref
  schema: {{type: object, properties: {{r: {{type: object, $ref: "#/definitions/x"}}}}}}
  errors: ["openAPIV3Schema.properties[r].$ref: Forbidden: $ref is not supported"]
- id: type-null
  schema: {{type: object, properties: {{n: {{type: "null"}}}}}}
  errors:
  - >-
    openAPIV3Schema.properties[n].type: Unsupported value: "null": supported values:
    "array", "boolean", "integer", "number", "object", "string"
  - >-
    openAPIV3Schema.properties[n].type: Forbidden:
    type cannot be set to null, use nullable as an alternative
- id: preserve-unknown-fields-false
  schema:
    type: object
    properties: {{o: {{type: object, x-kubernetes-preserve-unknown-fields: false}}}}
  errors:
  - >-
    openAPIV3Schema.properties[o].x-kubernetes-preserve-unknown-fields: Invalid value: false:
    must be true or undefined
- id: list-map-without-keys
  schema:
    type: object
    properties: {{xs: {{type: array, x-kubernetes-list-type: map, items: {{type: string}}}}}}
  errors:
  - >-
    openAPIV3Schema.properties[xs].x-kubernetes-list-map-keys: Required value:
    must not be empty if x-kubernetes-list-type is map
  - >-
    openAPIV3Schema.properties[xs].items.type: Invalid value: "string":
    must be object if parent array's x-kubernetes-list-type is map
- id: list-map-key-not-an-item-property
  schema:
    type: object
    properties:
      xs:
        type: array
        x-kubernetes-list-type: map
        x-kubernetes-list-map-keys: [name, port]
        items: {{type: object, required: [name], properties: {{name: {{type: string}}}}}}
  errors:
  - >-
    openAPIV3Schema.properties[xs].x-kubernetes-list-map-keys:
    Invalid value: []string{{"name", "port"}}: entries must all be names of item properties
- id: list-type-on-a-string
  schema: {{type: object, properties: {{s: {{type: string, x-kubernetes-list-type: set}}}}}}
  errors:
  - >-
    openAPIV3Schema.properties[s].type: Invalid value: "string":
    must be array if x-kubernetes-list-type is specified
- id: lookahead-is-not-re2
  schema: {{type: object, properties: {{s: {{type: string, pattern: "^a(?=b)"}}}}}}
  errors:
  - >-
    openAPIV3Schema.properties[s].pattern: Invalid value: "^a(?=b)": must be a valid regular
    expression, but isn't: error parsing regexp: invalid or unsupported Perl syntax: `(?=`
- id: default-of-the-wrong-type
  schema: {{type: object, properties: {{n: {{type: integer, default: x}}}}}}
  errors:
  - >-
    openAPIV3Schema.properties[n].default: Invalid value: "string":
    in body must be of type integer: "string"
- id: default-with-unknown-fields
  schema:
    type: object
    properties:
      o: {{type: object, properties: {{b: {{type: string}}}}, default: {{b: x, c: 1}}}}
  errors:
  - >-
    openAPIV3Schema.properties[o].default:
    Invalid value: map[string]interface {{}}{{"b":"x", "c":1}}: must not have unknown fields
- id: default-breaking-a-nested-minimum
  schema:
    type: object
    properties:
      o: {{type: object, properties: {{n: {{type: integer, minimum: 1}}}}, default: {{n: 0}}}}
  errors:
  - >-
    openAPIV3Schema.properties[o].default.n: Invalid value: 0:
    n in body should be greater than or equal to 1
- id: malformed-keyword
  schema: {{type: object, properties: {{a: {{type: string, maxLength: "5"}}}}}}
  errors: ['openAPIV3Schema.properties[a].maxLength: Invalid value: "5": must be an integer']
- id: missing
  schema: null
  errors: ["openAPIV3Schema: Required value: schemas are required"]
""",
    "schema",
    "errors",
)


@pytest.mark.parametrize(("schema", "expected"), STRUCTURAL)
def test_check_structural(schema: Any, expected: list[str]) -> None:
    assert check_structural(schema) == expected


def test_check_structural_prefixes_the_callers_path() -> None:
    schema = {"type": "object", "properties": {"spec": {"properties": {}}}}
    assert check_structural(schema, path="spec.versions[0].schema.openAPIV3Schema") == [
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: "
        "must not be empty for specified object fields"
    ]


def test_structural_causes_are_kubes_crd_causes() -> None:
    schema = {"type": "object", "properties": {"spec": {"properties": {}}, "n": {"type": "null"}}}
    path = "spec.versions[0].schema.openAPIV3Schema"
    assert structural_causes(schema, path=path) == [
        Cause(
            "FieldValueRequired",
            "Required value: must not be empty for specified object fields",
            f"{path}.properties[spec].type",
        ),
        Cause(
            "FieldValueNotSupported",
            'Unsupported value: "null": supported values: "array", "boolean", "integer", '
            '"number", "object", "string"',
            f"{path}.properties[n].type",
        ),
        Cause(
            "FieldValueForbidden",
            "Forbidden: type cannot be set to null, use nullable as an alternative",
            f"{path}.properties[n].type",
        ),
    ]


def test_cel_anywhere_refuses_a_kvd_crd() -> None:
    crd = yaml.safe_load((REPO / "charts/kvd/crds/virtualmachines.kubevirt.io.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    put(schema, "properties.spec.properties.running.x-kubernetes-validations", [{"rule": "self"}])
    assert check_structural(schema) == [
        "openAPIV3Schema.properties[spec].properties[running].x-kubernetes-validations: "
        f"Forbidden: {CEL_UNSUPPORTED}"
    ]
