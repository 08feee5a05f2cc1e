"""The committed CRDs are what kvd/api renders, structural, and agree with the parser."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kvd.api import codec, crds, kinds, vmi
from kvd.api.fields import optional
from tests.api.conftest import MANIFESTS, manifest
from tests.drift import diff_trees

COMMITTED = Path(__file__).parents[2] / "charts" / "kvd" / "crds"


def _committed(kind: kinds.Kind) -> dict[str, Any]:
    path = COMMITTED / f"{kind.plural}.kubevirt.io.yaml"
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]


def test_committed_crds_match_the_types(tmp_path: Path) -> None:
    crds.write(tmp_path)
    differences = diff_trees(COMMITTED, tmp_path)
    assert not differences, f"CRDs are stale, run `make crds`: {differences}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChangedStatus(vmi.VirtualMachineInstanceStatus):
    launcher_version: str | None = optional("A field someone added.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChangedVMI(vmi.VirtualMachineInstance):
    status: ChangedStatus | None = optional("What the VM is; written by kvd.")


def test_drift_check_sees_a_changed_type(tmp_path: Path) -> None:
    """A field added to a type without `make crds` must show up as drift."""

    changed = dataclasses.replace(kinds.VMI, cls=ChangedVMI)
    crds.write(tmp_path)
    (tmp_path / f"{changed.plural}.kubevirt.io.yaml").write_text(crds.render(changed))
    assert diff_trees(COMMITTED, tmp_path) == [
        "virtualmachineinstances.kubevirt.io.yaml: contents differ"
    ]


@pytest.mark.parametrize("kind", list(kinds.KINDS.values()), ids=lambda k: k.kind)
def test_names_versions_and_categories(kind: kinds.Kind) -> None:
    crd = _committed(kind)
    assert crd["metadata"]["name"] == f"{kind.plural}.kubevirt.io"
    spec = crd["spec"]
    assert spec["group"] == "kubevirt.io" and spec["scope"] == "Namespaced"
    assert set(spec["names"]["categories"]) == {"all", "kubevirt"}
    versions = {v["name"]: v for v in spec["versions"]}
    assert set(versions) == {"v1", "v1alpha3"}
    assert versions["v1"]["storage"] and not versions["v1alpha3"]["storage"]
    assert all(v["served"] for v in versions.values())
    # one schema for both versions: a v1alpha3 manifest is a v1 manifest
    assert versions["v1"]["schema"] == versions["v1alpha3"]["schema"]


@pytest.mark.parametrize(
    ("kind", "short_names", "columns", "subresources"),
    [
        pytest.param(
            kinds.VMI,
            ["vmi", "vmis"],
            ["Age", "Phase", "IP", "NodeName", "Ready"],
            None,
            id="vmi",
        ),
        pytest.param(kinds.VM, ["vm", "vms"], ["Age", "Status", "Ready"], {"status": {}}, id="vm"),
        pytest.param(
            kinds.VMIRS,
            ["vmirs", "vmirss"],
            ["Desired", "Current", "Ready", "Age"],
            {
                "status": {},
                "scale": {
                    "specReplicasPath": ".spec.replicas",
                    "statusReplicasPath": ".status.replicas",
                    "labelSelectorPath": ".status.labelSelector",
                },
            },
            id="vmirs",
        ),
    ],
)
def test_printer_columns_and_subresources_as_kubevirt(
    kind: kinds.Kind, short_names: list[str], columns: list[str], subresources: Any
) -> None:
    crd = _committed(kind)
    assert crd["spec"]["names"]["shortNames"] == short_names
    v1 = crd["spec"]["versions"][0]
    assert [c["name"] for c in v1["additionalPrinterColumns"]] == columns
    assert v1.get("subresources") == subresources


def _structural_problems(node: dict[str, Any], path: str) -> list[str]:
    """Kubernetes' structural-schema rules that a generated schema could break."""
    problems = []
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    if "type" not in node and not int_or_string and not preserve:
        problems.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties together")
    for name, child in node.get("properties", {}).items():
        problems += _structural_problems(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        problems += _structural_problems(node["additionalProperties"], f"{path}[*]")
    if "items" in node:
        problems += _structural_problems(node["items"], f"{path}[]")
    return problems


@pytest.mark.parametrize("kind", list(kinds.KINDS.values()), ids=lambda k: k.kind)
def test_schemas_are_structural(kind: kinds.Kind) -> None:
    schema = _committed(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert _structural_problems(schema, "") == []


def _strict(schema: Any) -> Any:
    """The CRD schema as JSON Schema that refuses unknown fields, which pruning would drop."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes")}
        out.pop("format", None)
        if "properties" in out and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@pytest.mark.parametrize("name", sorted(p.name for p in MANIFESTS.glob("*.yaml")))
def test_crd_schema_accepts_every_valid_manifest_as_written_and_defaulted(name: str) -> None:
    """What kvd accepts, the API server must keep whole (no field pruned, none refused)."""
    doc = manifest(name)
    kind = kinds.KINDS[doc["kind"]]
    schema = _strict(_committed(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    jsonschema.validate(doc, schema)
    jsonschema.validate(codec.encode(kinds.load(doc)), schema)


def test_crd_schema_refuses_what_the_parser_refuses() -> None:
    schema = _committed(kinds.VMI)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for field_path, value in [
        (("spec", "domain", "devices", "disks", 0, "disk", "bus"), "ide"),
        (("spec", "domain", "cpu", "cores"), 0),
        (("spec", "domain", "resources", "requests", "memory"), "lots"),
        (("spec", "volumes", 0, "name"), "Not_A_Name"),
    ]:
        doc = manifest("vmi-cloudinit-emptydisk.yaml")
        node = doc
        for key in field_path[:-1]:
            node = node[key]
        node[field_path[-1]] = value
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, _strict(schema))


def test_an_object_path_is_the_one_the_crd_serves() -> None:
    vmi = kinds.VMI
    assert (
        vmi.path("ns")
        == f"/apis/kubevirt.io/v1/namespaces/ns/{crds.crd(vmi)['spec']['names']['plural']}"
    )
    assert vmi.path("ns", "a") == "/apis/kubevirt.io/v1/namespaces/ns/virtualmachineinstances/a"
