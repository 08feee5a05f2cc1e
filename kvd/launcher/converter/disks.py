"""`<disk>`s, one per spec disk, and the controllers they need.

Sources come from the context (storage decided where each volume's bytes are); a spec disk
whose volume storage did not prepare is a launcher bug and raises `ContextError`.

Target names: virtio disks are `vda`, `vdb`, …; sata and scsi share the `sd` namespace
(libvirt requires target names to be unique), counted in spec order across both buses. The
guest does not see these names — it names disks itself — they only key libvirt's devices.
So that libvirt does not derive controller numbers from those shared letters (and invent a
second AHCI or an lsilogic SCSI controller), every sata and scsi disk gets an explicit drive
address: sata on AHCI (q35's built-in controller, one libvirt adds on pc; 6 ports each),
scsi on one virtio-scsi controller, which this module adds whenever a scsi disk exists.

Cache mode: `writeback`, not `none`. `none` opens images with O_DIRECT, which tmpfs (where a
launcher's overlays and emptyDisks may live) refuses before Linux 6.6 — Debian 12 ships 6.1 —
as do some FUSE and network file systems; and the converter cannot look at the file system,
it is pure. `writeback` works on every file system, is QEMU's own default, and is safe: the
guest sees a volatile write cache and its flushes reach the host file, as on real hardware.
It is written out explicitly so the XML says what the guest gets.

Error policy: the disk's `errorPolicy`, else `stop`, as KubeVirt's converter does, on every
disk. A write that fails (a full volume under a sparse disk image) then pauses the domain
instead of handing the guest an error it may not survive; the handler reports the pause as the
VMI's `Paused` condition (`PausedIOError`) and resuming retries the write. Written out like the
cache mode, although `stop` is not QEMU's own default (`enospc`, for writes).

Each disk carries its spec name as a user alias (alias.py).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Final, Literal

from kvd.api.vmi import Bus, Disk, VirtualMachineInstanceSpec
from kvd.launcher.converter.alias import user_alias
from kvd.launcher.converter.context import ConverterContext, DiskSource
from kvd.launcher.converter.errors import ContextError, ConversionError

CACHE_MODE: Final = "writeback"
DEFAULT_ERROR_POLICY: Final = "stop"  # KubeVirt's, when a disk sets none
SATA_PORTS: Final = 6  # ports of one ICH9 AHCI controller
DeviceKind = Literal["disk", "cdrom", "lun"]


@dataclass(frozen=True)
class DiskDevices:
    """The `<disk>` elements in spec order, then the controllers they need."""

    disks: tuple[ET.Element, ...]
    controllers: tuple[ET.Element, ...]


@dataclass(frozen=True)
class _Target:
    device: DeviceKind
    bus: Bus
    read_only: bool
    tray_open: bool = False


def target_name(prefix: str, index: int) -> str:
    """libvirt's disk naming: 0 → `a`, 25 → `z`, 26 → `aa`, as `virDiskNameToIndex` reads."""
    suffix = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        suffix = chr(ord("a") + rest) + suffix
    return prefix + suffix


def disks(spec: VirtualMachineInstanceSpec, ctx: ConverterContext) -> DiskDevices:
    elements: list[ET.Element] = []
    names = {"vd": 0, "sd": 0}
    units: dict[Bus, int] = {"sata": 0, "scsi": 0}
    for index, disk in enumerate(spec.domain.devices.disks):
        field = f"spec.domain.devices.disks[{index}] ({disk.name!r})"
        source = ctx.disks.get(disk.name)
        if source is None:
            raise ContextError(
                f"{field}: the launcher context has no source for volume {disk.name!r}; "
                "storage did not prepare it"
            )
        target = _target(disk, source)
        _check(field, target, source)
        prefix = "vd" if target.bus == "virtio" else "sd"
        dev = target_name(prefix, names[prefix])
        names[prefix] += 1
        address = None
        if target.bus != "virtio":
            address = _drive_address(target.bus, units[target.bus])
            units[target.bus] += 1
        elements.append(_disk(disk, source, target, dev, address))
    controllers = []
    if units["scsi"]:
        controllers.append(ET.Element("controller", type="scsi", index="0", model="virtio-scsi"))
    return DiskDevices(disks=tuple(elements), controllers=tuple(controllers))


def _target(disk: Disk, source: DiskSource) -> _Target:
    """Device kind, bus and read-only flag; buses fall back to KubeVirt's defaults."""
    forced_ro = source.read_only or source.is_iso
    if disk.cdrom is not None:
        cdrom = disk.cdrom
        return _Target("cdrom", cdrom.bus or "sata", True, tray_open=cdrom.tray == "open")
    if disk.lun is not None:
        lun = disk.lun
        return _Target("lun", lun.bus or "scsi", forced_ro or bool(lun.read_only))
    target = disk.disk
    bus: Bus = (target.bus if target else None) or "virtio"
    return _Target("disk", bus, forced_ro or bool(target and target.read_only))


def _check(field: str, target: _Target, source: DiskSource) -> None:
    """What QEMU and libvirt refuse, said in terms of the spec before libvirt says it worse."""
    if target.device == "cdrom" and target.bus == "virtio":
        raise ConversionError(f"{field}: a cdrom cannot be on the virtio bus; use sata or scsi")
    if target.device == "disk" and target.bus == "sata" and target.read_only:
        raise ConversionError(
            f"{field}: QEMU cannot attach a read-only disk to sata; use the virtio or scsi "
            "bus, or present the volume as a cdrom"
        )
    if target.device == "lun":
        if target.bus != "scsi":
            raise ConversionError(f"{field}: a lun needs the scsi bus, not {target.bus}")
        if source.kind != "block" or source.format != "raw":
            raise ConversionError(
                f"{field}: a lun passes SCSI commands to a raw block device; this volume is a "
                f"{source.format} {source.kind}: present it as a disk instead"
            )


def _drive_address(bus: Bus, unit: int) -> ET.Element:
    controller, port = divmod(unit, SATA_PORTS) if bus == "sata" else (0, unit)
    return ET.Element(
        "address", type="drive", controller=str(controller), bus="0", target="0", unit=str(port)
    )


def _disk(
    disk: Disk, source: DiskSource, target: _Target, dev: str, address: ET.Element | None
) -> ET.Element:
    element = ET.Element("disk", type=source.kind, device=target.device)
    ET.SubElement(
        element,
        "driver",
        name="qemu",
        type=source.format,
        cache=CACHE_MODE,
        error_policy=disk.error_policy or DEFAULT_ERROR_POLICY,
    )
    if source.kind == "block":
        ET.SubElement(element, "source", dev=str(source.path))
    else:
        ET.SubElement(element, "source", file=str(source.path))
    target_element = ET.SubElement(element, "target", dev=dev, bus=target.bus)
    if target.tray_open:
        target_element.set("tray", "open")
    # libvirt's own child order, so `virsh dumpxml` reads like this.
    if target.read_only:
        ET.SubElement(element, "readonly")
    if disk.serial is not None:
        ET.SubElement(element, "serial").text = disk.serial
    if disk.boot_order is not None:
        ET.SubElement(element, "boot", order=str(disk.boot_order))
    ET.SubElement(element, "alias", name=user_alias(disk.name))
    if address is not None:
        element.append(address)
    return element
