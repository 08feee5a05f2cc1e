"""The CRD schema engine against kvd's own CRDs and manifests, keyword by keyword, in kube's words:
what `kubectl apply` prints against a real cluster is what it must print against kvd.

The tables are YAML, so that kube's messages (quotes, backslashes and all) read as kube prints
them; each row becomes a `pytest.param` with its `id`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvd.local.apiserver.schema import (
    CEL_UNSUPPORTED,
    Cause,
    apply_defaults,
    check_structural,
    openapi_v3,
    prune,
    structural_causes,
    validate,
)
from kvd.local.apiserver.schema import values as schema_values

REPO = Path(__file__).resolve().parents[4]
CRD_FILES = sorted((REPO / "charts" / "kvd" / "crds").glob("*.yaml"))
MANIFESTS = REPO / "tests" / "api" / "manifests"
VMI_MANIFEST = "vmi-cloudinit-emptydisk.yaml"
DELETE = "<delete>"


def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in CRD_FILES:
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            out[crd["spec"]["names"]["kind"], version["name"]] = version["schema"][
                "openAPIV3Schema"
            ]
    return out


SCHEMAS = _schemas()
VMI = SCHEMAS["VirtualMachineInstance", "v1"]


def manifest(name: str) -> Any:
    return yaml.safe_load((MANIFESTS / name).read_text())


def schema_for(obj: dict[str, Any]) -> dict[str, Any]:
    return SCHEMAS[obj["kind"], obj["apiVersion"].split("/")[1]]


def pipeline(obj: Any, schema: dict[str, Any]) -> tuple[Any, list[str], list[Cause]]:
    """What the server does with a write: default, prune, validate."""
    pruned, unknown = prune(apply_defaults(obj, schema), schema)
    return pruned, unknown, validate(pruned, schema)


def _steps(path: str) -> list[str | int]:
    return [int(i) if i else key for key, i in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path)]


def put(obj: Any, path: str, value: Any) -> Any:
    """Set, or with DELETE remove, the value at a `spec.disks[0].name` path, making objects."""
    *parents, last = _steps(path)
    node = obj
    for step in parents:
        node = node.setdefault(step, {}) if isinstance(step, str) else node[step]
    if value == DELETE:
        del node[last]
    else:
        node[last] = value
    return obj


def get(obj: Any, path: str) -> Any:
    for step in _steps(path):
        obj = obj[step]
    return obj


def table(text: str, *fields: str) -> list[Any]:
    """Rows of a YAML table as pytest params of `fields`; `causes` rows become Causes."""
    params = []
    for row in yaml.safe_load(text):
        if "causes" in row:
            row["causes"] = [Cause(c["reason"], c["message"], c["field"]) for c in row["causes"]]
        params.append(pytest.param(*(row.get(f) for f in fields), id=row["id"]))
    return params


# -- kvd's own CRDs and manifests ----------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(SCHEMAS), ids=lambda k: f"{k[0]}-{k[1]}")
def test_kvd_crd_schemas_are_structural(key: tuple[str, str]) -> None:
    assert check_structural(SCHEMAS[key]) == []


@pytest.mark.parametrize("name", sorted(p.name for p in MANIFESTS.glob("*.yaml")))
def test_kvd_manifests_are_valid_and_unchanged(name: str) -> None:
    obj = manifest(name)
    assert pipeline(obj, schema_for(obj)) == (manifest(name), [], [])


QUANTITY = get(VMI, "properties.spec.properties.domain.properties.memory.properties.guest.pattern")
MUTATIONS = table(
    f"""
- id: minimum
  set: {{spec.domain.cpu.cores: 0}}
  causes:
  - reason: FieldValueInvalid
    field: spec.domain.cpu.cores
    message: >-
      Invalid value: 0: spec.domain.cpu.cores in body should be greater than or equal to 1
- id: integer-given-string
  set: {{spec.domain.cpu.cores: "2"}}
  causes:
  - reason: FieldValueTypeInvalid
    field: spec.domain.cpu.cores
    message: >-
      Invalid value: "string": spec.domain.cpu.cores in body must be of type integer: "string"
