"""Image files: copied into the store once, then checked on the copy.

Checking the copy rather than the user's file means what was checked is what gets used, even if
the original changes meanwhile. The copy is hashed as it is written (the store compares digests
to skip identical re-imports) and keeps runs of zeros as holes, so a sparse raw disk stays sparse.

A disk must be self-contained qcow2 or raw: `qemu-img info` probes it exactly as the launcher
will, and a backing file, an external data file, encryption or a corrupt flag is refused. qemu-img
calls anything it does not recognise raw, so a raw disk must also be a whole number of 512-byte
sectors and not start like a text file. Kernels and initrds are checked by their magic numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any, Final, Literal

from kvd.local.images.reference import ImageError

DiskFormat = Literal["qcow2", "raw"]

QEMU_IMG: Final = "qemu-img"
QEMU_IMG_TIMEOUT: Final = 30.0
SECTOR: Final = 512
_CHUNK: Final = 1 << 20
_ZEROS: Final = bytes(_CHUNK)
_TEXT_PROBE: Final = 4096

# The x86 boot protocol's "HdrS" at 0x202 (bzImage), or arm64's "ARM\x64" at 0x38 (Image).
_KERNEL_MAGIC: Final = ((0x202, b"HdrS"), (0x38, b"ARM\x64"))
# An initrd is a cpio archive (newc/crc, or old binary), plain or compressed.
_INITRD_MAGIC: Final = (
    b"070701",
    b"070702",
    b"\xc7\x71",
    b"\x1f\x8b",  # gzip
    b"\xfd7zXZ\x00",  # xz
    b"\x28\xb5\x2f\xfd",  # zstd
    b"\x02\x21\x4c\x18",  # lz4 legacy
    b"BZh",  # bzip2
    b"\x5d\x00\x00",  # lzma
    b"\x89LZO",  # lzop
)


def copy(source: Path, target: Path) -> str:
    """Copy `source` to a new file `target`, keeping zero runs as holes; the copy's sha256."""
    digest = hashlib.sha256()
    try:
        # Checked before opening too: opening a FIFO for reading would block.
        if not stat.S_ISREG(source.stat().st_mode):
            raise ImageError(f"{source}: not a regular file")
        with open(source, "rb") as src:
            if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                raise ImageError(f"{source}: not a regular file")
            with open(target, "xb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    if len(chunk) == _CHUNK and chunk == _ZEROS:
                        dst.seek(_CHUNK, os.SEEK_CUR)
                    else:
                        dst.write(chunk)
                dst.truncate()  # a trailing hole still counts towards the size
                dst.flush()
                os.fsync(dst.fileno())  # on disk before the store publishes it
    except FileNotFoundError:
        raise ImageError(f"{source}: no such file") from None
    except PermissionError:
        raise ImageError(f"{source}: permission denied") from None
    target.chmod(0o444)
    return f"sha256:{digest.hexdigest()}"


def check_disk(copied: Path, *, source: Path) -> DiskFormat:
    """The disk's format; ImageError naming `source` when it is no usable disk image."""
    info = _qemu_img_info(copied, source=source)
    fmt = info.get("format")
    if fmt not in ("qcow2", "raw"):
        raise ImageError(f"{source}: a {fmt} image; only qcow2 or raw disks can be imported")
    if info.get("backing-filename"):
        raise ImageError(
            f"{source}: has a backing file ({info['backing-filename']}); only self-contained "
            f"images can be imported. Flatten it first: qemu-img convert -O qcow2 {source} OUT"
        )
    specific = info.get("format-specific", {}).get("data", {})
    if specific.get("data-file"):
        raise ImageError(f"{source}: keeps its data in an external file ({specific['data-file']})")
    if info.get("encrypted") or specific.get("encrypt"):
        raise ImageError(f"{source}: is encrypted; the launcher cannot open it")
    if specific.get("corrupt"):
        raise ImageError(f"{source}: qcow2 image is marked corrupt (qemu-img check -r all)")
    if fmt == "raw":
        _check_raw(copied, source=source)
        return "raw"
    return "qcow2"


def check_kernel(copied: Path, *, source: Path) -> None:
    with open(copied, "rb") as stream:
        head = stream.read(0x210)
    if not any(head[at : at + len(magic)] == magic for at, magic in _KERNEL_MAGIC):
        raise ImageError(
            f"{source}: not a Linux kernel image (no bzImage or arm64 Image header); "
            "--kernel takes a vmlinuz"
        )


def check_initrd(copied: Path, *, source: Path) -> None:
    with open(copied, "rb") as stream:
        head = stream.read(8)
    if not any(head.startswith(magic) for magic in _INITRD_MAGIC):
        raise ImageError(
            f"{source}: not an initrd (a cpio archive, plain or gzip/xz/zstd/lz4/bzip2/lzma/lzo "
            "compressed)"
        )


def _check_raw(copied: Path, *, source: Path) -> None:
    size = copied.stat().st_size
    if size == 0:
        raise ImageError(f"{source}: is empty, not a disk image")
    with open(copied, "rb") as stream:
        head = stream.read(_TEXT_PROBE)
    if _is_text(head):
        raise ImageError(f"{source}: looks like a text file, not a qcow2 or raw disk image")
    if size % SECTOR:
        raise ImageError(
            f"{source}: {size} bytes is not a whole number of {SECTOR}-byte sectors, "
            "so it is not a raw disk image"
        )


def _is_text(head: bytes) -> bool:
    # Disk images start with binary structures (boot sector, superblock, zeros); text has no NUL
    # and decodes as UTF-8 (the probe may cut a character in two at its end).
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3
    return True


def _qemu_img_info(path: Path, *, source: Path) -> dict[str, Any]:
    # Absolute, so that qemu-img never reads a `name:` prefix as a protocol.
    command = [QEMU_IMG, "info", "--output=json", str(path.absolute())]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=QEMU_IMG_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise ImageError(f"{QEMU_IMG} is not installed (apt-get install qemu-utils)") from None
    except subprocess.TimeoutExpired:
        raise ImageError(
            f"{source}: qemu-img info did not answer within {QEMU_IMG_TIMEOUT:g}s"
        ) from None
    if done.returncode != 0:
        reason = done.stderr.strip().replace(str(path.absolute()), str(source))
        raise ImageError(f"{source}: not a usable disk image: {reason}")
    info: dict[str, Any] = json.loads(done.stdout)
    return info
