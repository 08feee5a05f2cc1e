"""Boot the kvd-demo test guest under QEMU/TCG and check its console protocol.

See guest/README.md for the marker lines. Each test boots one guest (~6 s to
KVD-READY on TCG); deadlines are generous for slow CI machines.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from kvd.launcher import ovmf
from tests.support.waiting import holds_for

if TYPE_CHECKING:
    from .conftest import MakeSeed, Qemu, StartQemu

BOOT = 90.0  # seconds from QEMU start to a marker, generous for loaded CI
STEP = 30.0  # seconds for a later step once the guest is up
MIB64 = 64 * 1024 * 1024
# GRUB runs out of memory loading the kernel below ~384 MiB, and the kernel's EFI stub faults
# at 128 MiB (guest/README.md): give UEFI boots room.
UEFI_MEMORY_MIB = 512

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def kernel_boot_args(guest_dir: Path, cmdline: str) -> list[str | Path]:
    """QEMU's direct kernel boot of the guest's kernel and initramfs."""
    kernel, initrd = guest_dir / "vmlinuz", guest_dir / "initrd.img"
    return ["-kernel", kernel, "-initrd", initrd, "-append", cmdline]


def still_runs(vm: Qemu, why: str) -> None:
    """QEMU keeps running after the power button: a guest that acted on it prints
    KVD-POWEROFF and QEMU ends within a second or two, so 3 s is ample."""
    holds_for(f"QEMU runs {why}", lambda: vm.proc.poll() is None, 3.0, diagnose=vm.diagnostics)


def report(vm: Qemu, *markers: str) -> None:
    """Print when each marker appeared (shown with `pytest -s` or `-rP`)."""
    for marker in markers:
        print(f"{marker}: {vm.seen_at(marker, BOOT):.1f} s after QEMU start")


def test_disk_image_boots_runs_userdata_and_powers_off_on_acpi(
    guest_dir: Path, qemu: StartQemu, cidata_iso: MakeSeed, tmp_path: Path
) -> None:
    # Never write the built image: boot a qcow2 overlay on top of it.
    root = tmp_path / "root.qcow2"
    base = guest_dir / "kvd-demo.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, root],
                   check=True)  # fmt: skip
    extra = tmp_path / "extra.img"
    with extra.open("wb") as f:
        f.truncate(MIB64)
    seed = cidata_iso("#!/bin/sh\necho hello-from-userdata\n")

    vm = qemu(
        "-drive", f"file={root},if=none,id=root,format=qcow2",
        "-device", "virtio-blk-pci,drive=root,bootindex=0",
        "-drive", f"file={seed},if=none,id=cidata,media=cdrom,format=raw,readonly=on",
        "-device", "ide-cd,drive=cidata,bus=ide.0",  # SATA cdrom on q35's AHCI: sr0
        "-drive", f"file={extra},if=none,id=extra,format=raw",
        "-device", "virtio-blk-pci,drive=extra",
    )  # fmt: skip

    vm.wait_for(r"^KVD-GUEST-BOOTED \S+", BOOT)
    vm.wait_for(r"^KVD-FIRMWARE bios\r?$", BOOT)  # SeaBIOS, syslinux
    vm.wait_for(r"^hello-from-userdata\r?$", BOOT)
    vm.wait_for(r"^KVD-USERDATA-EXIT 0\r?$", BOOT)
    vm.wait_for(r"^KVD-READY\r?$", BOOT)
    report(vm, "KVD-GUEST-BOOTED", "KVD-READY")
    vm.wait_for(rf"^KVD-DISK vd[a-z]+ {MIB64}\r?$", 0)
    assert "KVD-DISK sr0" not in vm.console(), "the cidata cdrom must not be listed" + (
        vm.diagnostics()
    )

    vm.qmp("system_powerdown")  # the ACPI power button
    vm.wait_for(r"^KVD-POWEROFF\r?$", STEP)
    code = vm.wait_exit(STEP)
    assert code is not None, "QEMU still runs after the guest got the power button" + (
        vm.diagnostics()
    )
    assert code == 0, f"QEMU exited with {code}" + vm.diagnostics()


def test_kernel_boot_gets_dhcp_and_ignores_acpi_from_cmdline(
    guest_dir: Path, qemu: StartQemu
) -> None:
    vm = qemu(
        *kernel_boot_args(guest_dir, "console=ttyS0 kvd.ignore_acpi"),
        # SLIRP's DHCP server lives inside QEMU; restrict=on keeps the guest
        # from reaching anything outside it.
        "-netdev", "user,id=net0,restrict=on",
        "-device", "virtio-net-pci,netdev=net0",
    )  # fmt: skip

    m = vm.wait_for(r"^KVD-GUEST-BOOTED (\S+)\r?$", BOOT)
    assert m[1] == (guest_dir / "kernel-release").read_text().strip()
    vm.wait_for(r"^KVD-FIRMWARE bios\r?$", BOOT)  # QEMU loads the kernel; SeaBIOS starts it
    vm.wait_for(r"^KVD-NET eth0 10\.0\.2\.15/24\r?$", BOOT)
    vm.wait_for(r"^KVD-READY\r?$", BOOT)
    report(vm, "KVD-GUEST-BOOTED", "KVD-NET", "KVD-READY")

    vm.qmp("system_powerdown")
    vm.wait_for(r"^KVD-ACPI-IGNORED\r?$", STEP)
    still_runs(vm, "despite kvd.ignore_acpi")


def test_userdata_on_virtio_disk_can_make_the_guest_ignore_acpi(
    guest_dir: Path, qemu: StartQemu, cidata_iso: MakeSeed
) -> None:
    seed = cidata_iso("#!/bin/sh\ntouch /run/kvd-ignore-acpi\necho acpi-off\nexit 3\n")
    vm = qemu(
        *kernel_boot_args(guest_dir, "console=ttyS0 quiet"),
        "-drive", f"file={seed},if=none,id=cidata,format=raw,readonly=on",
        "-device", "virtio-blk-pci,drive=cidata",  # the seed as a virtio disk: vda
    )  # fmt: skip

    vm.wait_for(r"^acpi-off\r?$", BOOT)
    vm.wait_for(r"^KVD-USERDATA-EXIT 3\r?$", BOOT)
    vm.wait_for(r"^KVD-READY\r?$", BOOT)
    assert "KVD-DISK vda" not in vm.console(), "the cidata disk must not be listed" + (
        vm.diagnostics()
    )
    assert "KVD-NET" not in vm.console(), "no NIC, so no network lines" + vm.diagnostics()

    vm.qmp("system_powerdown")
    vm.wait_for(r"^KVD-ACPI-IGNORED\r?$", STEP)
    still_runs(vm, "despite /run/kvd-ignore-acpi")


@pytest.mark.parametrize(
    ("secure", "firmware"),
    [
        pytest.param(False, "uefi", id="uefi"),
        # Microsoft's keys enrolled: only shim (signed by Microsoft's UEFI CA) may run, and
        # it runs only the Debian-signed GRUB, which runs only the Debian-signed kernel.
        pytest.param(True, "uefi-secureboot", id="secure-boot"),
    ],
)
def test_disk_image_boots_under_uefi(
    guest_dir: Path, qemu: StartQemu, tmp_path: Path, secure: bool, firmware: str
) -> None:
    """The same disk boots under OVMF, the builds the launcher uses (from QEMU's firmware
    descriptors), through shim and GRUB on its EFI system partition."""
    found = ovmf.discover()
    build = found.efi_secure if secure else found.efi
    assert build is not None, "no OVMF build: scripts/setup installs Debian's ovmf"
    nvram = tmp_path / "vars.fd"
    shutil.copyfile(build.vars_template, nvram)
    root = tmp_path / "root.qcow2"
    base = guest_dir / "kvd-demo.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, root],
                   check=True)  # fmt: skip
    secure_args = (
        ["-machine", "smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"]
        if secure
        else []
    )
    vm = qemu(
        *secure_args,
        "-drive", f"if=pflash,format=raw,readonly=on,file={build.code}",
        "-drive", f"if=pflash,format=raw,file={nvram}",
        "-drive", f"file={root},if=none,id=root,format=qcow2",
        "-device", "virtio-blk-pci,drive=root,bootindex=0",
        memory_mib=UEFI_MEMORY_MIB,
    )  # fmt: skip

    vm.wait_for(r"^KVD-GUEST-BOOTED \S+", BOOT)
    vm.wait_for(rf"^KVD-FIRMWARE {firmware}\r?$", BOOT)
    vm.wait_for(r"^KVD-READY\r?$", BOOT)
    report(vm, "KVD-GUEST-BOOTED", "KVD-READY")
