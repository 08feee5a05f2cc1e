"""persistentVolumeClaim: storage Kubernetes has already attached to the pod.

The launcher pod gets each claim at `pvc_dir/<claim name>`: a directory holding `disk.img` for a
filesystem-mode PVC (mounted), or a block device for a block-mode PVC (volumeDevices), as the
controller renders the pod from the claim's volumeMode. Which one is read off the path itself,
so the launcher needs no API access. The disk is raw, never probed (see host_disk) and never
created or deleted here: it belongs to the cluster. (A dataVolume, CDI's wrapper around a PVC of
the same name, is refused by the API until kvd has DataVolumes.)

KubeVirt creates a missing `disk.img` on a filesystem PVC sized from the claim; kvd's launcher
does not know the claim's size, so a missing image is an error naming the claim.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Final

from kvd.api.meta import DNS1123_SUBDOMAIN
from kvd.launcher.converter.context import DiskSource
from kvd.launcher.storage.errors import StorageError

DISK_IMAGE: Final = "disk.img"
_CLAIM_NAME: Final = re.compile(DNS1123_SUBDOMAIN)


def prepare(name: str, claim: str, *, read_only: bool, pvc_dir: Path) -> DiskSource:
    """The claim's disk."""
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
        return DiskSource(path=mount, format="raw", kind="block", read_only=read_only)
    if stat.S_ISDIR(mode):
        image = mount / DISK_IMAGE
        if image.is_file():
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
