"""What kvd does not have yet is refused by name: the field, and the KubeVirt feature behind it."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from kvd.api import fields, kinds, meta, unsupported, vm, vmi
from kvd.api.errors import ValidationError
from tests.api.conftest import manifest

CLASSES = {
    name: cls
    for module in (vmi, vm, meta)
    for name, cls in inspect.getmembers(module, inspect.isclass)
    if dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__
}


def _errors(doc: object) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        kinds.load(doc)
    return [str(e) for e in raised.value.errors]


def _vmi() -> dict[str, Any]:
    return manifest("vmi-cloudinit-emptydisk.yaml")  # type: ignore[no-any-return]


@pytest.mark.parametrize(("class_name", "wire"), sorted(unsupported.FIELDS))
def test_each_entry_names_a_field_kvd_does_not_have(class_name: str, wire: str) -> None:
    """An entry whose field kvd has since implemented, or whose class was renamed, is dead."""
    assert class_name in CLASSES, f"no kvd.api class {class_name}"
    declared = {fields.wire_name(f) for f in dataclasses.fields(CLASSES[class_name])}
    assert wire not in declared, f"{class_name}.{wire} is implemented now: drop the entry"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        pytest.param(
            ("spec", "domain", "devices", "gpus"),
            [{"name": "gpu1", "deviceName": "nvidia.com/GP102GL_Tesla_P40"}],
            "spec.domain.devices.gpus: field not supported by kvd yet (GPU passthrough)",
            id="kubevirt-feature",
        ),
        pytest.param(
            ("spec", "domain", "devices", "gpuz"),
            [],
            "spec.domain.devices.gpuz: field not supported by kvd",
            id="unknown-field",
        ),
        pytest.param(
            ("spec", "domain", "cpu", "dedicatedCpuPlacement"),
            True,
            "spec.domain.cpu.dedicatedCpuPlacement: field not supported by kvd yet "
            "(dedicated CPU placement)",
            id="nested",
        ),
    ],
)
def test_an_unsupported_field_is_named_with_its_feature(
    path: tuple[str, ...], value: Any, expected: str
) -> None:
    doc = _vmi()
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    assert _errors(doc) == [expected]


def test_an_unsupported_choice_is_the_only_error() -> None:
    """`multus:` instead of `pod:` is one mistake, not also a network "without a source"."""
    doc = _vmi()
    doc["spec"]["networks"][0] = {"name": doc["spec"]["networks"][0]["name"], "multus": {}}
    assert _errors(doc) == [
        "spec.networks[0].multus: field not supported by kvd yet (Multus secondary networks)"
    ]


def test_a_missing_choice_is_still_an_error() -> None:
    doc = _vmi()
    doc["spec"]["networks"][0] = {"name": doc["spec"]["networks"][0]["name"]}
    assert _errors(doc) == ["spec.networks[0]: must have one of pod"]


@pytest.mark.parametrize(
    ("kind", "feature"),
    [
        pytest.param("VirtualMachinePool", "VM pools", id="pool"),
        pytest.param("VirtualMachineInstanceMigration", "live migration", id="migration"),
        pytest.param("VirtualMachineInstancetype", "instance types", id="instancetype"),
    ],
)
def test_a_kubevirt_kind_kvd_does_not_serve_is_named(kind: str, feature: str) -> None:
    (error,) = _errors({"apiVersion": "kubevirt.io/v1", "kind": kind})
    assert error.startswith(f'kind: Unsupported value: "{kind}": not supported by kvd yet ')
    assert f"({feature})" in error
    assert error.endswith(
        'supported values: "VirtualMachineInstance", "VirtualMachine", '
        '"VirtualMachineInstanceReplicaSet"'
    )


def test_any_other_kind_is_just_unsupported() -> None:
    (error,) = _errors({"apiVersion": "v1", "kind": "Pod"})
    assert error.startswith('kind: Unsupported value: "Pod": supported values: ')


HOOKS = "hooks.kubevirt.io/hookSidecars"


def test_a_hook_sidecar_is_refused_not_ignored() -> None:
    doc = _vmi()
    doc["metadata"]["annotations"] = {HOOKS: '[{"image": "x"}]', "note": "kept"}
    assert _errors(doc) == [
        f"metadata.annotations[{HOOKS}]: annotation not supported by kvd yet (hook sidecars)"
    ]


@pytest.mark.parametrize("name", ["vm-runstrategy.yaml", "vmirs.yaml"])
def test_a_hook_sidecar_in_a_template_is_refused(name: str) -> None:
    doc = manifest(name)
    doc["spec"]["template"].setdefault("metadata", {})["annotations"] = {HOOKS: "[]"}
    assert _errors(doc) == [
        f"spec.template.metadata.annotations[{HOOKS}]: annotation not supported by kvd yet "
        "(hook sidecars)"
    ]


def test_each_declared_refusal_names_a_field_kvd_has() -> None:
    """These are declared (the CRD carries them) and refused by validation: an entry whose
    field was dropped from the types would refuse nothing. (A loop, not a parametrization:
    the table may be empty.)"""
    for class_name, wire in sorted(unsupported.DECLARED_NOT_SUPPORTED):
        assert class_name in CLASSES, f"no kvd.api class {class_name}"
        declared = {fields.wire_name(f) for f in dataclasses.fields(CLASSES[class_name])}
        assert wire in declared, f"{class_name}.{wire} is not declared: move it to FIELDS"


def test_kubevirts_datavolume_example_loads() -> None:
    doc = manifest("kubevirt-examples/vm-alpine-datavolume.yaml")
    loaded = kinds.load(doc)
    assert isinstance(loaded, vm.VirtualMachine)
    assert (loaded.spec.data_volume_templates[0].metadata or {})["name"] == "alpine-dv"


def test_a_data_volume_template_without_a_name_is_refused() -> None:
    doc = manifest("kubevirt-examples/vm-alpine-datavolume.yaml")
    doc["spec"]["dataVolumeTemplates"][0]["metadata"] = {}
    assert _errors(doc) == ["spec.dataVolumeTemplates[0]: metadata.name is required"]
