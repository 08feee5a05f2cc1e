"""persistentVolumeClaim: storage Kubernetes has already attached to the pod.

The launcher pod gets each claim at `pvc_dir/<claim name>`: a directory holding `disk.img` for a
filesystem-mode PVC (mounted), or a block device for a block-mode PVC (volumeDevices), as the
controller renders the pod from the claim's volumeMode. Which one is read off the path itself,
so the launcher needs no API access. The disk is raw, never probed (see host_disk) and never
created or deleted here: it belongs to the cluster. (A dataVolume, CDI's wrapper around a PVC of
the same name, arrives here as that claim.)

QEMU runs unprivileged (kvd/launcher/qemu_user.py):

- `disk.img` is the VMI's own disk: if QEMU's user could not open it (for writing too, unless the
  claim is read-only), it is given to that user — chown of that file alone, never the claim's
  directory, which must already let the user through (as a kubelet's fsGroup would make it).
- A block device is never chowned: on kvd's local node the pod's node *is* the host's device
  node (the same inode, bind-mounted), and on any node the pod's may be shared. QEMU gets its own
  node instead: `mknod` of the same device number under the run dir, owned by QEMU's user, 0600
  (0400 read-only), made afresh or checked on every call and removed with the run dir's disks.
  That needs CAP_MKNOD (a container runtime's default) and a run dir on a file system not
  mounted `nodev`; a launcher without either refuses the volume, saying which.

A filesystem claim without `disk.img` gets one, as KubeVirt's launcher makes it: sparse (nothing
is written until the guest writes), sized from the claim's capacity (the controller renders it
as `--pvc-capacity`) less KubeVirt's default file system overhead of 5.5% — room the file
system's own metadata needs, so the guest can fill its disk without the volume filling up
first — rounded down to whole MiB. A claim whose capacity the launcher was not given keeps the
old rule: a missing image is an error naming the claim. An existing image is used as it is.
"""

from __future__ import annotations

import os
import re
import stat
from fractions import Fraction
from pathlib import Path
from typing import Final

from kvd import logs
from kvd.api.meta import DNS1123_SUBDOMAIN
from kvd.launcher.converter.context import DiskSource
from kvd.launcher.qemu_user import QemuUser
from kvd.launcher.storage.errors import StorageError
from kvd.launcher.storage.journal import Journal

DISK_IMAGE: Final = "disk.img"
FILESYSTEM_OVERHEAD: Final = Fraction(55, 1000)  # KubeVirt's (CDI's) default, 0.055
_MIB: Final = 1 << 20
_CLAIM_NAME: Final = re.compile(DNS1123_SUBDOMAIN)
log = logs.get_logger(__name__)


def prepare(
    name: str,
    claim: str,
    *,
    read_only: bool,
    pvc_dir: Path,
    node: Path,
    journal: Journal,
    qemu: QemuUser,
    capacity: int | None = None,
) -> DiskSource:
    """The claim's disk; `node` is where QEMU's own node of a block device goes."""
    what = f'persistentVolumeClaim "{claim}"'
    if len(claim) > 253 or not _CLAIM_NAME.match(claim):
        # The name becomes a path: "../x" must not reach outside pvc_dir.
        raise StorageError(name, f"{what}: not a valid claim name", reason="PVCInvalid")
    mount = pvc_dir / claim
    try:
        mode = mount.stat().st_mode
    except FileNotFoundError:
        raise StorageError(
            name, f"{what} is not attached to the pod: nothing at {mount}", reason="PVCNotFound"
        ) from None
    if stat.S_ISBLK(mode):
        _private_node(name, what, mount, node, read_only=read_only, journal=journal, qemu=qemu)
        return DiskSource(path=node, format="raw", kind="block", read_only=read_only)
    if stat.S_ISDIR(mode):
        image = mount / DISK_IMAGE
        if not image.exists() and capacity is not None and not read_only:
            _create_image(name, what, image, capacity, journal=journal, qemu=qemu)
        if image.is_file():
            if qemu.adopt(image, f"{what}:", write=not read_only):
                log.info("pvc_disk_given_to_qemu", volume=name, path=str(image), user=qemu.name)
            qemu.check(image, f"{what}:", write=not read_only)
            return DiskSource(path=image, format="raw", read_only=read_only)
        raise StorageError(
            name,
            f"{what} (filesystem mode) has no {DISK_IMAGE}: expected the disk at {image}",
            reason="PVCNotFound",
        )
    raise StorageError(
        name,
        f"{what}: {mount} is neither a block device nor a directory holding {DISK_IMAGE}",
        reason="PVCInvalid",
    )


def _private_node(
    name: str,
    what: str,
    device: Path,
    node: Path,
    *,
    read_only: bool,
    journal: Journal,
    qemu: QemuUser,
) -> None:
    """QEMU's own node for `device` at `node` (see the module doc); the pod's is left as it is."""
    rdev = device.stat().st_rdev
    try:
        existing = node.lstat()
    except FileNotFoundError:
        existing = None
    if existing is not None:
        if stat.S_ISBLK(existing.st_mode) and existing.st_rdev == rdev:
            qemu.own(node, read_only=read_only)
            return
        node.unlink()  # ours, and derived: a node of another device (the claim changed)
    journal.make_dirs(node.parent)
    if os.statvfs(node.parent).f_flag & os.ST_NODEV:
        raise StorageError(
            name,
            f"{what} is a block device, and QEMU, which runs as {qemu}, needs its own node of "
            f"it; the launcher's run dir ({node.parent}) is on a file system mounted nodev, "
            "where no device node can be opened",
            reason="PVCNotUsable",
        )
    with journal.staged(node) as partial:
        partial.unlink(missing_ok=True)  # left by a launcher killed right here
        os.mknod(partial, stat.S_IFBLK | 0o600, rdev)
        qemu.own(partial, read_only=read_only)
    log.info(
        "block_node_made",
        volume=name,
        node=str(node),
        device=f"{os.major(rdev)}:{os.minor(rdev)}",
        user=qemu.name,
    )


def image_size(capacity: int) -> int:
    """The size of the disk.img KubeVirt makes on a claim of `capacity` bytes."""
    usable = int(capacity * (1 - FILESYSTEM_OVERHEAD))
    return usable // _MIB * _MIB


def _create_image(
    name: str, what: str, image: Path, capacity: int, *, journal: Journal, qemu: QemuUser
) -> None:
    size = image_size(capacity)
    if size <= 0:
        raise StorageError(
            name,
            f"{what}: its capacity ({capacity} bytes) leaves no room for a disk after the "
            f"file system overhead of {float(FILESYSTEM_OVERHEAD):.1%}",
            reason="PVCNotUsable",
        )
    try:
        fd = os.open(image, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return  # made meanwhile: used as it is
    except OSError as exc:
        raise StorageError(
            name, f"{what}: cannot create {image}: {exc.strerror}", reason="PVCNotUsable"
        ) from exc
    journal.created_file(image)  # before sizing it, so a failed truncate is rolled back too
    try:
        os.fchown(fd, qemu.uid, qemu.gid)
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    log.info("pvc_disk_created", volume=name, path=str(image), size=size, capacity=capacity)
