"""The few `qemu-img` calls storage makes, typed, bounded and with qemu-img's own words on failure.

Every call has a timeout (a hung NFS-backed image must not hang DefineDomain) and a failure
carries qemu-img's stderr. `info` always passes `--force-share`: it only reads headers, and a
second `prepare` for a running VMI must be able to inspect an overlay QEMU holds locked. Paths
are passed absolute so that qemu-img never reads a `name:` prefix as a protocol.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

QEMU_IMG: Final = "qemu-img"
INFO_TIMEOUT: Final = 30.0
CREATE_TIMEOUT: Final = 60.0

# stderr fragments that mean the node, not the image, is at fault: worth a retry.
_TRANSIENT: Final = (
    "No space left on device",
    "Disk quota exceeded",
    "Input/output error",
    "Resource temporarily unavailable",
    "Cannot allocate memory",
    "Failed to get",  # an image lock held by another process
)


class QemuImgError(Exception):
    """qemu-img failed; `message` is its stderr (or why it could not run)."""

    def __init__(self, args: Sequence[str], message: str, *, transient: bool) -> None:
        self.command = (QEMU_IMG, *args)
        self.message = message
        self.transient = transient
        super().__init__(f"qemu-img {' '.join(args)}: {message}")


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    """What `qemu-img info` says about one image (not its backing chain)."""

    format: str
    virtual_size: int
    backing_file: str | None  # as resolved by qemu-img (full-backing-filename)
    backing_format: str | None
    data_file: str | None  # a qcow2 external data file: bytes that live elsewhere


def info(path: Path, *, fmt: str | None = None, timeout: float = INFO_TIMEOUT) -> ImageInfo:
    """Inspect `path`; `fmt` None lets qemu-img probe the format."""
    args = ["info", "--output=json", "--force-share"]
    if fmt is not None:
        args += ["-f", fmt]
    raw = json.loads(_run([*args, str(path.absolute())], timeout=timeout))
    specific = raw.get("format-specific", {}).get("data", {})
    return ImageInfo(
        format=str(raw["format"]),
        virtual_size=int(raw["virtual-size"]),
        backing_file=_optional_str(raw.get("full-backing-filename") or raw.get("backing-filename")),
        backing_format=_optional_str(raw.get("backing-filename-format")),
        data_file=_optional_str(specific.get("data-file")),
    )


def create(
    path: Path,
    *,
    fmt: str,
    size: int | None = None,
    backing_file: Path | None = None,
    backing_format: str | None = None,
    timeout: float = CREATE_TIMEOUT,
) -> None:
    """Create an image; with `backing_file`, its size is the backing file's."""
    args = ["create", "-q", "-f", fmt]
    if backing_file is not None:
        if backing_format is None:
            raise ValueError("a backing file needs its format (qemu-img refuses to guess)")
        args += ["-F", backing_format, "-b", str(backing_file.absolute())]
    args.append(str(path.absolute()))
    if size is not None:
        args.append(str(size))
    _run(args, timeout=timeout)


def _run(args: Sequence[str], *, timeout: float) -> str:
    try:
        done = subprocess.run(
            [QEMU_IMG, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise QemuImgError(args, f"{QEMU_IMG} is not installed", transient=True) from None
    except subprocess.TimeoutExpired:
        raise QemuImgError(args, f"timed out after {timeout:g}s", transient=True) from None
    if done.returncode != 0:
        stderr = done.stderr.strip() or f"exit status {done.returncode}"
        transient = any(marker in stderr for marker in _TRANSIENT)
        raise QemuImgError(args, stderr, transient=transient)
    return done.stdout


def _optional_str(value: object) -> str | None:
    return None if value is None else str(value)
