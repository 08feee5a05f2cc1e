"""Why a volume could not be prepared, split by what the caller should do about it.

Following kopf's permanent/temporary split (CONVENTIONS.md, shape 5), every `VolumeError` names
the volume and carries a CamelCase `reason`:

- `StorageError` (a `ValueError`): input the user can fix — a missing claim, a container disk
  with two files, a base image pointing outside its volume. The same VMI fails the same way
  again, so it becomes a condition; gRPC answers INVALID_ARGUMENT or FAILED_PRECONDITION.
- `TemporaryStorageError`: the node failed us — disk full, I/O error, qemu-img timed out or
  missing. Retry with backoff; gRPC answers UNAVAILABLE.
"""

from __future__ import annotations

import errno
from typing import Final

from kvd.launcher.storage.qemu_img import QemuImgError

TEMPORARY_REASON: Final = "StorageUnavailable"


class VolumeError(Exception):
    """A volume that could not be prepared; `volume` names it, `reason` is CamelCase."""

    def __init__(self, volume: str, message: str, *, reason: str) -> None:
        self.volume = volume
        self.reason = reason
        self.detail = message
        super().__init__(f'volume "{volume}": {message}')


class StorageError(VolumeError, ValueError):
    """Bad or missing input the user can fix; retrying will not help."""


class TemporaryStorageError(VolumeError):
    """A temporary failure of the node (space, I/O, a slow or missing tool); retry later."""


# errno values that describe the user's input (a path that is not there, not a file, not ours
# to write, too large for its filesystem) rather than the node's health. Anything else (ENOSPC,
# EIO, ENOMEM …) is taken as temporary: a retry costs little, failing a VMI for a full disk
# costs the VMI.
_INPUT_ERRNOS: Final = frozenset(
    {
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ELOOP,
        errno.ENAMETOOLONG,
        errno.EEXIST,
        errno.EFBIG,
    }
)


def from_os_error(volume: str, action: str, exc: OSError) -> VolumeError:
    """Classify an OSError raised while `action` (e.g. "creating /x") was done for `volume`."""
    message = f"{action}: {exc.strerror or exc}"
    if exc.filename is not None and str(exc.filename) not in action:
        message += f" ({exc.filename})"
    if exc.errno in _INPUT_ERRNOS:
        return StorageError(volume, message, reason="VolumeNotUsable")
    return TemporaryStorageError(volume, message, reason=TEMPORARY_REASON)


def from_qemu_img(volume: str, action: str, exc: QemuImgError, *, reason: str) -> VolumeError:
    """Classify a qemu-img failure; `reason` is used when the input is at fault."""
    message = f"{action}: {exc.message}"
    if exc.transient:
        return TemporaryStorageError(volume, message, reason=TEMPORARY_REASON)
    return StorageError(volume, message, reason=reason)
