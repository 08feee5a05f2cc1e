"""`<disk>`s: buses, target names, device kinds, read-only, boot order, serial, controllers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kvd.launcher.converter import disks
from kvd.launcher.converter.context import DiskSource
from kvd.launcher.converter.errors import ContextError, ConversionError
from tests.launcher.converter.conftest import ROOTDISK, assert_xml, context, spec

D = "/var/run/kvd/pods/0b2c6f4e/disks"
QCOW2 = '<driver name="qemu" type="qcow2" cache="writeback" error_policy="stop"/>'
RAW = '<driver name="qemu" type="raw" cache="writeback" error_policy="stop"/>'
ROOT_SRC = f'<source file="{D}/rootdisk.qcow2"/>'
ISO = DiskSource(path=Path(f"{D}/cloudinit.iso"), format="raw", is_iso=True)
DATA = DiskSource(path=Path(f"{D}/data.img"), format="raw")
BLOCK = DiskSource(path=Path("/dev/kvd/lun0"), format="raw", kind="block")
CLOUD_INIT = {"name": "cloudinit", "cloudInitNoCloud": {"userData": "#cloud-config"}}
DATA_VOLUME = {"name": "data", "emptyDisk": {"capacity": "1Gi"}}
PVC = {"name": "data", "persistentVolumeClaim": {"claimName": "claim"}}
ROOT_VOLUME = {"name": "rootdisk", "containerDisk": {"image": "kvd/demo"}}


def _sata(unit: int, controller: int = 0) -> str:
    return f'<address type="drive" controller="{controller}" bus="0" target="0" unit="{unit}"/>'


VIRTIO_SCSI = '<controller type="scsi" index="0" model="virtio-scsi"/>'


@pytest.mark.parametrize(
    ("disk_specs", "volumes", "sources", "expected"),
    [
        pytest.param(
            [],
            [ROOT_VOLUME],
            {},
            f'<disk type="file" device="disk">{QCOW2}{ROOT_SRC}<target dev="vda" bus="virtio"/>'
            '<alias name="ua-rootdisk"/></disk>',
            id="implied-virtio-disk",
        ),
        pytest.param(
            [{"name": "rootdisk", "disk": {"bus": "sata"}}],
            [ROOT_VOLUME],
            {},
            f'<disk type="file" device="disk">{QCOW2}{ROOT_SRC}<target dev="sda" bus="sata"/>'
            f'<alias name="ua-rootdisk"/>{_sata(0)}</disk>',
            id="sata",
        ),
        pytest.param(
            [{"name": "rootdisk", "disk": {"bus": "scsi"}}],
            [ROOT_VOLUME],
            {},
            f'<disk type="file" device="disk">{QCOW2}{ROOT_SRC}<target dev="sda" bus="scsi"/>'
            f'<alias name="ua-rootdisk"/>{_sata(0)}</disk>{VIRTIO_SCSI}',
            id="scsi-adds-virtio-scsi-controller",
        ),
        pytest.param(
            [{"name": "rootdisk", "bootOrder": 1, "serial": "root-01"}],
            [ROOT_VOLUME],
            {},
            f'<disk type="file" device="disk">{QCOW2}{ROOT_SRC}<target dev="vda" bus="virtio"/>'
            '<serial>root-01</serial><boot order="1"/><alias name="ua-rootdisk"/></disk>',
            id="boot-order-and-serial",
        ),
        pytest.param(
            [{"name": "rootdisk", "disk": {"readonly": True}}],
            [ROOT_VOLUME],
            {},
            f'<disk type="file" device="disk">{QCOW2}{ROOT_SRC}<target dev="vda" bus="virtio"/>'
            '<readonly/><alias name="ua-rootdisk"/></disk>',
            id="readonly-disk",
        ),
        pytest.param(
            [{"name": "rootdisk", "disk": {}}, {"name": "cloudinit", "cdrom": {}}],
            [ROOT_VOLUME, CLOUD_INIT],
            {"cloudinit": ISO},
            f'<disk type="file" device="disk">{QCOW2}{ROOT_SRC}<target dev="vda" bus="virtio"/>'
            '<alias name="ua-rootdisk"/></disk>'
            f'<disk type="file" device="cdrom">{RAW}<source file="{D}/cloudinit.iso"/>'
            '<target dev="sda" bus="sata"/><readonly/><alias name="ua-cloudinit"/>'
            f"{_sata(0)}</disk>",
            id="cdrom-defaults-to-sata-readonly",
        ),
        pytest.param(
            [{"name": "rootdisk"}, {"name": "cloudinit", "cdrom": {"bus": "scsi", "tray": "open"}}],
            [ROOT_VOLUME, CLOUD_INIT],
            {"cloudinit": ISO},
            f'<disk type="file" device="disk">{QCOW2}{ROOT_SRC}<target dev="vda" bus="virtio"/>'
            '<alias name="ua-rootdisk"/></disk>'
            f'<disk type="file" device="cdrom">{RAW}<source file="{D}/cloudinit.iso"/>'
            '<target dev="sda" bus="scsi" tray="open"/><readonly/><alias name="ua-cloudinit"/>'
            f"{_sata(0)}</disk>{VIRTIO_SCSI}",
            id="cdrom-scsi-tray-open",
        ),
        pytest.param(
            [{"name": "rootdisk"}, {"name": "cloudinit", "disk": {}}],
            [ROOT_VOLUME, CLOUD_INIT],
            {"cloudinit": ISO},
            f'<disk type="file" device="disk">{QCOW2}{ROOT_SRC}<target dev="vda" bus="virtio"/>'
            '<alias name="ua-rootdisk"/></disk>'
            f'<disk type="file" device="disk">{RAW}<source file="{D}/cloudinit.iso"/>'
            '<target dev="vdb" bus="virtio"/><readonly/><alias name="ua-cloudinit"/></disk>',
            id="iso-as-disk-is-readonly",
        ),
        pytest.param(
            [{"name": "rootdisk"}, {"name": "data"}],
            [ROOT_VOLUME, PVC],
            {"data": DiskSource(path=Path(f"{D}/data.img"), format="raw", read_only=True)},
            f'<disk type="file" device="disk">{QCOW2}{ROOT_SRC}<target dev="vda" bus="virtio"/>'
            '<alias name="ua-rootdisk"/></disk>'
            f'<disk type="file" device="disk">{RAW}<source file="{D}/data.img"/>'
            '<target dev="vdb" bus="virtio"/><readonly/><alias name="ua-data"/></disk>',
            id="read-only-source",
        ),
        pytest.param(
            [{"name": "rootdisk"}, {"name": "data", "lun": {}}],
            [ROOT_VOLUME, PVC],
            {"data": BLOCK},
            f'<disk type="file" device="disk">{QCOW2}{ROOT_SRC}<target dev="vda" bus="virtio"/>'
            '<alias name="ua-rootdisk"/></disk>'
            f'<disk type="block" device="lun">{RAW}<source dev="/dev/kvd/lun0"/>'
            f'<target dev="sda" bus="scsi"/><alias name="ua-data"/>{_sata(0)}</disk>'
            f"{VIRTIO_SCSI}",
            id="lun-on-block-device",
        ),
    ],
)
def test_disk(
    disk_specs: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    sources: dict[str, DiskSource],
    expected: str,
) -> None:
    s = spec({"devices": {"disks": disk_specs}}, volumes=volumes)
    result = disks.disks(s, context(disks={"rootdisk": ROOTDISK, **sources}))
    assert_xml([*result.disks, *result.controllers], expected)


@pytest.mark.parametrize(
    ("error_policy", "rendered"),
    [
        pytest.param(None, "stop", id="default-stop-as-kubevirt"),
        pytest.param("stop", "stop", id="stop"),
        pytest.param("report", "report", id="report"),
        pytest.param("ignore", "ignore", id="ignore"),
        pytest.param("enospace", "enospace", id="enospace"),
    ],
)
def test_error_policy(error_policy: str | None, rendered: str) -> None:
    disk: dict[str, Any] = {"name": "data"}
    if error_policy is not None:
        disk["errorPolicy"] = error_policy
    s = spec({"devices": {"disks": [disk]}}, volumes=[DATA_VOLUME])
    result = disks.disks(s, context(disks={"data": DATA}))
    driver = result.disks[0].find("driver")
    assert driver is not None
    assert driver.get("error_policy") == rendered


def test_target_names_and_addresses_across_buses() -> None:
    """virtio counts vdX; sata and scsi share sdX; each bus numbers its own drive units."""
    buses = ["virtio", "sata", "scsi", "virtio", "sata", "scsi", "sata"]
    names = [f"d{i}" for i in range(len(buses))]
    s = spec(
        {
            "devices": {
                "disks": [
                    {"name": n, "disk": {"bus": b}} for n, b in zip(names, buses, strict=True)
                ]
            }
        },
        volumes=[{"name": n, "emptyDisk": {"capacity": "1Gi"}} for n in names],
    )
    result = disks.disks(s, context(disks=dict.fromkeys(names, DATA)))
    seen = []
    for element in result.disks:
        target, address = element.find("target"), element.find("address")
        assert target is not None
        seen.append((target.get("dev"), None if address is None else address.get("unit")))
    assert seen == [
        ("vda", None),
        ("sda", "0"),
        ("sdb", "0"),
        ("vdb", None),
        ("sdc", "1"),
        ("sdd", "1"),
        ("sde", "2"),
    ]
    assert len(result.controllers) == 1  # one virtio-scsi holds every scsi disk


@pytest.mark.parametrize(
    ("index", "name"),
    [(0, "vda"), (25, "vdz"), (26, "vdaa"), (27, "vdab"), (701, "vdzz"), (702, "vdaaa")],
)
def test_target_name(index: int, name: str) -> None:
    assert disks.target_name("vd", index) == name


def test_seventh_sata_disk_goes_to_a_second_ahci_controller() -> None:
    names = [f"d{i}" for i in range(7)]
    s = spec(
        {"devices": {"disks": [{"name": n, "disk": {"bus": "sata"}} for n in names]}},
        volumes=[{"name": n, "emptyDisk": {"capacity": "1Gi"}} for n in names],
    )
    result = disks.disks(s, context(disks=dict.fromkeys(names, DATA)))
    address = result.disks[6].find("address")
    assert address is not None
    assert (address.get("controller"), address.get("unit")) == ("1", "0")


@pytest.mark.parametrize(
    ("disk_spec", "volume", "source", "error", "message"),
    [
        pytest.param(
            {"name": "data", "cdrom": {"bus": "virtio"}},
            DATA_VOLUME,
            DATA,
            ConversionError,
            r"disks\[0\] \('data'\): a cdrom cannot be on the virtio bus",
            id="cdrom-on-virtio",
        ),
        pytest.param(
            {"name": "data", "disk": {"bus": "sata", "readonly": True}},
            DATA_VOLUME,
            DATA,
            ConversionError,
            r"cannot attach a read-only disk to sata",
            id="readonly-sata",
        ),
        pytest.param(
            {"name": "data", "lun": {"bus": "sata"}},
            PVC,
            BLOCK,
            ConversionError,
            r"a lun needs the scsi bus, not sata",
            id="lun-on-sata",
        ),
        pytest.param(
            {"name": "data", "lun": {}},
            PVC,
            DATA,
            ConversionError,
            r"a lun passes SCSI commands to a raw block device; this volume is a raw file",
            id="lun-on-file",
        ),
        pytest.param(
            {"name": "data"},
            DATA_VOLUME,
            None,
            ContextError,
            r"disks\[0\] \('data'\): the launcher context has no source for volume 'data'",
            id="volume-not-prepared",
        ),
    ],
)
def test_disk_refused(
    disk_spec: dict[str, Any],
    volume: dict[str, Any],
    source: DiskSource | None,
    error: type[Exception],
    message: str,
) -> None:
    s = spec({"devices": {"disks": [disk_spec]}}, volumes=[volume])
    ctx = context(disks={} if source is None else {"data": source})
    with pytest.raises(error, match=message):
        disks.disks(s, ctx)