- id: whole-float-is-an-integer
  set: {{spec.domain.cpu.cores: 2.0}}
  causes: []
- id: int64-given-fraction  # `format: int64` makes kube name Go types, not JSON ones
  set: {{spec.domain.cpu.cores: 2.5}}
  causes:
  - reason: FieldValueTypeInvalid
    field: spec.domain.cpu.cores
    message: >-
      Invalid value: "float64": spec.domain.cpu.cores in body must be of type int64: "float64"
- id: enum
  set: {{"spec.domain.devices.disks[0].disk.bus": ide}}
  causes:
  - reason: FieldValueNotSupported
    field: spec.domain.devices.disks[0].disk.bus
    message: 'Unsupported value: "ide": supported values: "virtio", "sata", "scsi"'
- id: enum-empty-string
  set: {{spec.evictionStrategy: ""}}
  causes:
  - reason: FieldValueNotSupported
    field: spec.evictionStrategy
    message: >-
      Unsupported value: "": supported values: "None", "LiveMigrate",
      "LiveMigrateIfPossible", "External"
- id: vmirs-replicas-type
  manifest: vmirs.yaml
  set: {{spec.replicas: string}}
  causes:
  - reason: FieldValueTypeInvalid
    field: spec.replicas
    message: 'Invalid value: "string": spec.replicas in body must be of type integer: "string"'
- id: vmirs-replicas-negative
  manifest: vmirs.yaml
  set: {{spec.replicas: -1}}
  causes:
  - reason: FieldValueInvalid
    field: spec.replicas
    message: 'Invalid value: -1: spec.replicas in body should be greater than or equal to 0'
- id: pattern
  set: {{spec.domain.cpu.model: host model}}
  causes:
  - reason: FieldValueInvalid
    field: spec.domain.cpu.model
    message: >-
      Invalid value: "host model": spec.domain.cpu.model in body should match '^\\S+$'
- id: pattern-dollar-is-end-of-text-as-in-re2
  set: {{spec.domain.cpu.model: "host-model\\n"}}
  causes:
  - reason: FieldValueInvalid
    field: spec.domain.cpu.model
    message: >-
      Invalid value: "host-model\\n": spec.domain.cpu.model in body should match '^\\S+$'
- id: int-or-string-pattern
  set: {{spec.domain.memory.guest: 1Gb}}
  causes:
  - reason: FieldValueInvalid
    field: spec.domain.memory.guest
    message: >-
      Invalid value: "1Gb": spec.domain.memory.guest in body should match '{QUANTITY}'
- id: int-or-string-integer
  set: {{spec.domain.memory.guest: 1024}}
  causes: []
- id: int-or-string-given-boolean
  set: {{spec.domain.memory.guest: true}}
  causes:
  - reason: FieldValueTypeInvalid
    field: spec.domain.memory.guest
    message: >-
      Invalid value: "boolean": spec.domain.memory.guest in body must be of type
      integer,string: "boolean"
  - reason: FieldValueInvalid
    field: spec.domain.memory.guest
    message: >-
      Invalid value: "": "spec.domain.memory.guest" must validate at least one schema (anyOf)
  - reason: FieldValueTypeInvalid
    field: spec.domain.memory.guest
    message: >-
      Invalid value: "boolean": spec.domain.memory.guest in body must be of type
      integer: "boolean"
- id: maxLength
  set: {{spec.hostname: {"a" * 64}}}
  causes:
  - {{reason: FieldValueTooLong, field: spec.hostname,
     message: "Too long: may not be more than 63 bytes"}}
- id: maxLength-in-array
  set: {{"spec.domain.devices.disks[2].serial": {"s" * 21}}}
  causes:
  - {{reason: FieldValueTooLong, field: "spec.domain.devices.disks[2].serial",
     message: "Too long: may not be more than 20 bytes"}}
- id: required
  set: {{spec.domain: {DELETE}}}
  causes: [{{reason: FieldValueRequired, field: spec.domain, message: Required value}}]
- id: required-in-array
  set: {{"spec.volumes[0].name": {DELETE}}}
  causes: [{{reason: FieldValueRequired, field: "spec.volumes[0].name", message: Required value}}]
