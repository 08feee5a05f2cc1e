"""The kernel and initrd of a kernelBoot container, found in the image the pod mounted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from kvd.api import kinds
from kvd.api.vmi import VirtualMachineInstance, VirtualMachineInstanceSpec
from kvd.launcher import kernel_boot
from kvd.launcher.converter.context import KernelBootFiles
from tests.launcher.conftest import QEMU

IMAGE = "example.com/kernels/demo:1"


def _spec(container: dict[str, Any] | None) -> VirtualMachineInstanceSpec:
    domain: dict[str, Any] = {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}}
    if container is not None:
        domain["firmware"] = {"kernelBoot": {"container": {"image": IMAGE, **container}}}
    vmi = kinds.load(
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": "v", "namespace": "ns", "uid": "u"},
            "spec": {"domain": domain},
        }
    )
    assert isinstance(vmi, VirtualMachineInstance)
    return vmi.spec


@pytest.fixture
def image(reachable_tmp: Path) -> Path:
    """An image root as the pod mounts it, with a kernel, an initrd and a few links."""
    root = reachable_tmp / "image"
    (root / "boot").mkdir(parents=True)
    (root / "boot" / "vmlinuz-6.1").write_bytes(b"kernel")
    (root / "boot" / "initrd.img-6.1").write_bytes(b"initrd")
    (root / "vmlinuz").symlink_to("boot/vmlinuz-6.1")  # Debian's style: relative
    (root / "boot" / "vmlinuz").symlink_to("/boot/vmlinuz-6.1")  # absolute, in the image
    (root / "boot" / "escape").symlink_to("/etc/hostname")  # absolute: the image's /etc
    (root / "loop").symlink_to("loop")
    return root


def test_no_kernel_boot_no_files(tmp_path: Path) -> None:
    assert kernel_boot.files(_spec(None), kernel_boot_dir=tmp_path / "absent", qemu=QEMU) is None


@pytest.mark.parametrize(
    ("container", "kernel", "initrd"),
    [
        pytest.param(
            {"kernelPath": "/boot/vmlinuz-6.1", "initrdPath": "/boot/initrd.img-6.1"},
            "boot/vmlinuz-6.1",
            "boot/initrd.img-6.1",
            id="plain",
        ),
        pytest.param({"kernelPath": "/vmlinuz"}, "boot/vmlinuz-6.1", None, id="relative-link"),
        pytest.param({"kernelPath": "/boot/vmlinuz"}, "boot/vmlinuz-6.1", None, id="absolute-link"),
        pytest.param(
            {"kernelPath": "/../../boot/./vmlinuz-6.1"}, "boot/vmlinuz-6.1", None, id="dotdot"
        ),
        pytest.param(
            {"initrdPath": "/boot/initrd.img-6.1"}, None, "boot/initrd.img-6.1", id="initrd-only"
        ),
    ],
)
def test_paths_resolve_inside_the_image(
    image: Path, container: dict[str, Any], kernel: str | None, initrd: str | None
) -> None:
    found = kernel_boot.files(_spec(container), kernel_boot_dir=image, qemu=QEMU)
    assert found == KernelBootFiles(
        kernel=image.resolve() / kernel if kernel else None,
        initrd=image.resolve() / initrd if initrd else None,
    )


FIELD = "spec.domain.firmware.kernelBoot.container"


@pytest.mark.parametrize(
    ("container", "message"),
    [
        pytest.param(
            {"kernelPath": "/boot/vmlinuz-virt"},
            f'{FIELD}.kernelPath: /boot/vmlinuz-virt is not in image "{IMAGE}"',
            id="missing-kernel",
        ),
        pytest.param(
            {"kernelPath": "/vmlinuz", "initrdPath": "/boot/initramfs-virt"},
            f'{FIELD}.initrdPath: /boot/initramfs-virt is not in image "{IMAGE}"',
            id="missing-initrd",
        ),
        pytest.param(
            {"kernelPath": "/boot"},
            f'{FIELD}.kernelPath: /boot in image "{IMAGE}" is not a regular file',
            id="directory",
        ),
        pytest.param(
            {"kernelPath": "/boot/escape"},
            f'{FIELD}.kernelPath: /boot/escape is not in image "{IMAGE}"',
            id="link-to-the-launchers-own-file",
        ),
        pytest.param(
            {"kernelPath": "/loop"},
            f"{FIELD}.kernelPath: /loop: too many levels of symbolic links",
            id="loop",
        ),
    ],
)
def test_what_the_image_lacks_is_named(
    image: Path, container: dict[str, Any], message: str
) -> None:
    assert os.path.exists("/etc/hostname")  # so the escape would find something outside
    with pytest.raises(kernel_boot.KernelBootError) as caught:
        kernel_boot.files(_spec(container), kernel_boot_dir=image, qemu=QEMU)
    assert str(caught.value) == message


def test_an_image_the_pod_did_not_mount(tmp_path: Path) -> None:
    with pytest.raises(kernel_boot.KernelBootError, match=r"container\.image: the image "):
        kernel_boot.files(
            _spec({"kernelPath": "/vmlinuz"}), kernel_boot_dir=tmp_path / "x", qemu=QEMU
        )


def test_a_file_qemu_cannot_read_is_refused_and_left_alone(image: Path) -> None:
    """The image is shared: the launcher never chowns it, and QEMU runs unprivileged."""
    kernel = image / "boot" / "vmlinuz-6.1"
    kernel.chmod(0o600)
    with pytest.raises(kernel_boot.KernelBootError, match=r"kernelPath: /vmlinuz in image") as e:
        kernel_boot.files(_spec({"kernelPath": "/vmlinuz"}), kernel_boot_dir=image, qemu=QEMU)
    assert "-rw------- root:root" in str(e.value) and QEMU.name in str(e.value)
    st = kernel.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o600)
