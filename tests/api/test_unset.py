"""`null` and `""` mean unset, as KubeVirt reads them; what they leave unset gets its default."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kvd.api import codec, kinds, openapi
from kvd.api import vm as vmtypes
from kvd.api import vmi as vmitypes
from kvd.api.errors import ValidationError
from tests.api.conftest import manifest


def _vmi(**spec_changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = manifest("vmi-containerdisk.yaml")
    doc["spec"].update(spec_changes)
    return doc


def _vm_with_run_strategy(strategy: str) -> dict[str, Any]:
    doc: dict[str, Any] = manifest("vm-runstrategy.yaml")
    doc["spec"]["runStrategy"] = strategy
    return doc


def _load_vmi(doc: dict[str, Any]) -> vmitypes.VirtualMachineInstance:
    obj = kinds.load(doc)
    assert isinstance(obj, vmitypes.VirtualMachineInstance)
    return obj


def _errors(doc: object) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        kinds.load(doc)
    return [str(e) for e in raised.value.errors]


def test_an_empty_machine_type_is_the_default_machine() -> None:
    """What KubeVirt's generator writes for an unset Machine.Type (`json:"type"`, no omitempty)."""
    doc = _vmi()
    doc["spec"]["domain"]["machine"] = {"type": ""}
    assert _load_vmi(doc).spec.domain.machine == vmitypes.Machine(type="q35")


@pytest.mark.parametrize(
    ("where", "value"),
    [
        pytest.param(("domain", "cpu"), {"model": ""}, id="cpu-model"),
        pytest.param(("domain", "firmware"), {"serial": "", "uuid": ""}, id="firmware"),
        pytest.param(("hostname",), "", id="hostname"),
        pytest.param(("subdomain",), "", id="subdomain"),
    ],
)
def test_empty_strings_are_unset(where: tuple[str, ...], value: Any) -> None:
    doc = _vmi()
    node = doc["spec"]
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    spec = _load_vmi(doc).spec
    assert spec.hostname is None and spec.subdomain is None
    firmware = spec.domain.firmware or vmitypes.Firmware()
    assert (firmware.serial, firmware.uuid) == (None, None)
    assert spec.domain.cpu is not None and spec.domain.cpu.model is None


def test_an_empty_enum_value_gets_the_default() -> None:
    doc = _vmi()
    doc["spec"]["domain"]["devices"]["disks"][0]["disk"]["bus"] = ""
    doc["spec"]["volumes"][0]["containerDisk"]["imagePullPolicy"] = ""
    spec = _load_vmi(doc).spec
    disk = spec.domain.devices.disks[0].disk
    assert disk is not None and disk.bus is not None and disk.bus != ""
    assert spec.volumes[0].container_disk is not None
    assert spec.volumes[0].container_disk.image_pull_policy is None


@pytest.mark.parametrize(
    "field",
    ["machine", "firmware", "cpu", "memory", "features", "devices"],
)
def test_null_is_unset(field: str) -> None:
    doc = _vmi()
    doc["spec"]["domain"][field] = None
    doc["spec"]["networks"] = None
    doc["metadata"]["annotations"] = None
    spec = _load_vmi(doc).spec
    assert spec.domain.machine == vmitypes.Machine(type="q35")
    assert [n.name for n in spec.networks] == ["default"]  # the default pod network


def test_a_required_field_given_null_is_missing() -> None:
    doc = _vmi()
    doc["spec"]["volumes"][0]["containerDisk"]["image"] = None
    assert _errors(doc) == ["spec.volumes[0].containerDisk.image: Required value"]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param(
            _vmi(evictionStrategy=""),
            'spec.evictionStrategy: Unsupported value: "": supported values:',
            id="eviction-strategy",
        ),
        pytest.param(
            _vm_with_run_strategy(""),
            'spec.runStrategy: Unsupported value: "": supported values:',
            id="run-strategy",
        ),
    ],
)
def test_empty_is_a_value_where_kubevirt_has_a_pointer(doc: Any, expected: str) -> None:
    """KubeVirt's `*EvictionStrategy`/`*RunStrategy`: `""` is set, and not a valid value."""
    (error,) = _errors(doc)
    assert error.startswith(expected)


def test_the_schema_lets_empty_strings_through_where_they_mean_unset() -> None:
    """The API server validates updates against the CRD schema; it must not refuse what the
    admission pipeline reads as unset (`machine: {type: ""}`), nor what it refuses itself."""
    schema = openapi.object_schema(vmitypes.VirtualMachineInstanceSpec)
    domain = schema["properties"]["domain"]["properties"]
    assert domain["machine"]["properties"]["type"]["pattern"] == r"^$|^\S+$"
    disk_bus = domain["devices"]["properties"]["disks"]["items"]["properties"]["disk"]
    assert "" in disk_bus["properties"]["bus"]["enum"]
    assert "" not in schema["properties"]["evictionStrategy"]["enum"]
    vm = openapi.object_schema(vmtypes.VirtualMachineSpec)
    assert "" not in vm["properties"]["runStrategy"]["enum"]


def test_only_optional_strings_treat_empty_as_unset() -> None:
    by_name = {f.name: f for f in dataclasses.fields(vmitypes.ContainerDiskSource)}
    assert not codec.empties_are_unset(by_name["image"], str)  # required: "" stays, and fails
    assert codec.empties_are_unset(by_name["path"], str | None)
    doc = _vmi()
    doc["spec"]["volumes"][0]["containerDisk"]["image"] = ""
    assert _errors(doc) == [
        "spec.volumes[0].containerDisk.image: must match the regular expression '^\\S+$'"
    ]
