"""Checking and writing the image with qemu-img: what CDI's importer does with its
`qemu-img info` and `qemu-img convert` calls.

`inspect` refuses a format other than qcow2/raw (vmdk, vdi and the like are CDI's too, but kvd
accepts only what its guests use), a qcow2 with a backing file (its data lives elsewhere, and
reading one would let an image point the importer at any file in its pod), and an image larger
than the volume holds. `write` converts to raw: into `disk.img` on a Filesystem volume, sparse,
then grown to the usable size (the volume less CDI's filesystem overhead), or straight onto a
Block device. Progress during the conversion is qemu-img's own (`-p`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kvd.importer.progress import Progress
from kvd.importer.result import ImportFailed

FORMATS: Final = ("qcow2", "raw")
ALIGN: Final = 1 << 20  # usable sizes are whole MiB, as CDI aligns them
_PERCENT = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")


@dataclass(frozen=True)
class Image:
    format: str
    virtual_size: int


def usable_size(capacity: int, overhead: float) -> int:
    """The bytes of a Filesystem volume the image may take: capacity less overhead, MiB-aligned."""
    return int(capacity * (1 - overhead)) // ALIGN * ALIGN


def inspect(path: Path, *, limit: int | None) -> Image:
    try:
        out = subprocess.run(
            ["qemu-img", "info", "--output=json", str(path)],
            check=True,
            capture_output=True,
            timeout=120,
        ).stdout
    except subprocess.CalledProcessError as exc:
        raise ImportFailed(
            f"qemu-img cannot read the image: {exc.stderr.decode(errors='replace').strip()}",
            retryable=False,
        ) from None
    info = json.loads(out)
    fmt = str(info.get("format"))
    if fmt not in FORMATS:
        raise ImportFailed(f"image format {fmt} is not supported (qcow2 or raw)", retryable=False)
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ImportFailed(
            f"the image has a backing file ({info.get('backing-filename')}): refused, an image "
            "to import must hold all its data",
            retryable=False,
        )
    size = int(info.get("virtual-size") or 0)
    if limit is not None and size > limit:
        raise ImportFailed(
            f"Virtual image size {size} is larger than the reported available storage {limit}. "
            "A larger PVC is required.",
            retryable=False,
        )
    if fmt == "qcow2":
        check = subprocess.run(
            ["qemu-img", "check", "-f", "qcow2", str(path)],
            check=False,
            capture_output=True,
            timeout=300,
        )
        if check.returncode not in (0, 3):  # 3: leaked clusters, harmless
            detail = (check.stdout + check.stderr).decode(errors="replace").strip()
            raise ImportFailed(f"the qcow2 image is corrupt: {detail[-400:]}", retryable=True)
    return Image(format=fmt, virtual_size=size)


def write(
    source: Path, image: Image, target: Path, progress: Progress | None, *, size: int | None
) -> None:
    """Convert `source` to raw at `target` (a file to create, or a block device); `progress`
    follows the conversion (None: it already followed a download, and stays there)."""
    block = target.is_block_device()
    args = ["qemu-img", "convert", "-p", "-f", image.format, "-O", "raw", "-t", "writeback"]
    if block:
        args += ["-n"]  # the device exists: write into it, do not try to create it
    process = subprocess.Popen(
        [*args, str(source), str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None
    if progress is not None:
        progress.start(100)
    seen = 0.0
    buffer = b""
    while chunk := os.read(process.stdout.fileno(), 4096):
        buffer = (buffer + chunk)[-256:]
        for match in _PERCENT.finditer(buffer):
            value = float(match.group(1))
            if value > seen and progress is not None:
                progress.add(int(value - seen))
                seen = float(int(value))
    stderr = process.stderr.read() if process.stderr else b""
    if process.wait() != 0:
        if not block:
            target.unlink(missing_ok=True)
        raise ImportFailed(
            f"qemu-img convert failed: {stderr.decode(errors='replace').strip()}", retryable=True
        )
    if not block and size is not None and size > image.virtual_size:
        subprocess.run(
            ["qemu-img", "resize", "-f", "raw", str(target), str(size)],
            check=True,
            capture_output=True,
            timeout=60,
        )


def blank(target: Path, *, size: int | None) -> None:
    """An empty disk: a sparse disk.img of the usable size (a Block device is left as it is)."""
    if target.is_block_device():
        return
    if size is None:
        raise ImportFailed("a blank disk needs the volume's size", retryable=False)
    with target.open("wb") as out:
        out.truncate(size)