- id: maximum-deep-in-arrays
  set: {{"spec.domain.devices.interfaces[0].ports[0].port": 70000}}
  causes:
  - reason: FieldValueInvalid
    field: spec.domain.devices.interfaces[0].ports[0].port
    message: >-
      Invalid value: 70000: spec.domain.devices.interfaces[0].ports[0].port in body
      should be less than or equal to 65535
- id: object-given-string
  set: {{spec: x}}
  causes:
  - reason: FieldValueTypeInvalid
    field: spec
    message: 'Invalid value: "string": spec in body must be of type object: "string"'
- id: map-value
  set: {{spec.nodeSelector: {{zone: 1}}}}
  causes:
  - reason: FieldValueTypeInvalid
    field: spec.nodeSelector.zone
    message: >-
      Invalid value: "integer": spec.nodeSelector.zone in body must be of type string: "integer"
- id: vm-run-strategy
  manifest: vm-runstrategy.yaml
  set: {{spec.runStrategy: Sometimes}}
  causes:
  - reason: FieldValueNotSupported
    field: spec.runStrategy
    message: >-
      Unsupported value: "Sometimes": supported values: "Always", "RerunOnFailure",
      "Manual", "Halted", "Once"
- id: vm-template
  manifest: vm-runstrategy.yaml
  set: {{spec.template.spec.domain.cpu: {{cores: 0}}}}
  causes:
  - reason: FieldValueInvalid
    field: spec.template.spec.domain.cpu.cores
    message: >-
      Invalid value: 0: spec.template.spec.domain.cpu.cores in body should be
      greater than or equal to 1
- id: vm-data-volume-template
  manifest: vm-stopped.yaml
  set: {{"spec.dataVolumeTemplates[0].spec": {DELETE}}}
  causes:
  - {{reason: FieldValueRequired, field: "spec.dataVolumeTemplates[0].spec",
     message: Required value}}
""",
    "manifest",
    "set",
    "causes",
)


@pytest.mark.parametrize(("name", "changes", "expected"), MUTATIONS)
def test_mutated_manifest_gets_kubes_causes(
    name: str | None, changes: dict[str, Any], expected: list[Cause]
) -> None:
    obj = manifest(name or VMI_MANIFEST)
    for path, value in changes.items():
        put(obj, path, value)
    _result, unknown, causes = pipeline(obj, schema_for(obj))
    assert (unknown, causes) == ([], expected)


def test_null_for_a_non_nullable_field_is_dropped_before_validation() -> None:
    obj = put(manifest(VMI_MANIFEST), "spec.terminationGracePeriodSeconds", None)
    field = "spec.terminationGracePeriodSeconds"
    message = f'Invalid value: "null": {field} in body must be of type integer: "null"'
    assert validate(obj, VMI) == [Cause("FieldValueTypeInvalid", message, field)]
    result, _unknown, causes = pipeline(obj, VMI)
    assert "terminationGracePeriodSeconds" not in result["spec"]
    assert causes == []


def test_null_for_a_required_field_becomes_required() -> None:
    obj = put(manifest(VMI_MANIFEST), "spec.volumes[0].name", None)
    assert pipeline(obj, VMI)[2] == [
        Cause("FieldValueRequired", "Required value", "spec.volumes[0].name")
    ]


# -- pruning -------------------------------------------------------------------------------------

PRUNING = table(
    """
- {id: root, add: {foo: 1}, pruned: [foo]}
- {id: status, add: {status.foo: 1}, pruned: [status.foo]}
- {id: spec, add: {spec.foo: {bar: 1}}, pruned: [spec.foo]}
- id: in-array-item
  add: {"spec.domain.devices.disks[1].cdrom.foo": 1}
  pruned: ["spec.domain.devices.disks[1].cdrom.foo"]
- id: array-in-array
  add: {"spec.domain.devices.interfaces[0].ports[0].foo": 1}
  pruned: ["spec.domain.devices.interfaces[0].ports[0].foo"]
- id: object-with-empty-properties
  add: {"spec.domain.devices.interfaces[0].masquerade.foo": 1}
  pruned: ["spec.domain.devices.interfaces[0].masquerade.foo"]
