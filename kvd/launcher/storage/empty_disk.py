"""emptyDisk: a sparse qcow2 of the requested capacity, living as long as the VMI.

qcow2 rather than a sparse raw file: its size is independent of the filesystem's support for
holes, and QEMU grows it only as the guest writes. The capacity is rounded up to whole sectors
and the created image is checked to have exactly that virtual size, so the guest sees what the
spec asked for. An existing disk is never recreated: it holds what the guest wrote before a
launcher restart, and "same VMI, second call" must change nothing. It is QEMU's user's (0600).
"""

from __future__ import annotations

from pathlib import Path

from kvd.api.vmi import EmptyDiskSource
from kvd.launcher.converter.context import DiskSource
from kvd.launcher.qemu_user import QemuUser
from kvd.launcher.storage import capacity, errors, qemu_img
from kvd.launcher.storage.errors import StorageError, TemporaryStorageError
from kvd.launcher.storage.journal import Journal


def prepare(
    name: str, source: EmptyDiskSource, *, target: Path, journal: Journal, qemu: QemuUser
) -> DiskSource:
    size = capacity.disk_bytes(source.capacity)
    if target.exists() or target.is_symlink():
        actual = _virtual_size(name, target)
        if actual != size:
            raise StorageError(
                name,
                f"the existing emptyDisk {target} holds {actual} bytes, not the {size} the spec "
                "asks for; it is kept, not recreated, because it holds the guest's data",
                reason="EmptyDiskMismatch",
            )
        qemu.own(target)
        return DiskSource(path=target, format="qcow2")
    journal.make_dirs(target.parent)
    with journal.staged(target) as partial:
        try:
            qemu_img.create(partial, fmt="qcow2", size=size)
        except qemu_img.QemuImgError as exc:
            # Creation only fails on the size the user asked for (too large for qcow2) or on
            # the node (space, I/O); from_qemu_img tells the two apart.
            raise errors.from_qemu_img(
                name, f"creating a {size}-byte emptyDisk", exc, reason="EmptyDiskInvalid"
            ) from exc
        actual = _virtual_size(name, partial)
        if actual != size:
            raise TemporaryStorageError(
                name,
                f"qemu-img made a {actual}-byte emptyDisk when {size} bytes were asked for",
                reason="EmptyDiskSizeMismatch",
            )
        qemu.own(partial)
    return DiskSource(path=target, format="qcow2")


def _virtual_size(name: str, path: Path) -> int:
    try:
        return qemu_img.info(path, fmt="qcow2").virtual_size
    except qemu_img.QemuImgError as exc:
        raise errors.from_qemu_img(
            name, f"reading the emptyDisk {path}", exc, reason="EmptyDiskInvalid"
        ) from exc
