"""The CRD schema engine against kvd's own CRDs and manifests, in kube's words: what
`kubectl apply` prints against a real cluster is what it must print against kvd. The engine's
steps are tested one module at a time beside this file.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvd.local.apiserver.schema import (
    Cause,
    check_structural,
    prune,
    validate,
)
from tests.local.apiserver.schema.cases import (
    DELETE,
    MANIFESTS,
    SCHEMAS,
    VMI,
    VMI_MANIFEST,
    get,
    manifest,
    pipeline,
    put,
    schema_for,
    table,
)

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
    message: 'Unsupported value: "ide": supported values: "virtio", "sata", "scsi", ""'
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
      Invalid value: "host model": spec.domain.cpu.model in body should match '^$|^\\S+$'
- id: pattern-dollar-is-end-of-text-as-in-re2
  set: {{spec.domain.cpu.model: "host-model\\n"}}
  causes:
  - reason: FieldValueInvalid
    field: spec.domain.cpu.model
    message: >-
      Invalid value: "host-model\\n": spec.domain.cpu.model in body should match '^$|^\\S+$'
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
  manifest: kubevirt-examples/vm-alpine-datavolume.yaml
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