- id: several-in-document-order
  add: {spec.foo: 1, spec.domain.bar: 2, baz: 3}
  pruned: [spec.domain.bar, spec.foo, baz]
- {id: map-keys-kept, add: {spec.nodeSelector.extra: x}, pruned: []}
- {id: quantity-map-keys-kept, add: {spec.domain.resources.requests.gpu: "1"}, pruned: []}
- id: preserve-unknown-affinity
  add: {spec.affinity: {podAffinity: {anything: [{at: all}]}}}
  pruned: []
- id: root-meta-kept-for-the-caller
  add: {metadata.foo: 1, metadata.labels.a: b, apiVersion: kubevirt.io/v1}
  pruned: []
- id: preserve-unknown-template-metadata
  manifest: vm-runstrategy.yaml
  add: {spec.template.metadata.annotations: {a: b}, spec.template.metadata.foo: 1}
  pruned: []
- id: vm-template-spec
  manifest: vm-runstrategy.yaml
  add: {spec.template.spec.foo: 1}
  pruned: [spec.template.spec.foo]
- id: vm-data-volume-template
  manifest: vm-stopped.yaml
  add: {"spec.dataVolumeTemplates[0].spec.storage": {x: 1}, "spec.dataVolumeTemplates[0].foo": 1}
  pruned: ["spec.dataVolumeTemplates[0].foo"]
""",
    "manifest",
    "add",
    "pruned",
)


@pytest.mark.parametrize(("name", "additions", "expected"), PRUNING)
def test_prune_unknown_fields(
    name: str | None, additions: dict[str, Any], expected: list[str]
) -> None:
    obj = manifest(name or VMI_MANIFEST)
    for path, value in additions.items():
        put(obj, path, value)
    before = yaml.safe_dump(obj)
    result, unknown = prune(obj, schema_for(obj))
    assert unknown == expected
    assert yaml.safe_dump(obj) == before, "prune must not change its input"
    for path, value in additions.items():
        if path in expected:
            with pytest.raises(KeyError):
                get(result, path)
        else:
            assert get(result, path) == value
    assert prune(result, schema_for(obj)) == (result, [])


EMBEDDING = yaml.safe_load(
    """
type: object
properties:
  template:
    type: object
    x-kubernetes-embedded-resource: true
    properties: {spec: {type: object, properties: {a: {type: string}}}}
  free:
    type: object
    x-kubernetes-preserve-unknown-fields: true
    properties: {known: {type: object, properties: {b: {type: string}}}}
  loose: {type: object, additionalProperties: true}
  closed: {type: object, additionalProperties: false}
"""
)
SYNTHETIC_PRUNING = table(
    """
- id: embedded-resource-keeps-type-and-object-meta
  obj: {template: {apiVersion: v1, kind: Pod, metadata: {any: 1}, spec: {a: x, b: 1}}}
  want: {template: {apiVersion: v1, kind: Pod, metadata: {any: 1}, spec: {a: x}}}
  pruned: [template.spec.b]
- id: preserve-unknown-still-prunes-specified-fields
  obj: {free: {anything: {x: 1}, known: {b: y, c: 2}}}
  want: {free: {anything: {x: 1}, known: {b: y}}}
  pruned: [free.known.c]
- id: boolean-additional-properties-keep-keys-but-empty-objects
  obj: {loose: {k: {nested: 1}, s: v, l: [{x: 1}, 2]}}
  want: {loose: {k: {}, s: v, l: [{}, 2]}}
  pruned: [loose.k.nested, "loose.l[0].x"]
- id: additional-properties-false-is-left-to-validation
  obj: {closed: {k: {nested: 1}}}
  want: {closed: {k: {}}}
  pruned: [closed.k.nested]
