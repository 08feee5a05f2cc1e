"""containerDisk images saved as archives: the disk a KubeVirt container-disk image carries.

A containerDisk is a container image whose filesystem has the guest's disk under `/disk/`
(KubeVirt's two-line Dockerfile: `FROM scratch` and `ADD disk.qcow2 /disk/`). Users keep them as
`podman save`/`docker save` tarballs or OCI archives; the local node never pulls, so `kvd image
import NAME ARCHIVE` reads the disk out of one:

- an OCI image layout in a tar (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`: `podman save
  --format oci-archive`, `skopeo copy … oci-archive:`), or
- a docker archive (`manifest.json` listing each image's `Config` and `Layers`: `docker save`,
  `podman save`).

The archive must hold one image (or one for linux/amd64). Its layers are applied in order as a
container runtime would — a later layer replaces a file, a `.wh.<name>` whiteout deletes one, a
`.wh..wh..opq` opaque marker empties the directory — and the disk is the first regular file, by
name, directly under `/disk/` whose name ends `.qcow2`, `.img` or `.raw` (KubeVirt's container-disk
takes the one file it finds there). Every blob read is checked against its digest first, so a
truncated or altered archive is refused rather than imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from kvd.local.images.reference import ImageError

DISK_DIR: Final = "disk"
DISK_SUFFIXES: Final = (".qcow2", ".img", ".raw")
WHITEOUT: Final = ".wh."
OPAQUE: Final = ".wh..wh..opq"
_CHUNK: Final = 1 << 20
_OCI_INDEX_TYPES: Final = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


@dataclass(frozen=True)
class Source:
    """Where an imported disk came from, as `kvd image list` shows it."""

    format: str  # "oci-archive" or "docker-archive"
    file: str  # the archive, absolute
    image: str  # the image's digest (OCI manifest) or config id (docker)
    path: str  # the disk's path in the image, e.g. /disk/disk.qcow2

    def as_json(self) -> dict[str, str]:
        return {"format": self.format, "file": self.file, "image": self.image, "path": self.path}


def is_archive(path: Path) -> bool:
    """Whether `path` is a tar archive (a disk file never starts like one)."""
    try:
        return path.is_file() and tarfile.is_tarfile(path)
    except OSError:
        return False


def extract_disk(archive: Path, target_dir: Path) -> tuple[Path, Source]:
    """Write the image's disk file into `target_dir`; the file and where it came from."""
    try:
        with tarfile.open(archive, "r:") as outer:
            found = _Archive(archive, outer)
            layers, image, what = found.layers()
            layer, member = _find_disk(found, layers, archive)
            name = posixpath.basename(member)
            target = target_dir / name
            with found.blob(layer) as blob, tarfile.open(fileobj=blob, mode="r:*") as tar:
                _copy_member(tar, member, target, archive)
            return target, Source(what, str(archive.absolute()), image, f"/{member}")
    except tarfile.TarError as exc:
        raise ImageError(f"{archive}: not a readable image archive ({exc})") from None


