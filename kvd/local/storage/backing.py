"""Where local PVs keep their data: a directory (Filesystem) or a sparse file under a loop
device (Block), both under one root in the data dir, named after the PV.

    ROOT/<pv>/        a Filesystem volume: the directory pods mount
    ROOT/<pv>.img     a Block volume's backing file; pods get the loop device over it

A directory has no size of its own: a Filesystem volume's capacity is recorded on the PV, not
enforced (a pod can write until the host's file system is full). A Block volume's is exact: the
file is `truncate`d to it (sparse, so nothing is written until the guest writes) and the device
over it has that many bytes. Creating is all-or-nothing: a failure removes what it made.
Growing: the file is extended and the device told (`losetup -c`); a directory only gets the new
number on its PV. Deleting detaches the device first, then removes the data.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from kvd import logs
from kvd.local.storage import loop

log = logs.get_logger(__name__)

STORAGE_DIR = "storage"  # under the node's state dir
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class BackingError(Exception):
    pass


@dataclass(frozen=True)
class Backing:
    root: Path

    def directory(self, pv: str) -> Path:
        return self.root / _checked(pv)

    def file(self, pv: str) -> Path:
        return self.root / f"{_checked(pv)}.img"

    def owns(self, path: str | Path) -> bool:
        """Whether `path` is one of this root's volumes (never delete anything else)."""
        return Path(path).parent == self.root

    def create(self, pv: str, *, size: int, block: bool) -> Path:
        """The new volume's path (a directory, or the backing file with a device attached)."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not block:
            path = self.directory(pv)
            path.mkdir(mode=0o777, exist_ok=True)
            path.chmod(0o777)  # as local-path-provisioner: any pod's user may write
            return path
        path = self.file(pv)
        try:
            with open(path, "ab") as f:  # existing data (a retried create) is kept
                if os.fstat(f.fileno()).st_size < size:
                    os.ftruncate(f.fileno(), size)
            loop.attach(path)
        except (OSError, loop.LoopError) as exc:
            self.delete(pv, block=True)
            raise BackingError(f"cannot create block volume {pv}: {exc}") from exc
        return path

    def grow(self, pv: str, *, size: int, block: bool) -> None:
        if not block:
            return  # nothing on disk has a size: the PV's capacity is the record
        path = self.file(pv)
        try:
            with open(path, "r+b") as f:
                if os.fstat(f.fileno()).st_size < size:
                    os.ftruncate(f.fileno(), size)
            loop.refresh(path)
        except (OSError, loop.LoopError) as exc:
            raise BackingError(f"cannot grow block volume {pv}: {exc}") from exc

    def delete(self, pv: str, *, block: bool) -> None:
        if block:
            path = self.file(pv)
            try:
                loop.detach(path)
            except loop.LoopError as exc:
                raise BackingError(f"cannot detach block volume {pv}: {exc}") from exc
            path.unlink(missing_ok=True)
        else:
            directory = self.directory(pv)
            if directory.exists():
                shutil.rmtree(directory)
        log.info("volume_data_removed", pv=pv, block=block)

    def attach_all(self) -> list[str]:
        """Re-attach a device over every block volume's file (after a node restart); the PVs
        whose file could not be attached, with why."""
        failed = []
        for path in sorted(self.root.glob("*.img")) if self.root.exists() else []:
            try:
                loop.attach(path)
            except loop.LoopError as exc:
                failed.append(f"{path.stem}: {exc}")
        return failed

    def detach_all(self) -> None:
        """Detach every block volume's device (`kvd local down`); the data stays."""
        for path in sorted(self.root.glob("*.img")) if self.root.exists() else []:
            try:
                loop.detach(path)
            except loop.LoopError as exc:
                log.warning("loop_detach_failed", backing=str(path), error=str(exc))


def _checked(pv: str) -> str:
    # The name becomes a path under the root: nothing that could climb out of it.
    if not _NAME.match(pv) or len(pv) > 253:
        raise BackingError(f"{pv!r} is not a volume name this node stores")
    return pv
