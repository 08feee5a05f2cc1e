"""Schemas as kube-apiserver publishes them under /openapi/v3."""

from __future__ import annotations

import yaml

from kvd.local.apiserver.schema import (
    openapi_v3,
)
from tests.local.apiserver.schema.cases import (
    VMI,
)

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