""",
    "obj",
    "want",
    "pruned",
)


@pytest.mark.parametrize(("obj", "expected", "unknown"), SYNTHETIC_PRUNING)
def test_prune_follows_kubes_algorithm(obj: Any, expected: Any, unknown: list[str]) -> None:
    assert prune(obj, EMBEDDING) == (expected, unknown)


def _nested_lists(depth: int, bottom: Any) -> Any:
    for _ in range(depth):
        bottom = [bottom]
    return bottom


def test_prune_and_default_survive_deep_nesting() -> None:
    obj = put(manifest(VMI_MANIFEST), "spec.volumes", [_nested_lists(3000, {"x": 1})])
    result, unknown = prune(apply_defaults(obj, VMI), VMI)
    assert len(unknown) == 1 and unknown[0].startswith("spec.volumes[0][0][0]")
    assert validate(result, VMI)[0].field == "spec.volumes[0]"


@pytest.mark.parametrize("path", ["spec.domain.devices.disks[0].disk.bus", "spec.volumes[0]"])
def test_validate_survives_deep_values(path: str) -> None:
    obj = put(manifest(VMI_MANIFEST), path, _nested_lists(3000, "bottom"))
    assert validate(obj, VMI)[0].field == path


def test_list_set_survives_deep_values() -> None:
    deep = _nested_lists(3000, "bottom")
    items = {"type": "array", "items": {"type": "array"}}
    schema = {"type": "object", "properties": {"s": {**items, "x-kubernetes-list-type": "set"}}}
    [duplicate] = validate({"s": [deep, deep]}, schema)
    assert duplicate.field == "s[1]"
    assert duplicate.message.startswith("Duplicate value: []interface {}{[]interface {}{")
    assert "{...}" in duplicate.message


# -- defaulting ----------------------------------------------------------------------------------

DEFAULTING = yaml.safe_load(
    """
type: object
properties:
  spec:
    type: object
    properties:
      replicas: {type: integer, default: 1}
      strategy:
        type: object
        properties:
          type: {type: string, default: Rolling}
          maxSurge: {type: integer, default: 1}
      policy: {type: object, default: {}, properties: {mode: {type: string, default: auto}}}
      ports:
        type: array
        items:
          type: object
          properties: {protocol: {type: string, default: TCP}, port: {type: integer}}
      labels: {type: object, additionalProperties: {type: string, default: none}}
      tags: {type: array, items: {type: string, default: t}}
      optional: {type: string, nullable: true, default: d}
      plain: {type: string}
      nullablePlain: {type: string, nullable: true}
"""
)
# What `spec: {}` becomes; each row lists the rest of its expected spec.
SPEC_DEFAULTS = {"replicas": 1, "policy": {"mode": "auto"}, "optional": "d"}
DEFAULTS = table(
    """
- {id: absent-parent-gets-nothing, obj: {}, want: {}}
- {id: defaulted-parent-gets-its-childrens-defaults, obj: {spec: {}}, want: {spec: {}}}
- id: present-object-gets-its-childrens-defaults
  obj: {spec: {strategy: {}}}
  want: {spec: {strategy: {type: Rolling, maxSurge: 1}}}
- id: set-values-win
  obj: {spec: {replicas: 3, policy: {mode: manual}}}
  want: {spec: {replicas: 3, policy: {mode: manual}}}
- {id: null-without-nullable-gets-the-default, obj: {spec: {replicas: null}}, want: {spec: {}}}
- {id: null-nullable-stays, obj: {spec: {optional: null}}, want: {spec: {optional: null}}}
- {id: null-without-default-is-dropped, obj: {spec: {plain: null}}, want: {spec: {}}}
- id: null-nullable-without-default-stays
  obj: {spec: {nullablePlain: null}}
  want: {spec: {nullablePlain: null}}
- id: array-items
  obj: {spec: {ports: [{port: 80}, {protocol: UDP}]}}
  want: {spec: {ports: [{port: 80, protocol: TCP}, {protocol: UDP}]}}
- id: map-values
  obj: {spec: {labels: {a: null, b: x}}}
  want: {spec: {labels: {a: none, b: x}}}
