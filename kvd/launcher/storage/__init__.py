"""The launcher's disks: each VMI volume made into a `DiskSource` the converter can present.

`prepare` turns every volume of a VMI into a file or block device, and `cleanup` removes what
it made. Everything storage creates lives under `run_dir/disks/`, which storage owns alone:

    run_dir/disks/container-disks/<volume>.qcow2   overlay on the pod's read-only base
    run_dir/disks/empty-disks/<volume>.qcow2       sparse emptyDisk
    run_dir/disks/cloud-init/<volume>.iso          NoCloud or ConfigDrive ISO
    run_dir/disks/block/<volume>                   QEMU's own node of a block PVC's device

Inputs stay where the pod puts them and are never written or removed: container disk bases at
`container_disk_dir/<volume>/`, PVCs at `pvc_dir/<claim>`, a hostDisk in its directory, which
the pod mounts at `host_disk_dir/<volume>/` (a DiskOrCreate hostDisk is created there, and
outlives the VMI as in KubeVirt).

QEMU runs unprivileged (kvd/launcher/qemu_user.py): what storage creates is made QEMU's user's,
in directories it can only pass through; the inputs are checked to be readable by it (shared
ones) or given to it (the VMI's own PVC or hostDisk file), and a volume QEMU could not open is
refused here, naming the file, rather than by QEMU at start.

`prepare` is idempotent, because DefineDomain is: a second call with the same VMI reuses every
file and changes none (an emptyDisk is never zeroed, an overlay never recreated). A call that
fails halfway removes what it created and raises a `StorageError` (the user must fix the
volume) or `TemporaryStorageError` (the node failed; retry), naming the volume. Calls for one
run_dir must not overlap; the launcher serialises domain commands.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kvd import logs
from kvd.api.vmi import VirtualMachineInstance, Volume
from kvd.launcher.converter.context import DiskSource
from kvd.launcher.qemu_user import QemuUser, QemuUserError
from kvd.launcher.storage import (
    cloud_init,
    container_disk,
    empty_disk,
    errors,
    host_disk,
    pvc,
    qemu_img,
)
from kvd.launcher.storage.errors import StorageError, TemporaryStorageError, VolumeError
from kvd.launcher.storage.journal import Journal

__all__ = ["StorageError", "TemporaryStorageError", "VolumeError", "cleanup", "prepare"]

DISKS_DIR: Final = "disks"


@dataclass(frozen=True)
class _Layout:
    run_dir: Path
    container_disk_dir: Path
    pvc_dir: Path
    host_disk_dir: Path
    pvc_capacities: Mapping[str, int]

    @property
    def disks(self) -> Path:
        return self.run_dir / DISKS_DIR

    def overlay(self, volume: str) -> Path:
        return self.disks / "container-disks" / f"{volume}.qcow2"

    def empty_disk(self, volume: str) -> Path:
        return self.disks / "empty-disks" / f"{volume}.qcow2"

    def iso(self, volume: str) -> Path:
        return self.disks / "cloud-init" / f"{volume}.iso"

    def block_node(self, volume: str) -> Path:
        return self.disks / "block" / volume


def prepare(
    vmi: VirtualMachineInstance,
    *,
    run_dir: Path,
    container_disk_dir: Path,
    pvc_dir: Path,
    host_disk_dir: Path,
    qemu: QemuUser,
    pvc_capacities: Mapping[str, int] | None = None,
) -> dict[str, DiskSource]:
    """Every volume of `vmi` → where its disk is, usable by `qemu`; all or nothing."""
    layout = _Layout(
        run_dir.absolute(),
        container_disk_dir.absolute(),
        pvc_dir.absolute(),
        host_disk_dir.absolute(),
        pvc_capacities or {},
    )
    log = logs.get_logger(__name__)  # the launcher binds vmi and uid for the whole call
    journal = Journal(qemu.own_directory)
    sources: dict[str, DiskSource] = {}
    try:
        for volume in vmi.spec.volumes:
            started, before = time.monotonic(), len(journal.created)
            sources[volume.name] = _prepare_volume(volume, vmi, layout, journal, qemu)
            log.info(
                "volume_prepared",
                volume=volume.name,
                path=str(sources[volume.name].path),
                created=len(journal.created) > before,
                ms=round((time.monotonic() - started) * 1000, 1),
            )
    except BaseException:
        journal.rollback()
        raise
    return sources


def cleanup(run_dir: Path) -> None:
    """Remove everything `prepare` created for this run_dir; nothing else. Idempotent.

    That is `run_dir/disks/` and nothing more: hostDisks, PVCs and container disk bases live
    elsewhere and belong to the user, the cluster or the pod. `rmtree` does not follow
    symlinks, so a link under disks/ cannot lead it outside. OSError propagates: the caller
    logs it and may retry.
    """
    with contextlib.suppress(FileNotFoundError):  # never prepared, or already cleaned up
        shutil.rmtree(run_dir.absolute() / DISKS_DIR)


def _prepare_volume(
    volume: Volume, vmi: VirtualMachineInstance, layout: _Layout, journal: Journal, qemu: QemuUser
) -> DiskSource:
    name = volume.name
    try:
        return _dispatch(volume, vmi, layout, journal, qemu)
    except VolumeError:
        raise
    except QemuUserError as exc:
        raise StorageError(name, str(exc), reason="VolumeNotAccessible") from exc
    except qemu_img.QemuImgError as exc:
        raise errors.from_qemu_img(
            name, "preparing the disk", exc, reason="VolumeNotUsable"
        ) from exc
    except OSError as exc:
        raise errors.from_os_error(name, "preparing the disk", exc) from exc


def _dispatch(
    volume: Volume, vmi: VirtualMachineInstance, layout: _Layout, journal: Journal, qemu: QemuUser
) -> DiskSource:
    name = volume.name
    if volume.container_disk is not None:
        return container_disk.prepare(
            name,
            volume.container_disk,
            container_disk_dir=layout.container_disk_dir,
            overlay=layout.overlay(name),
            journal=journal,
            qemu=qemu,
        )
    if volume.empty_disk is not None:
        return empty_disk.prepare(
            name, volume.empty_disk, target=layout.empty_disk(name), journal=journal, qemu=qemu
        )
    if volume.cloud_init_no_cloud is not None:
        files = cloud_init.nocloud_files(name, volume.cloud_init_no_cloud, vmi)
        return cloud_init.prepare(
            name,
            label=cloud_init.NOCLOUD_LABEL,
            files=files,
            target=layout.iso(name),
            journal=journal,
            qemu=qemu,
        )
    if volume.cloud_init_config_drive is not None:
        files = cloud_init.config_drive_files(name, volume.cloud_init_config_drive, vmi)
        return cloud_init.prepare(
            name,
            label=cloud_init.CONFIG_DRIVE_LABEL,
            files=files,
            target=layout.iso(name),
            journal=journal,
            qemu=qemu,
        )
    if volume.host_disk is not None:
        return host_disk.prepare(
            name, volume.host_disk, mount=layout.host_disk_dir / name, journal=journal, qemu=qemu
        )
    if (claim := volume.claim()) is not None:  # a dataVolume reaches the pod as its claim
        return pvc.prepare(
            name,
            claim.claim_name,
            read_only=bool(claim.read_only),
            pvc_dir=layout.pvc_dir,
            capacity=layout.pvc_capacities.get(claim.claim_name),
            node=layout.block_node(name),
            journal=journal,
            qemu=qemu,
        )
    raise StorageError(name, "the volume has no source kvd knows", reason="VolumeNotSupported")
