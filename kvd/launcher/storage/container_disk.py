"""containerDisk: a qcow2 overlay on the read-only disk image the launcher pod provides.

The pod mounts the image's disk read-only at `container_disk_dir/<volume name>/`: either the
only file there, or the one `containerDisk.path` names (relative to that directory). The guest's
writes go to a qcow2 overlay under the run directory whose backing file is that base, so the
base is only ever read (qemu-img reads its header; QEMU opens backing files read-only) and is
gone from the VMI's point of view when the overlay is. The overlay is QEMU's user's; the base
and every layer under it are shared (the node's image store) and never chowned: each must
already be readable by QEMU's user, or the volume is refused naming the file.

The base is untrusted input (anyone can push an image), so before it is used: its format is
probed once and must be qcow2 or raw, and no layer of its backing chain — nor a qcow2 external
data file — may lie outside the volume's directory; otherwise a guest could read host files
through its disk. Each layer must record its backing format, as libvirt will demand anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from kvd.api.vmi import ContainerDiskSource
from kvd.launcher.converter.context import DiskSource
from kvd.launcher.qemu_user import QemuUser
from kvd.launcher.storage import errors, qemu_img
from kvd.launcher.storage.errors import StorageError
from kvd.launcher.storage.journal import Journal

FORMATS: Final = ("qcow2", "raw")
MAX_CHAIN: Final = 8  # a deeper backing chain in a container image is a mistake or an attack


def prepare(
    name: str,
    source: ContainerDiskSource,
    *,
    container_disk_dir: Path,
    overlay: Path,
    journal: Journal,
    qemu: QemuUser,
) -> DiskSource:
    """Reuse or create `overlay` on this volume's base image."""
    root = container_disk_dir / name
    base = _find_base(name, source, root)
    base_format = _check_chain(name, base, root.resolve(), qemu)
    if overlay.exists() or overlay.is_symlink():
        _check_overlay(name, overlay, base, base_format)
        qemu.own(overlay)
    else:
        journal.make_dirs(overlay.parent)
        with journal.staged(overlay) as partial:
            try:
                qemu_img.create(partial, fmt="qcow2", backing_file=base, backing_format=base_format)
            except qemu_img.QemuImgError as exc:
                raise errors.from_qemu_img(
                    name, f"creating the overlay on {base}", exc, reason="ContainerDiskInvalid"
                ) from exc
            qemu.own(partial)
    return DiskSource(path=overlay, format="qcow2")


def _find_base(name: str, source: ContainerDiskSource, root: Path) -> Path:
    if not root.is_dir():
        raise StorageError(
            name,
            f"containerDisk {source.image}: its disk is not mounted at {root}",
            reason="ContainerDiskNotFound",
        )
    if source.path is not None:
        candidate = root / source.path.lstrip("/")
        if not candidate.is_file():
            raise StorageError(
                name,
                f"containerDisk {source.image}: path {source.path} is not a file ({candidate})",
                reason="ContainerDiskNotFound",
            )
    else:
        files = sorted(p for p in root.iterdir() if p.is_file())
        if len(files) != 1:
            found = ", ".join(p.name for p in files) or "none"
            raise StorageError(
                name,
                f"containerDisk {source.image}: expected exactly one disk file in {root}, "
                f"found {len(files)} ({found}); set containerDisk.path to choose one",
                reason="ContainerDiskNotFound",
            )
        candidate = files[0]
    resolved = candidate.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise StorageError(
            name,
            f"containerDisk {source.image}: {candidate} leads outside the image, to {resolved}",
            reason="ContainerDiskInvalid",
        )
    return resolved


def _check_chain(name: str, base: Path, root: Path, qemu: QemuUser) -> str:
    """The base's format, once every layer under it has been checked to stay inside `root` and
    to be readable by QEMU's user."""
    path, fmt, top_format = base, None, None
    seen = {base}
    for _ in range(MAX_CHAIN):
        what = "the base image" if path == base else "the backing file"
        qemu.check(path, f"containerDisk layer: {what}")
        try:
            image = qemu_img.info(path, fmt=fmt)
        except qemu_img.QemuImgError as exc:
            raise errors.from_qemu_img(
                name, f"reading {path}", exc, reason="ContainerDiskInvalid"
            ) from exc
        if image.format not in FORMATS:
            raise _invalid(name, f"{path} is a {image.format} image; only qcow2 or raw are used")
        top_format = top_format or image.format
        if image.data_file is not None:
            raise _invalid(name, f"{path} keeps its data in an external file ({image.data_file})")
        if image.backing_file is None:
            return top_format
        if image.backing_format is None:
            raise _invalid(name, f"{path} has a backing file but does not record its format")
        backing = Path(image.backing_file)
        resolved = backing.resolve() if backing.is_absolute() else None
        if resolved is None or not resolved.is_relative_to(root):
            raise _invalid(name, f"{path} has a backing file outside the image: {backing}")
        if resolved in seen:
            raise _invalid(name, f"{path} has a backing chain that loops back to {resolved}")
        seen.add(resolved)
        path, fmt = resolved, image.backing_format
    raise _invalid(name, f"{base} has a backing chain deeper than {MAX_CHAIN}")


def _check_overlay(name: str, overlay: Path, base: Path, base_format: str) -> None:
    """An existing overlay is reused only if it is the one this base would get."""
    try:
        image = qemu_img.info(overlay, fmt="qcow2")
    except qemu_img.QemuImgError as exc:
        raise errors.from_qemu_img(
            name, f"reading the existing overlay {overlay}", exc, reason="OverlayInvalid"
        ) from exc
    if image.backing_file != str(base) or image.backing_format != base_format:
        # Not recreated: it holds the guest's writes, and a mismatch means something other than
        # this VMI's spec made it. A person should look before anything is thrown away.
        raise StorageError(
            name,
            f"the existing overlay {overlay} is backed by {image.backing_file} "
            f"({image.backing_format}), not by {base} ({base_format})",
            reason="OverlayMismatch",
        )


def _invalid(name: str, message: str) -> StorageError:
    return StorageError(name, message, reason="ContainerDiskInvalid")
