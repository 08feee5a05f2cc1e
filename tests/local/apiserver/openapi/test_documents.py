"""The OpenAPI documents built from the registry: Kubernetes' definitions for built-in kinds,
the CRD's own schema for custom resources, in 2.0 and 3.0 form."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kvd.local.apiserver import openapi
from kvd.local.apiserver.openapi import documents
from kvd.local.apiserver.registry import Registry, from_crd

SMP = "application/strategic-merge-patch+json"
CRDS = Path(__file__).resolve().parents[4] / "charts" / "kvd" / "crds"


@pytest.fixture(scope="module")
def registry() -> Registry:
    r = Registry()
    for path in sorted(CRDS.glob("*.yaml")):
        r.add_crd(from_crd(yaml.safe_load(path.read_text())))
    return r


def test_every_served_builtin_kind_has_kubernetes_definition(registry: Registry) -> None:
    defs = openapi.load()
    missing = [
        (r.group, r.kind)
        for r in registry.all()
        if r.crd_name is None and defs.name_of(r.group, r.storage_version, r.kind) is None
    ]
    assert missing == []
    assert defs.origin["package"] == "kubernetes-validate" and defs.origin["version"] == "1.37.0"


def test_v3_core_document(registry: Registry) -> None:
    doc = documents.v3_document(registry, "", "v1", openapi.load())
    assert doc is not None
    schemas = doc["components"]["schemas"]
    assert schemas["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "Pod", "version": "v1"}
    ]
    env = schemas["io.k8s.api.core.v1.Container"]["properties"]["env"]
    assert env["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.EnvVar"}
    assert (env["x-kubernetes-patch-strategy"], env["x-kubernetes-patch-merge-key"]) == (
        "merge",
        "name",
    )
    # everything referenced is there
    refs = {v for v in _refs(doc["components"]) if v.startswith("#/components/schemas/")}
    assert {r.removeprefix("#/components/schemas/") for r in refs} <= set(schemas)
    item = doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]
    assert SMP in item["patch"]["requestBody"]["content"]
    assert item["patch"]["x-kubernetes-group-version-kind"]["kind"] == "ConfigMap"
    assert {p["name"] for p in item["parameters"]} == {"name", "namespace"}


def test_custom_resources_in_both_versions(registry: Registry) -> None:
    defs = openapi.load()
    v3 = documents.v3_document(registry, "kubevirt.io", "v1", defs)
    assert v3 is not None
    patch = v3["paths"]["/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachines/{name}"]
    assert SMP not in patch["patch"]["requestBody"]["content"]
    vm3 = v3["components"]["schemas"]["io.kubevirt.v1.VirtualMachine"]
    assert vm3["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    v2 = documents.v2_document(registry, defs)
    vm2 = v2["definitions"]["io.kubevirt.v1.VirtualMachine"]
    assert vm2["properties"]["metadata"]["$ref"] == (
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    )
    assert not {"nullable", "anyOf", "oneOf", "not"} & set(_keys(vm2))
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in v2["definitions"]
    assert documents.v3_document(registry, "nothing.example.com", "v1", defs) is None


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _keys(node: object) -> set[str]:
    if isinstance(node, dict):
        keys = set(node) - {"properties"}
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for sub in value.values():
                    keys |= _keys(sub)
            else:
                keys |= _keys(value)
        return keys
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()
