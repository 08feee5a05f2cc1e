"""What the converter needs beyond the VMI: facts about this launcher, decided elsewhere.

The converter is pure (VMI + context → domain XML). Everything it cannot know from the VMI —
where storage put each disk, where the console and VNC sockets live, whether KVM is usable,
which tap device the network prepared, which uid and gid QEMU runs as — arrives here, decided
by the launcher's other parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DomainType = Literal["kvm", "qemu"]


@dataclass(frozen=True, kw_only=True)
class DiskSource:
    """Where a volume's bytes are, as storage prepared them."""

    path: Path
    format: Literal["qcow2", "raw"]
    kind: Literal["file", "block"] = "file"
    read_only: bool = False
    # A cdrom-type medium the converter should present read-only whatever the disk says
    # (cloud-init ISOs).
    is_iso: bool = False


@dataclass(frozen=True, kw_only=True)
class KernelBootFiles:
    """The kernel and initrd of a kernelBoot container, as the pod provides them."""

    kernel: Path | None
    initrd: Path | None


@dataclass(frozen=True, kw_only=True)
class OvmfBuild:
    """One OVMF build: its code (read-only flash) and the template of its variable store.

    The two go together: a variable store is laid out for the code that made it, and Secure
    Boot's store carries the enrolled keys.
    """

    code: Path
    vars_template: Path


@dataclass(frozen=True, kw_only=True)
class Firmware:
    """OVMF for EFI guests; a build is None where this launcher has none."""

    efi: OvmfBuild | None = None  # UEFI without Secure Boot
    efi_secure: OvmfBuild | None = None  # Secure Boot: SMM, Microsoft's keys enrolled
    efi_vars: Path | None = None  # this VMI's writable NVRAM, a copy of the build's template


@dataclass(frozen=True, kw_only=True)
class InterfaceTarget:
    """How one spec interface reaches the host: a tap device prepared by the network code."""

    tap: str
    mac: str | None = None  # the MAC decided when the spec gives none


@dataclass(frozen=True, kw_only=True)
class QemuIds:
    """The uid and gid QEMU runs as, which the launcher looked up (the converter looks up none)."""

    uid: int
    gid: int


@dataclass(frozen=True, kw_only=True)
class ConverterContext:
    domain_type: DomainType
    qemu_ids: QemuIds  # the domain's DAC seclabel
    disks: dict[str, DiskSource]  # volume name → source
    console_socket: Path  # the serial console's unix socket (QEMU listens)
    console_log: Path  # the serial console also logged here
    vnc_socket: Path  # the VNC display's unix socket (QEMU listens), when graphics are on
    vmi_uid: str
    grace_period_seconds: int
    kernel_boot: KernelBootFiles | None = None
    firmware: Firmware = field(default_factory=Firmware)
    interfaces: dict[str, InterfaceTarget] = field(default_factory=dict)  # name → target
    emulator: Path | None = None  # qemu binary; libvirt picks one when None
