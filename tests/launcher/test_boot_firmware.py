"""EFI, Secure Boot and kernel boot through a real launcher: libvirtd, QEMU (TCG), the demo guest.

The guest says which firmware started it (`KVD-FIRMWARE`, guest/README.md), so these tests see
OVMF, Secure Boot with Microsoft's keys, or SeaBIOS with a directly loaded kernel actually
boot it, not just a domain XML that names them.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kvd import sandbox
from kvd.launcher import ovmf
from kvd.rpc.launcher.v1 import domain_pb2 as pb
from kvd.rpc.launcher.v1 import launcher_pb2
from tests.launcher.harness import RPC_TIMEOUT, Console, Launcher, wait_for_event

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
# GRUB needs 384 MiB or more to load the demo kernel under UEFI (guest/README.md).
UEFI_MEMORY = "512Mi"
KERNEL_BOOT = {
    # kvd.ignore_acpi: the guest answers the power button with KVD-ACPI-IGNORED, which shows
    # that kernelArgs reached the kernel's command line
    "kernelArgs": "console=ttyS0 quiet kvd.ignore_acpi",
    "container": {
        "image": "example.com/kernels/demo:1",
        "kernelPath": "/boot/vmlinuz-virt",
        "initrdPath": "/boot/initramfs-virt",
    },
}


@pytest.fixture
def launchers(tmp_path: Path, guest_dir: Path) -> Iterator[Any]:
    made: list[Launcher] = []

    def make(directory: str, **kwargs: Any) -> Launcher:
        launcher = Launcher(tmp_path / directory, guest_dir, **kwargs)
        made.append(launcher)
        return launcher

    yield make
    for launcher in made:
        launcher.close()


def _refused(launcher: Launcher, manifest: dict[str, Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        launcher.define(manifest)
    return caught.value


def _nothing_left(launcher: Launcher) -> None:
    """No domain, and none of the per-VMI files a define makes (disks, NVRAM)."""
    with pytest.raises(grpc.RpcError) as caught:
        launcher.stub.GetDomain(launcher_pb2.GetDomainRequest(), timeout=RPC_TIMEOUT)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert not (launcher.run_dir / "disks").exists()
    assert not (launcher.run_dir / "nvram").exists()


@pytest.mark.parametrize(
    ("secure", "firmware"),
    [pytest.param(False, "uefi", id="efi"), pytest.param(True, "uefi-secureboot", id="secure")],
)
def test_an_efi_vmi_boots_the_guest_under_ovmf(launchers: Any, secure: bool, firmware: str) -> None:
    launcher = launchers("efi").start()
    builds = ovmf.discover()
    build = builds.efi_secure if secure else builds.efi
    assert build is not None, "no OVMF: scripts/setup installs Debian's ovmf"
    manifest = launcher.manifest(
        memory=UEFI_MEMORY, firmware={"bootloader": {"efi": {"secureBoot": secure}}}
    )
    defined = launcher.define(manifest)

    os_element = ET.fromstring(defined.domain_xml).find("os")
    assert os_element is not None
    loader, nvram = os_element.find("loader"), os_element.find("nvram")
    assert loader is not None and nvram is not None
    assert (loader.text, loader.get("secure")) == (str(build.code), "yes" if secure else "no")
    assert nvram.get("template") == str(build.vars_template)
    store = launcher.run_dir / "nvram" / build.vars_template.name
    assert nvram.text == str(store)
    assert store.read_bytes() == build.vars_template.read_bytes()  # a copy, the VMI's own
    smm = ET.fromstring(defined.domain_xml).find("features/smm")
    assert (smm is not None and smm.get("state") == "on") is secure

    events, seen = launcher.watch(), []
    assert next(events).type == pb.DOMAIN_EVENT_TYPE_INITIAL  # defined, not started
    launcher.stub.LaunchDomain(launcher_pb2.LaunchDomainRequest(), timeout=RPC_TIMEOUT)
    console = Console(launcher.stub)
    console.wait_for("BdsDxe: starting Boot")  # OVMF's boot manager, on the serial port
    console.wait_for(f"KVD-FIRMWARE {firmware}\r\n")
    console.wait_for("KVD-READY")
    wait_for_event(events, lambda d: d.state == pb.DOMAIN_STATE_RUNNING, seen=seen)

    launcher.stub.ShutdownDomain(launcher_pb2.ShutdownDomainRequest(), timeout=RPC_TIMEOUT)
    stopped = wait_for_event(events, lambda d: d.state == pb.DOMAIN_STATE_SHUTOFF, seen=seen)
    assert stopped.domain.reason == pb.DOMAIN_STATE_REASON_SHUTDOWN
    assert launcher.wait_exit(60) == 0, launcher.log()
    assert not (launcher.run_dir / "nvram").exists(), "the NVRAM goes with the domain"
    assert launcher.leftovers() == []


def test_a_kernel_boot_vmi_boots_the_kernel_and_initrd_the_pod_mounted(
    launchers: Any, guest_dir: Path
) -> None:
    launcher = launchers("kernel")
    boot = launcher.kernel_boot_dir / "boot"
    boot.mkdir(parents=True)
    shutil.copyfile(guest_dir / "vmlinuz", boot / "vmlinuz-6.1")
    (boot / "vmlinuz-virt").symlink_to("/boot/vmlinuz-6.1")  # absolute: inside the image
    shutil.copyfile(guest_dir / "initrd.img", boot / "initramfs-virt")
    launcher.start()
    manifest = launcher.manifest(container_disk=False, firmware={"kernelBoot": KERNEL_BOOT})
    defined = launcher.define(manifest)
    os_element = ET.fromstring(defined.domain_xml).find("os")
    assert os_element is not None
    assert os_element.findtext("kernel") == str(boot.resolve() / "vmlinuz-6.1")
    assert os_element.findtext("initrd") == str(boot.resolve() / "initramfs-virt")
    assert os_element.findtext("cmdline") == KERNEL_BOOT["kernelArgs"]

    launcher.stub.LaunchDomain(launcher_pb2.LaunchDomainRequest(), timeout=RPC_TIMEOUT)
    console = Console(launcher.stub)
    console.wait_for("KVD-GUEST-BOOTED")
    console.wait_for("KVD-FIRMWARE bios\r\n")  # SeaBIOS started the kernel QEMU loaded
    console.wait_for("KVD-READY")
    launcher.stub.ShutdownDomain(launcher_pb2.ShutdownDomainRequest(), timeout=RPC_TIMEOUT)
    console.wait_for("KVD-ACPI-IGNORED")
    launcher.stub.KillDomain(launcher_pb2.KillDomainRequest(), timeout=RPC_TIMEOUT)
    assert launcher.wait_exit(60) == 2, launcher.log()
    assert launcher.leftovers() == []
    assert (boot / "vmlinuz-6.1").exists(), "the pod's image is never touched"


def test_a_kernel_the_image_lacks_is_refused_naming_the_field(
    launchers: Any, guest_dir: Path
) -> None:
    launcher = launchers("nokernel").start()
    manifest = launcher.manifest(firmware={"kernelBoot": KERNEL_BOOT})
    # the launcher pod mounts the image; a launcher whose pod did not has nothing to boot
    error = _refused(launcher, manifest)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        'spec.domain.firmware.kernelBoot.container.image: the image "example.com/kernels/demo:1"'
        f" is not mounted at {launcher.kernel_boot_dir}"
    ) in (error.details() or "")
    _nothing_left(launcher)

    boot = launcher.kernel_boot_dir / "boot"
    boot.mkdir(parents=True)
    shutil.copyfile(guest_dir / "vmlinuz", boot / "vmlinuz")  # not where the VMI looks
    shutil.copyfile(guest_dir / "initrd.img", boot / "initramfs-virt")
    error = _refused(launcher, manifest)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == (
        "spec.domain.firmware.kernelBoot.container.kernelPath: /boot/vmlinuz-virt is not in "
        'image "example.com/kernels/demo:1"'
    )
    _nothing_left(launcher)
    assert launcher.proc is not None and launcher.proc.poll() is None


def test_efi_without_ovmf_is_refused_and_leaves_nothing(launchers: Any) -> None:
    """A node without OVMF: no firmware descriptors where QEMU and libvirt look for them."""
    present = tuple(d for d in ovmf.DESCRIPTOR_DIRS if d.is_dir())  # a tmpfs would create one
    hidden = sandbox.SandboxSpec(tmpfs=(*sandbox.LIBVIRT_DIRS, *present))
    launcher = launchers("noovmf", sandbox_spec=hidden).start()
    for secure, wanted in (
        (False, "OVMF"),
        (True, "OVMF with Secure Boot (SMM, Microsoft's keys enrolled)"),
    ):
        manifest = launcher.manifest(firmware={"bootloader": {"efi": {"secureBoot": secure}}})
        error = _refused(launcher, manifest)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        field = "spec.domain.firmware.bootloader.efi" + (".secureBoot" if secure else "")
        assert error.details() == (
            f"{field}: EFI boot needs {wanted}, but none is installed for this launcher; "
            "install OVMF or boot with BIOS"
        )
        _nothing_left(launcher)
    # the same launcher still boots with BIOS
    defined = launcher.define(launcher.manifest())
    assert defined.domain.state == pb.DOMAIN_STATE_SHUTOFF
    assert ET.fromstring(defined.domain_xml).find("os/loader") is None
