"""Whole VMIs with their contexts, each converted into a golden file under golden/.

Shared by the golden tests and the libvirt checks, so every golden file is also proven
acceptable to libvirt's schema and to its test driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvd.launcher.converter.context import (
    ConverterContext,
    DiskSource,
    Firmware,
    InterfaceTarget,
    KernelBootFiles,
    OvmfBuild,
)
from tests.launcher.converter.conftest import ROOTDISK, RUN, context, manifest

OVMF = Firmware(
    efi=OvmfBuild(
        code=Path("/usr/share/OVMF/OVMF_CODE_4M.fd"),
        vars_template=Path("/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ),
    efi_secure=OvmfBuild(
        code=Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"),
        vars_template=Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd"),
    ),
    efi_vars=RUN / "efivars.fd",
)
POD_TAP = {"default": InterfaceTarget(tap="tap0", mac="52:54:00:6b:76:64")}


@dataclass(frozen=True)
class Case:
    name: str
    manifest: dict[str, Any]
    context: ConverterContext


CASES = (
    # The smallest VMI a user writes: memory and one containerDisk; everything else defaulted.
    Case("minimal", manifest(), context()),
    # The same under TCG, with the pod interface the network code prepared.
    Case("minimal-emulated", manifest(), context(domain_type="qemu", interfaces=POD_TAP)),
    Case(
        "efi-secure-boot",
        manifest({"firmware": {"bootloader": {"efi": {"secureBoot": True}}}}),
        context(firmware=OVMF),
    ),
    Case(
        "kernel-boot",
        manifest(
            {
                "firmware": {
                    "kernelBoot": {
                        "kernelArgs": "console=ttyS0 root=/dev/vda rw",
                        "container": {
                            "image": "kvd/kernel",
                            "kernelPath": "/boot/vmlinuz",
                            "initrdPath": "/boot/initrd.img",
                        },
                    }
                }
            }
        ),
        context(
            domain_type="qemu",
            kernel_boot=KernelBootFiles(
                kernel=RUN / "kernel-boot/vmlinuz", initrd=RUN / "kernel-boot/initrd.img"
            ),
        ),
    ),
    Case(
        "disks",
        manifest(
            {
                "devices": {
                    "disks": [
                        {"name": "rootdisk", "bootOrder": 1, "serial": "root-0001"},
                        {"name": "scratch", "disk": {"bus": "sata"}, "errorPolicy": "report"},
                        {"name": "data", "disk": {"bus": "scsi", "readonly": True}},
                        {"name": "cloudinit", "cdrom": {}, "errorPolicy": "ignore"},
                        {"name": "shared", "lun": {}, "errorPolicy": "enospace"},
                    ]
                }
            },
            volumes=[
                {"name": "rootdisk", "containerDisk": {"image": "kvd/demo"}},
                {"name": "scratch", "emptyDisk": {"capacity": "1Gi"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "cloudinit", "cloudInitNoCloud": {"userData": "#!/bin/sh\necho hi\n"}},
                {"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}},
            ],
        ),
        context(
            disks={
                "rootdisk": ROOTDISK,
                "scratch": DiskSource(path=RUN / "disks/scratch.qcow2", format="qcow2"),
                "data": DiskSource(path=RUN / "pvc/data/disk.img", format="raw"),
                "cloudinit": DiskSource(path=RUN / "cloud-init.iso", format="raw", is_iso=True),
                "shared": DiskSource(path=Path("/dev/pvc-shared"), format="raw", kind="block"),
            }
        ),
    ),
    # The i440fx machine, SeaBIOS on the serial console, and the user's SMBIOS identity.
    Case(
        "pc-bios-serial-smbios",
        manifest(
            {
                "machine": {"type": "pc"},
                "firmware": {
                    "uuid": "5d307ca9-b3ef-428c-8861-06e72d69f223",
                    "serial": "kvd-serial-1",
                    "bootloader": {"bios": {"useSerial": True}},
                },
            }
        ),
        context(),
    ),
    # KubeVirt's chassis, clock and feature fields, as its examples use them.
    Case(
        "chassis-clock-features",
        manifest(
            {
                "chassis": {
                    "manufacturer": "kvd",
                    "version": "1",
                    "serial": "chassis-1",
                    "asset": "123456",
                    "sku": "small",
                },
                "clock": {
                    "utc": {"offsetSeconds": 60},
                    "timer": {
                        "hpet": {"present": False},
                        "kvm": {},
                        "pit": {"tickPolicy": "delay"},
                        "rtc": {"tickPolicy": "catchup", "track": "guest"},
                    },
                },
                "features": {
                    "acpi": {},
                    "apic": {"endOfInterrupt": True},
                    "smm": {"enabled": True},
                },
            }
        ),
        context(),
    ),
    Case(
        "everything-else",
        manifest(
            {
                "cpu": {"sockets": 2, "cores": 2, "threads": 1, "model": "Haswell-noTSX"},
                "memory": {"guest": "1000M"},
                "features": {"acpi": {"enabled": False}},
                "devices": {
                    "autoattachSerialConsole": False,
                    "autoattachGraphicsDevice": False,
                    "rng": {},
                    "interfaces": [
                        {
                            "name": "default",
                            "masquerade": {},
                            "model": "e1000e",
                            "macAddress": "02:00:00:00:00:02",
                        },
                    ],
                },
            },
            networks=[{"name": "default", "pod": {}}],
        ),
        context(
            emulator=Path("/usr/bin/qemu-system-x86_64"),
            interfaces=POD_TAP,
        ),
    ),
)
