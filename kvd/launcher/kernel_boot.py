"""The kernel and initrd of `spec.domain.firmware.kernelBoot.container`, where the pod put them.

The launcher pod mounts the kernel-boot image read-only at the launcher's `--kernel-boot-dir`
(an image volume, as for containerDisks), so `kernelPath` and `initrdPath` are paths under that
directory. QEMU reads both files when the domain starts; nothing is copied, so nothing is left
to clean up. Paths resolve as in a container of the image: symlinks (absolute ones too) and
`..` never lead out of it into the launcher's own filesystem. A path that is not a regular file
in the image is refused, naming the field, the path and the image, and so is one that QEMU's
unprivileged user cannot read (the image is shared: its files are never chowned).
"""

from __future__ import annotations

import os
from pathlib import Path

from kvd.api.vmi import KernelBootContainer, VirtualMachineInstanceSpec
from kvd.launcher.converter.context import KernelBootFiles
from kvd.launcher.qemu_user import QemuUser, QemuUserError

FIELD = "spec.domain.firmware.kernelBoot.container"
_MAX_LINKS = 40  # as the kernel's path walk


class KernelBootError(Exception):
    """The kernel-boot image does not have what the VMI names; the message says what."""


def files(
    spec: VirtualMachineInstanceSpec, *, kernel_boot_dir: Path, qemu: QemuUser
) -> KernelBootFiles | None:
    """The kernel and initrd for the converter, readable by `qemu`; None when the VMI boots no
    kernel directly."""
    kernel_boot = spec.domain.firmware.kernel_boot if spec.domain.firmware else None
    container = kernel_boot.container if kernel_boot else None
    if container is None:
        return None
    root = kernel_boot_dir.absolute()
    if not root.is_dir():
        raise KernelBootError(
            f'{FIELD}.image: the image "{container.image}" is not mounted at {root} (the '
            "launcher pod mounts it there; a launcher run by hand needs --kernel-boot-dir)"
        )
    return KernelBootFiles(
        kernel=_file(root, container, "kernelPath", container.kernel_path, qemu),
        initrd=_file(root, container, "initrdPath", container.initrd_path, qemu),
    )


def _file(
    root: Path, container: KernelBootContainer, name: str, path: str | None, qemu: QemuUser
) -> Path | None:
    if path is None:
        return None
    field, image = f"{FIELD}.{name}", f'image "{container.image}"'
    found = _lookup(root.resolve(), path, field=field)
    if not found.exists():
        raise KernelBootError(f"{field}: {path} is not in {image}")
    if not found.is_file():
        raise KernelBootError(f"{field}: {path} in {image} is not a regular file")
    try:
        qemu.check(found, f"{field}: {path} in {image}, at")
    except QemuUserError as exc:
        raise KernelBootError(str(exc)) from exc
    return found


def _lookup(root: Path, path: str, *, field: str) -> Path:
    """`path` as a process whose root is the image finds it: symlinks, absolute ones included,
    and `..` resolve inside `root`, as they would in a container of that image."""
    parts = _parts(path)
    current, links = root, 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        following = current / part
        if not following.is_symlink():
            current = following
            continue
        links += 1
        if links > _MAX_LINKS:
            raise KernelBootError(f"{field}: {path}: too many levels of symbolic links")
        target = os.readlink(following)
        if target.startswith("/"):
            current = root
        parts = _parts(target) + parts
    return current


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]
