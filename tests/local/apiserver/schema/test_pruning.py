"""Pruning unknown fields, as apiextensions does it, quirks included."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kvd.local.apiserver.schema import (
    apply_defaults,
    prune,
    validate,
)
from tests.local.apiserver.schema.cases import (
    VMI,
    VMI_MANIFEST,
    get,
    manifest,
    nested_lists,
    put,
    schema_for,
    table,
)

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
  manifest: kubevirt-examples/vm-alpine-datavolume.yaml
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


def test_prune_and_default_survive_deep_nesting() -> None:
    obj = put(manifest(VMI_MANIFEST), "spec.volumes", [nested_lists(3000, {"x": 1})])
    result, unknown = prune(apply_defaults(obj, VMI), VMI)
    assert len(unknown) == 1 and unknown[0].startswith("spec.volumes[0][0][0]")
    assert validate(result, VMI)[0].field == "spec.volumes[0]"