- {id: null-array-items, obj: {spec: {tags: [null, x]}}, want: {spec: {tags: [t, x]}}}
- {id: unknown-fields-left-to-pruning, obj: {spec: {unknown: null}}, want: {spec: {unknown: null}}}
""",
    "obj",
    "want",
)


@pytest.mark.parametrize(("obj", "expected"), DEFAULTS)
def test_apply_defaults(obj: Any, expected: Any) -> None:
    if "spec" in expected:
        expected["spec"] = {**SPEC_DEFAULTS, **expected["spec"]}
    before = yaml.safe_dump(obj)
    result = apply_defaults(obj, DEFAULTING)
    assert result == expected
    assert yaml.safe_dump(obj) == before, "apply_defaults must not change its input"
    assert apply_defaults(result, DEFAULTING) == result


def test_defaults_are_copies() -> None:
    first = apply_defaults({"spec": {}}, DEFAULTING)
    first["spec"]["policy"]["mode"] = "changed"
    assert apply_defaults({"spec": {}}, DEFAULTING)["spec"]["policy"] == {"mode": "auto"}
    assert get(DEFAULTING, "properties.spec.properties.policy.default") == {}


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


GO_FLOATS = [(1.0, "1"), (2.5, "2.5"), (-0.5, "-0.5"), (123456.0, "123456"), (1e6, "1e+06")]
GO_FLOATS += [(1.5e-7, "1.5e-07"), (0.0001, "0.0001"), (1e21, "1e+21"), (float("inf"), "+Inf")]


@pytest.mark.parametrize(("value", "printed"), GO_FLOATS, ids=[p for _, p in GO_FLOATS])
def test_numbers_print_as_go_prints_float64(value: float, printed: str) -> None:
    assert schema_values.go_float(value) == printed


# -- publishing ----------------------------------------------------------------------------------


def test_openapi_v3_publishes_the_crd_schema_with_kubes_metadata() -> None:
    before = yaml.safe_dump(VMI)
    published = openapi_v3(VMI, group_version_kind=("kubevirt.io", "v1", "VirtualMachineInstance"))
    assert yaml.safe_dump(VMI) == before, "openapi_v3 must not change its input"
    assert published["properties"]["spec"] == VMI["properties"]["spec"]
    assert published["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert published["properties"]["kind"]["type"] == "string"
    assert published["x-kubernetes-group-version-kind"] == [
        {"group": "kubevirt.io", "kind": "VirtualMachineInstance", "version": "v1"}
    ]


def test_openapi_v3_drops_what_a_structural_schema_does_not_carry() -> None:
    schema = yaml.safe_load(
        """
        type: object
        properties:
          a: {type: string, example: x, externalDocs: {url: u}, nullable: true}
          t: {type: object, x-kubernetes-embedded-resource: true,
              x-kubernetes-preserve-unknown-fields: true}
        """
    )
    published = openapi_v3(schema)
    assert published["properties"]["a"] == {"type": "string", "nullable": True}
    embedded = published["properties"]["t"]
    assert embedded["required"] == ["kind", "apiVersion"]
    assert set(embedded["properties"]) == {"apiVersion", "kind", "metadata"}


# -- robustness ----------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)
REASONS = {"FieldValueRequired", "FieldValueInvalid", "FieldValueTypeInvalid"}
REASONS |= {"FieldValueNotSupported", "FieldValueTooLong", "FieldValueTooMany"}
REASONS |= {"FieldValueDuplicate"}
SUBTREES = [
    *("spec", "spec.domain", "spec.domain.cpu", "spec.domain.memory.guest"),
    *("spec.domain.devices.disks", "spec.domain.devices.disks[0]", "spec.volumes[2].emptyDisk"),
    *("spec.domain.devices.interfaces[0].ports", "spec.affinity", "spec.nodeSelector"),
    *("metadata", "status"),
]


def _never_raises(obj: Any) -> None:
    pruned, unknown, causes = pipeline(obj, VMI)
    assert all(isinstance(path, str) for path in unknown)
    assert all(c.reason in REASONS and isinstance(c.field, str) for c in causes)
    assert prune(pruned, VMI) == (pruned, []), "pruning is idempotent"
    validate(obj, VMI)  # also straight from the decoder, nulls and unknown fields included


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_random_json_never_raises(data: Any) -> None:
    _never_raises(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SUBTREES), JSON)
def test_random_subtree_in_a_vmi_never_raises(path: str, data: Any) -> None:
    _never_raises(put(manifest(VMI_MANIFEST), path, data))