class _Archive:
    def __init__(self, path: Path, tar: tarfile.TarFile) -> None:
        self.path = path
        self.tar = tar
        self.names = {_clean(m.name): m for m in tar.getmembers() if m.isfile()}

    def layers(self) -> tuple[list[Layer], str, str]:
        """([(layer member, its sha256 or None)], image id, format) of the archive's image."""
        if "oci-layout" in self.names and "index.json" in self.names:
            return self._oci()
        if "manifest.json" in self.names:
            return self._docker()
        raise ImageError(
            f"{self.path}: a tar archive, but neither an OCI archive (no oci-layout and "
            "index.json) nor a docker archive (no manifest.json)"
        )

    def _oci(self) -> tuple[list[Layer], str, str]:
        descriptor = self._one_manifest(self._json("index.json"), "index.json")
        manifest = self._json(self._blob_name(descriptor))
        while manifest.get("mediaType") in _OCI_INDEX_TYPES or "manifests" in manifest:
            descriptor = self._one_manifest(manifest, descriptor["digest"])
            manifest = self._json(self._blob_name(descriptor))
        layers = []
        for layer in manifest.get("layers") or []:
            media = str(layer.get("mediaType", ""))
            compression = media.rsplit(".", 1)[-1] if "layer" in media else ""
            if "zstd" in compression:
                raise ImageError(
                    f"{self.path}: layer {layer.get('digest')} is zstd-compressed, which this "
                    "reader cannot open; save the image again with gzip layers (podman save "
                    "--format oci-archive, or skopeo copy --dest-compress-format gzip)"
                )
            name = self._blob_name(layer)
            layers.append((name, _sha256_of(str(layer["digest"]))))
        return layers, str(descriptor["digest"]), "oci-archive"

    def _one_manifest(self, index: dict[str, Any], where: str) -> dict[str, Any]:
        manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
        amd64 = [
            m
            for m in manifests
            if (m.get("platform") or {}).get("architecture") in (None, "amd64")
            and (m.get("platform") or {}).get("os") in (None, "linux")
        ]
        if len(amd64) != 1:
            ref_name = "org.opencontainers.image.ref.name"
            tags = ", ".join(
                str((m.get("annotations") or {}).get(ref_name, m.get("digest"))) for m in manifests
            )
            raise ImageError(
                f"{self.path}: {where} lists {len(manifests)} images ({tags}); "
                "save exactly one containerDisk image (linux/amd64) in the archive"
            )
        return amd64[0]

    def _docker(self) -> tuple[list[Layer], str, str]:
        images = self._json("manifest.json")
        if not isinstance(images, list) or len(images) != 1:
            count = len(images) if isinstance(images, list) else 0
            tags = ", ".join(t for i in images or [] for t in (i.get("RepoTags") or []))
            raise ImageError(
                f"{self.path}: manifest.json lists {count} images ({tags or 'untagged'}); "
                "save exactly one containerDisk image in the archive"
            )
        image = images[0]
        layers: list[Layer] = []
        for layer in image.get("Layers") or []:
            name = _clean(str(layer))
            if name not in self.names:
                raise ImageError(
                    f"{self.path}: manifest.json names layer {layer}, not in the archive"
                )
            # Content-addressed blobs (`blobs/sha256/<hex>`, newer docker) are checked; the older
            # `<id>/layer.tar` names carry no digest of the file itself.
            parts = name.split("/")
            digest = parts[2] if len(parts) == 3 and parts[:2] == ["blobs", "sha256"] else None
            layers.append((name, digest))
        config = _clean(str(image.get("Config", "")))
        return layers, posixpath.basename(config).removesuffix(".json"), "docker-archive"

    def _blob_name(self, descriptor: dict[str, Any]) -> str:
        digest = str(descriptor.get("digest", ""))
        algorithm, _, value = digest.partition(":")
        name = f"blobs/{algorithm}/{value}"
        if not value or name not in self.names:
            raise ImageError(f"{self.path}: blob {digest or '(no digest)'} is not in the archive")
        return name

    def _json(self, name: str) -> Any:
        with self.blob((name, _sha256_of(name))) as stream:
            try:
                return json.load(stream)
            except ValueError as exc:
                raise ImageError(f"{self.path}: {name} is not JSON ({exc})") from None

    @contextlib.contextmanager
    def blob(self, layer: Layer) -> Iterator[IO[bytes]]:
        """The member's content, once its sha256 (if it has one) is checked."""
        name, digest = layer
        member = self.names.get(name)
        if member is None:
            raise ImageError(f"{self.path}: {name} is not in the archive")
        stream = self.tar.extractfile(member)
        if stream is None:
            raise ImageError(f"{self.path}: {name} is not a file")
        if digest is not None:
            hasher = hashlib.sha256()
            while chunk := stream.read(_CHUNK):
                hasher.update(chunk)
            if hasher.hexdigest() != digest:
                raise ImageError(
                    f"{self.path}: {name} does not match its digest sha256:{digest} "
                    "(the archive is truncated or altered)"
                )
            stream.seek(0)
        yield stream


def _sha256_of(name_or_digest: str) -> str | None:
    """The hex of a `sha256:<hex>` digest or a `blobs/sha256/<hex>` name; None otherwise."""
    if name_or_digest.startswith("sha256:"):
        return name_or_digest.removeprefix("sha256:")
    parts = name_or_digest.split("/")
    return parts[2] if len(parts) == 3 and parts[:2] == ["blobs", "sha256"] else None


Layer = tuple[str, str | None]
"""A layer's member name in the archive, and the sha256 it must have (None: none known)."""


def _find_disk(found: _Archive, layers: list[Layer], archive: Path) -> tuple[Layer, str]:
    """(layer, member) holding the disk, with the layers applied in order as a runtime does."""
    files: dict[str, Layer] = {}  # disk/<name> → the layer that wrote it last
    for layer in layers:
        with found.blob(layer) as blob, tarfile.open(fileobj=blob, mode="r:*") as tar:
            for member in tar:
                path = _clean(member.name)
                directory, base = posixpath.split(path)
                if base == OPAQUE:
                    files = {p: w for p, w in files.items() if not _under(p, directory)}
                elif base.startswith(WHITEOUT):
                    gone = posixpath.join(directory, base.removeprefix(WHITEOUT))
                    files = {p: w for p, w in files.items() if p != gone and not _under(p, gone)}
                elif directory == DISK_DIR:
                    if member.isfile() or member.islnk():
                        files[path] = layer
                    else:
                        files.pop(path, None)
    disks = sorted(p for p in files if p.endswith(DISK_SUFFIXES))
    if not disks:
        listed = ", ".join(f"/{p}" for p in sorted(files)) or "nothing"
        raise ImageError(
            f"{archive}: the image has no disk under /disk/ (a file ending "
            f"{', '.join(DISK_SUFFIXES)}; found {listed}): is it a KubeVirt containerDisk?"
        )
    return files[disks[0]], disks[0]


def _copy_member(tar: tarfile.TarFile, name: str, target: Path, archive: Path) -> None:
    member = _member(tar, name)
    seen = {name}
    while member.islnk():  # a hard link names a file earlier in the same layer
        link = _clean(member.linkname)
        if link in seen:
            raise ImageError(f"{archive}: /{name} is a hard link loop")
        seen.add(link)
        member = _member(tar, link)
    source = tar.extractfile(member)
    if source is None:
        raise ImageError(f"{archive}: /{name} is not a regular file")
    with source, open(target, "xb") as out:
        shutil.copyfileobj(source, out, _CHUNK)


def _member(tar: tarfile.TarFile, name: str) -> tarfile.TarInfo:
    for member in reversed(tar.getmembers()):  # the last entry of a name wins
        if _clean(member.name) == name:
            return member
    raise KeyError(name)


def _clean(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def _under(path: str, directory: str) -> bool:
    return directory == "" or path.startswith(directory.rstrip("/") + "/")
