"""The local image store: containerDisk and kernel-boot images, imported from files.

Layout under the root (default /var/lib/kvd/images, or KVD_IMAGE_STORE):

    <name>                 symlink → .versions/<name>.<id>: the image as readers see it
    .versions/<name>.<id>/ manifest.json (reference, kind, format, digests, source: where it
                           was imported from, …) and rootfs/, the image's filesystem:
                           rootfs/disk/<file> (KubeVirt's containerDisk
                           convention) or rootfs/boot/vmlinuz [+ rootfs/boot/initrd.img], or
                           the kernel and initrd at the paths the import named
    .staging/<id>/         imports in progress, and old versions on their way out
    .lock, .swap.lock      flock files (below)

`<name>` is the normalized reference made filesystem-safe plus a hash of it; the manifest keeps
the reference itself. A version is written completely in .staging, renamed into .versions, and
only then published by replacing the symlink (rename(2) is atomic), so a reader resolves either
the old or the new image, never half of one. A replaced or removed version is renamed back into
.staging before it is deleted, so it vanishes at once rather than file by file; a pod that has
already opened its files keeps them. Re-importing identical content (same digests) keeps the
existing version.

Every import and removal holds `.lock` shared; swapping a symlink holds `.swap.lock` exclusive, so
imports of different images run in parallel. Leftovers of a killed import are swept by the next
writer that finds `.lock` free (no writer running), so nothing is deleted under a live import.
Files are 0444 once imported; directories 0755, so the node (root) and users can read them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from kvd import logs
from kvd.local.images import archive, files, reference, table
from kvd.local.images.files import DiskFormat
from kvd.local.images.reference import ImageError

log = logs.get_logger(__name__)

Kind = Literal["disk", "kernel"]

DEFAULT_ROOT: Final = Path(os.environ.get("KVD_IMAGE_STORE", "/var/lib/kvd/images"))
MANIFEST: Final = "manifest.json"
ROOTFS: Final = "rootfs"
DISK_DIR: Final = "disk"
KERNEL: Final = "boot/vmlinuz"
INITRD: Final = "boot/initrd.img"
_VERSIONS: Final = ".versions"
_STAGING: Final = ".staging"
_STORE_LOCK: Final = ".lock"
_SWAP_LOCK: Final = ".swap.lock"
_READ_ATTEMPTS: Final = 10  # a reader loses a race with a replace at most this often
_SAFE_FILE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


class ImageNotFound(LookupError):
    """An image the node needs that the store does not have; the message says how to import it."""

    def __init__(self, ref: str, *, root: Path) -> None:
        self.reference = ref
        self.root = root
        store = "" if root == DEFAULT_ROOT.absolute() else f" --store {root}"
        command = f"kvd image{store} import {ref}"
        super().__init__(
            f'image "{ref}" is not in the local image store ({root}); import it with: '
            f"{command} FILE (a qcow2 or raw disk, or a containerDisk image saved as an OCI or "
            f"docker archive), or {command} --kernel VMLINUZ "
            "[--initrd INITRD] (a kernel-boot image)"
        )


@dataclass(frozen=True, kw_only=True)
class StoredImage:
    reference: str  # normalized
    kind: Kind
    root: Path  # the image's filesystem: disk/<file>, or boot/vmlinuz [+ boot/initrd.img]
    format: DiskFormat | None  # None for kernel-boot images
    size: int  # bytes, all files together
    imported: datetime
    digest: str  # of the content: equal digests, identical images
    files: tuple[str, ...]  # paths relative to root
    # where it was imported from: {"format": qcow2|raw|kernel|oci-archive|docker-archive,
    # "file": path, and for archives "image" (its digest) and "path" (the disk's, in it)};
    # empty for images imported before kvd recorded it
    source: dict[str, str] = field(default_factory=dict)

    @property
    def disk(self) -> Path | None:
        """The disk file of a disk image (the only file under root/disk/)."""
        return self.root / self.files[0] if self.kind == "disk" else None

    @property
    def kernel(self) -> Path | None:
        """The kernel of a kernel-boot image: its first file."""
        return self.root / self.files[0] if self.kind == "kernel" else None

    @property
    def initrd(self) -> Path | None:
        """The initrd of a kernel-boot image, its second file, if it has one."""
        return self.root / self.files[1] if self.kind == "kernel" and len(self.files) > 1 else None


class ImageStore:
    def __init__(self, root: Path = DEFAULT_ROOT) -> None:
        self.root = root.absolute()

    def import_disk(
        self, ref: str, file: Path, *, source: archive.Source | None = None
    ) -> StoredImage:
        """Import a qcow2 or raw disk; replaces an image of the same reference atomically.
        `source`: the archive the disk was read from, when it was (`import_archive`)."""
        parsed = self._importable(ref)
        name = file.name if _SAFE_FILE.fullmatch(file.name) else "disk.img"
        with self._staging() as staged:
            target = staged / ROOTFS / DISK_DIR / name
            _make_dirs(target.parent)
            digest = files.copy(file, target)
            # what an error names: the user's file, or the archive and the disk's path in it
            shown = Path(f"{source.file} (its {source.path})") if source else file
            fmt = files.check_disk(target, source=shown)
            origin = source.as_json() if source else {"format": fmt, "file": str(file.absolute())}
            return self._publish(
                parsed,
                staged,
                kind="disk",
                fmt=fmt,
                digests={f"{DISK_DIR}/{name}": digest},
                source=origin,
            )

    def import_archive(self, ref: str, file: Path) -> StoredImage:
        """Import the disk of a containerDisk image saved as an OCI or docker archive."""
        self._importable(ref)  # before reading a large archive for nothing
        with tempfile.TemporaryDirectory(prefix="kvd-image-") as scratch:
            disk, source = archive.extract_disk(file, Path(scratch))
            return self.import_disk(ref, disk, source=source)

    def import_kernel(
        self,
        ref: str,
        *,
        kernel: Path,
        initrd: Path | None,
        kernel_path: str = f"/{KERNEL}",
        initrd_path: str = f"/{INITRD}",
    ) -> StoredImage:
        """Import a kernel-boot image: the kernel at `kernel_path` and optionally the initrd at
        `initrd_path`, the paths a VMI's kernelBoot.container names (absolute, in the image)."""
        parsed = self._importable(ref)
        inside = [_image_path(kernel_path, what="kernel path")]
        if initrd is not None:
            inside.append(_image_path(initrd_path, what="initrd path"))
            if inside[0] == inside[1]:
                raise ImageError(f"the kernel and the initrd cannot both be at {kernel_path}")
        with self._staging() as staged:
            rootfs = staged / ROOTFS
            _make_dirs((rootfs / inside[0]).parent)
            digests = {inside[0]: files.copy(kernel, rootfs / inside[0])}
            files.check_kernel(rootfs / inside[0], source=kernel)
            if initrd is not None:
                _make_dirs((rootfs / inside[1]).parent)
                digests[inside[1]] = files.copy(initrd, rootfs / inside[1])
                files.check_initrd(rootfs / inside[1], source=initrd)
            origin = {"format": "kernel", "file": str(kernel.absolute())}
            return self._publish(
                parsed, staged, kind="kernel", fmt=None, digests=digests, source=origin
            )

    def get(self, ref: str) -> StoredImage | None:
        """The stored image `ref` names; ImageError when `ref` is no valid reference."""
        return self._read(reference.parse(ref))

    def list(self) -> list[StoredImage]:
        try:
            entries = [e for e in os.scandir(self.root) if not e.name.startswith(".")]
        except FileNotFoundError:
            return []
        images = (self._load(self.root / e.name) for e in entries if e.is_symlink())
        return sorted((i for i in images if i is not None), key=lambda i: i.reference)

    def remove(self, ref: str) -> bool:
        """Remove the image; False when the store does not have it."""
        parsed = reference.parse(ref)
        link = self.root / _name(parsed)
        with self._writing(), self._lock(_SWAP_LOCK):
            current = self._read(parsed)
            if current is None:
                return False
            version = self.root / os.readlink(link)
            os.unlink(link)
        self._discard(version)
        log.info("image_removed", reference=current.reference)
        return True

    def resolve(self, ref: str) -> StoredImage | table.KvdImage | table.HostImage:
        """What runs for a container image `ref`: built in, or from the store (ImageNotFound)."""
        parsed = reference.parse(ref)
        image = table.lookup(parsed) or self._read(parsed)
        if image is None:
            raise ImageNotFound(ref, root=self.root)
        return image

    # -- reading: no locks; a symlink is resolved once, so one version is seen whole

    def _read(self, parsed: reference.Reference) -> StoredImage | None:
        image = self._load(self.root / _name(parsed))
        return image if image is not None and image.reference == str(parsed) else None

    def _load(self, link: Path) -> StoredImage | None:
        for _ in range(_READ_ATTEMPTS):
            try:
                version = self.root / os.readlink(link)
            except FileNotFoundError:
                return None
            except OSError as exc:
                if exc.errno == errno.EINVAL:  # not a symlink, so not one of ours
                    return None
                raise
            try:
                with open(version / MANIFEST, encoding="utf-8") as stream:
                    manifest = json.load(stream)
            except (FileNotFoundError, NotADirectoryError):
                continue  # replaced or removed between readlink and open: look again
            except ValueError as exc:
                log.warning("image_manifest_unreadable", path=str(version), error=str(exc))
                return None
            return _from_manifest(manifest, root=version / ROOTFS)
        return None

    # -- writing

    def _importable(self, ref: str) -> reference.Reference:
        parsed = reference.parse(ref)
        builtin = table.lookup(parsed)
        if builtin is not None:
            what = "kvd's own image" if isinstance(builtin, table.KvdImage) else "a host image"
            raise ImageError(
                f'"{ref}" is {what}: the local node runs it without the store, '
                "so it cannot be imported"
            )
        return parsed

    @contextlib.contextmanager
    def _staging(self) -> Iterator[Path]:
        with self._writing():
            staged = self.root / _STAGING / uuid.uuid4().hex[:12]
            _make_dirs(staged)
            try:
                yield staged
            finally:  # published versions were renamed away; anything else goes
                shutil.rmtree(staged, ignore_errors=True)

    def _publish(
        self,
        parsed: reference.Reference,
        staged: Path,
        *,
        kind: Kind,
        fmt: DiskFormat | None,
        digests: dict[str, str],
        source: dict[str, str],
    ) -> StoredImage:
        rootfs = staged / ROOTFS
        manifest = {
            "reference": str(parsed),
            "kind": kind,
            "format": fmt,
            "size": sum((rootfs / path).stat().st_size for path in digests),
            "imported": datetime.now(UTC).isoformat(),
            "digest": _content_digest(kind, digests),
            "files": digests,
            "source": source,
        }
        _write_manifest(staged / MANIFEST, manifest)
        name = _name(parsed)
        link = self.root / name
        with self._lock(_SWAP_LOCK):
            current = self._read(parsed)
            if current is not None and current.digest == manifest["digest"]:
                log.info("image_unchanged", reference=current.reference)
                return current
            old = self.root / os.readlink(link) if current is not None else None
            version = self.root / _VERSIONS / f"{name}.{staged.name}"
            staged.rename(version)
            temporary = self.root / _STAGING / f"{staged.name}.link"
            temporary.symlink_to(os.path.relpath(version, self.root))
            temporary.replace(link)
            _sync_dir(self.root)
        if old is not None:
            self._discard(old)
        image = _from_manifest(manifest, root=version / ROOTFS)
        log.info("image_imported", reference=image.reference, kind=kind, size=image.size)
        return image

    def _discard(self, version: Path) -> None:
        # Out of .versions in one rename, so no reader ever finds it half deleted.
        doomed = self.root / _STAGING / f"{uuid.uuid4().hex[:12]}.old"
        version.rename(doomed)
        shutil.rmtree(doomed)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold the store lock shared for an import or removal, after sweeping if it was free."""
        for directory in (self.root, self.root / _VERSIONS, self.root / _STAGING):
            _make_dirs(directory)
        fd = os.open(self.root / _STORE_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another writer runs: its staging is live, not leftovers
            else:
                self._sweep()
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def _sweep(self) -> None:
        """Remove what killed writers left: staging, and versions no symlink points to."""
        staging = self.root / _STAGING
        leftovers = [staging / name for name in os.listdir(staging)]
        linked = {
            os.path.basename(os.readlink(entry.path))
            for entry in os.scandir(self.root)
            if entry.is_symlink()
        }
        leftovers += [
            self.root / _VERSIONS / name
            for name in os.listdir(self.root / _VERSIONS)
            if name not in linked
        ]
        for path in leftovers:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        if leftovers:
            log.info("image_store_swept", removed=[str(p) for p in leftovers])

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _image_path(path: str, *, what: str) -> str:
    """An absolute path in an image, as kvd stores it: relative to the image's root."""
    parts = path.split("/")
    if not path.startswith("/") or not all(_SAFE_FILE.fullmatch(p) for p in parts[1:]):
        raise ImageError(
            f"{what} {path!r}: give an absolute path of plain names (letters, digits, "
            "'._+-'; no '.', '..' or empty parts), e.g. /boot/vmlinuz"
        )
    return "/".join(parts[1:])


def _name(parsed: reference.Reference) -> str:
    text = str(parsed)
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:120]
    return f"{readable}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _content_digest(kind: Kind, digests: dict[str, str]) -> str:
    canonical = json.dumps({"kind": kind, "files": digests}, sort_keys=True)
    return f"sha256:{hashlib.sha256(canonical.encode()).hexdigest()}"


def _from_manifest(manifest: dict[str, Any], *, root: Path) -> StoredImage:
    return StoredImage(
        reference=manifest["reference"],
        kind=manifest["kind"],
        root=root,
        format=manifest["format"],
        size=manifest["size"],
        imported=datetime.fromisoformat(manifest["imported"]),
        digest=manifest["digest"],
        files=tuple(manifest["files"]),
        source=dict(manifest.get("source") or {}),
    )


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    with open(path, "x", encoding="utf-8") as stream:
        json.dump(manifest, stream, indent=2)
        stream.write("\n")
        stream.flush()
        os.fsync(stream.fileno())
    path.chmod(0o444)


def _make_dirs(path: Path) -> None:
    # Explicit modes: the node reads the store whatever the importing user's umask was.
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for directory in missing:
        directory.chmod(0o755)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
