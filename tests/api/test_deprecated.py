"""KubeVirt's deprecated spellings: accepted, converted by defaulting, and warned about."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from kvd.api import codec, deprecations, kinds
from kvd.api import vm as vmtypes
from kvd.api import vmi as vmitypes
from kvd.api.errors import ValidationError
from tests.api.conftest import MANIFESTS

SEED = MANIFESTS / "seed"


def _seed(name: str) -> Any:
    return yaml.safe_load((SEED / name).read_text())


def test_registrydisk_and_volumename_become_containerdisk_and_disk_names() -> None:
    obj = kinds.load(_seed("vmi-registrydisk.yaml"))
    assert isinstance(obj, vmitypes.VirtualMachineInstance)
    spec = obj.spec
    assert [d.name for d in spec.domain.devices.disks] == ["registryvolume", "cloudinitvolume"]
    assert all(d.volume_name is None for d in spec.domain.devices.disks)
    registry = spec.volumes[0]
    assert registry.registry_disk is None
    assert registry.container_disk == vmitypes.ContainerDiskSource(
        image="registry:5000/kubevirt/cirros-registry-disk-demo:devel"
    )
    # what the API server stores and serves is today's spelling
    encoded = codec.encode(obj)
    assert "registryDisk" not in str(encoded) and "volumeName" not in str(encoded)
    assert kinds.load(encoded) == obj


def test_a_vm_template_is_converted_too() -> None:
    obj = kinds.load(_seed("vm-registrydisk.yaml"))
    assert isinstance(obj, vmtypes.VirtualMachine)
    (volume,) = obj.spec.template.spec.volumes
    assert volume.container_disk is not None and volume.registry_disk is None
    assert [d.name for d in obj.spec.template.spec.domain.devices.disks] == ["registryvolume"]


def test_a_registrydisk_next_to_a_containerdisk_is_refused() -> None:
    doc = _seed("vmi-registrydisk.yaml")
    doc["spec"]["volumes"][0]["containerDisk"] = {"image": "kvd-demo"}
    with pytest.raises(ValidationError) as raised:
        kinds.load(doc)
    assert [str(e) for e in raised.value.errors] == [
        "spec.volumes[0]: may have only one of containerDisk, cloudInitNoCloud, "
        "cloudInitConfigDrive, emptyDisk, persistentVolumeClaim, dataVolume, hostDisk, "
        "registryDisk, got containerDisk, registryDisk"
    ]


def test_a_volumename_naming_no_volume_is_refused_by_its_new_name() -> None:
    doc = _seed("vmi-registrydisk.yaml")
    doc["spec"]["domain"]["devices"]["disks"][0]["volumeName"] = "nothere"
    with pytest.raises(ValidationError) as raised:
        kinds.load(doc)
    assert 'spec.domain.devices.disks[0].name: no volume named "nothere"' in str(raised.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "vmi-registrydisk.yaml",
            [
                "spec.volumes[0].registryDisk: deprecated; use containerDisk instead",
                "spec.domain.devices.disks[0].volumeName: deprecated; a disk presents the "
                "volume of its own name, use name: registryvolume instead",
                "spec.domain.devices.disks[1].volumeName: deprecated; a disk presents the "
                "volume of its own name, use name: cloudinitvolume instead",
            ],
            id="vmi",
        ),
        pytest.param(
            "vm-registrydisk.yaml",
            [
                deprecations.RUNNING,  # the seed's VM still says `running: false`
                "spec.template.spec.volumes[0].registryDisk: deprecated; use containerDisk instead",
                "spec.template.spec.domain.devices.disks[0].volumeName: deprecated; a disk "
                "presents the volume of its own name, use name: registryvolume instead",
            ],
            id="vm-template",
        ),
    ],
)
def test_warnings_name_each_deprecated_field(name: str, expected: list[str]) -> None:
    doc = _seed(name)
    original = copy.deepcopy(doc)
    assert deprecations.warnings(doc) == expected
    assert doc == original


def test_a_replica_set_template_is_read_like_a_vms() -> None:
    doc = yaml.safe_load((MANIFESTS / "vmirs.yaml").read_text())
    doc["spec"]["template"]["spec"]["volumes"][0] = {
        "name": "containerdisk",
        "registryDisk": {"image": "kvd-demo"},
    }
    assert deprecations.warnings(doc) == [
        "spec.template.spec.volumes[0].registryDisk: deprecated; use containerDisk instead"
    ]


def test_todays_manifests_have_no_warnings() -> None:
    for path in sorted(MANIFESTS.glob("*.yaml")):
        found = deprecations.warnings(yaml.safe_load(path.read_text()))
        # vm-stopped.yaml keeps `running: false` on purpose (test_deprecations.py)
        assert [w for w in found if w != deprecations.RUNNING] == [], path.name


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(None, id="null"),
        pytest.param([], id="list"),
        pytest.param({"kind": "Pod", "spec": {"volumes": [{"registryDisk": {}}]}}, id="pod"),
        pytest.param({"kind": "VirtualMachineInstance", "spec": []}, id="spec-list"),
        pytest.param(
            {"kind": "VirtualMachineInstance", "spec": {"volumes": ["x", 3]}}, id="junk-volumes"
        ),
        pytest.param(
            {"kind": "VirtualMachine", "spec": {"template": "x"}}, id="template-not-object"
        ),
        pytest.param(
            {"kind": "VirtualMachineInstance", "spec": {"domain": {"devices": {"disks": {}}}}},
            id="disks-not-list",
        ),
    ],
)
def test_warnings_never_fail_on_junk(data: object) -> None:
    assert deprecations.warnings(data) == []


def test_seed_readme_lists_every_seed_manifest() -> None:
    readme = (SEED / "README.md").read_text()
    for path in sorted(Path(SEED).glob("*.yaml")):
        assert f"`{path.name}`" in readme, path.name
