"""hostDisk: a raw disk image file on the node, which outlives the VMI.

The pod does not see the node's filesystem: as KubeVirt renders it, the disk's directory is a
hostPath volume (`DirectoryOrCreate` for DiskOrCreate, so the kubelet makes missing parents;
`Directory` for Disk) mounted at `<host disk dir>/<volume>`, and the file is there under its own
name. Messages name the path the user wrote, which is the one they can look at.

`Disk` uses an existing file and refuses a missing one. `DiskOrCreate` creates a sparse raw
file of `capacity` (rounded up to whole sectors), but only when nothing is there; an existing
file is used as it is, never resized or zeroed.

As in KubeVirt, hostDisk files are the user's: `cleanup` never deletes them, and nothing needs to
remember who created one. The single exception is a `prepare` call that fails halfway: the file
*that call* created is removed with the rest of its work (its journal), so a failed start leaves
the node as it found it. The file is created with O_EXCL, so two VMIs sharing a DiskOrCreate path
never both create (or truncate) it.

QEMU runs unprivileged: a created file is QEMU's user's (0600); an existing one that user could
not read and write is given to it (chown of the file alone, never its directory, and kept after
the VMI: qemu_user.py says why). Its directory must let QEMU's user through; the user's own
directory is not changed, so one that does not is refused, naming it.

Raw, never probed: a format probe on a file the guest writes would let the guest turn it into a
qcow2 header pointing at any host file.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from kvd import logs
from kvd.api.vmi import HostDiskSource
from kvd.launcher.converter.context import DiskSource
from kvd.launcher.qemu_user import QemuUser
from kvd.launcher.storage import capacity, errors
from kvd.launcher.storage.errors import StorageError
from kvd.launcher.storage.journal import Journal

log = logs.get_logger(__name__)


def prepare(
    name: str, source: HostDiskSource, *, mount: Path, journal: Journal, qemu: QemuUser
) -> DiskSource:
    """The disk `source.path` names, found in `mount`: where the pod has its directory."""
    wanted = source.path
    if not mount.is_dir():
        raise StorageError(
            name,
            f"hostDisk {wanted}: its directory is not mounted at {mount} (the launcher pod "
            "mounts it there; a launcher run by hand needs --host-disk-dir)",
            reason="HostDiskNotMounted",
        )
    path = mount / posixpath.basename(wanted)
    disk = DiskSource(path=path, format="raw")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise StorageError(
                name, f"hostDisk {wanted} is not a regular file", reason="HostDiskInvalid"
            )
        if qemu.adopt(path, f"hostDisk {wanted}:", write=True):
            log.info("host_disk_given_to_qemu", volume=name, path=str(path), user=qemu.name)
        qemu.check(path, f"hostDisk {wanted}:", write=True)
        return disk
    if source.type == "Disk":
        raise StorageError(
            name,
            f"hostDisk {wanted} does not exist (type Disk uses an existing file; "
            "DiskOrCreate would create it)",
            reason="HostDiskNotFound",
        )
    if source.capacity is None:  # API validation requires it; be explicit if it was skipped
        raise StorageError(
            name, "a DiskOrCreate hostDisk needs a capacity", reason="HostDiskInvalid"
        )
    size = capacity.disk_bytes(source.capacity)
    try:
        _create_sparse(path, size, journal, qemu)
    except OSError as exc:
        raise errors.from_os_error(name, f"creating hostDisk {wanted}", exc) from exc
    qemu.check(path, f"hostDisk {wanted}:", write=True)
    return disk


def _create_sparse(path: Path, size: int, journal: Journal, qemu: QemuUser) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        qemu.adopt(path, "hostDisk", write=True)  # made meanwhile by a VMI sharing the path
        return
    journal.created_file(path)  # before sizing it, so a failed truncate is rolled back too
    try:
        os.fchown(fd, qemu.uid, qemu.gid)
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
