"""containerDisk archives written with the standard library, as `podman save` and `docker save`
write them: no container engine needed (tests/local/test_image_archives.py)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path

Entry = bytes | Path | tuple[str, str]
"""A layer entry's content: bytes, a file to copy, or ("link", target) for a hard link."""


def layer(entries: Mapping[str, Entry], *, compress: bool = False) -> bytes:
    """A layer tarball; `entries` maps a path in the image to its content."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, tuple):
                info.type = tarfile.LNKTYPE
                info.linkname = content[1]
                tar.addfile(info)
                continue
            data = content.read_bytes() if isinstance(content, Path) else content
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    raw = out.getvalue()
    return gzip.compress(raw, mtime=0) if compress else raw


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def oci_archive(
    path: Path,
    layers: list[bytes],
    *,
    media: str = "application/vnd.oci.image.layer.v1.tar",
    images: int = 1,
    nested: bool = False,
    corrupt: bool = False,
) -> Path:
    """An OCI image layout in a tar. `images`: how many manifests index.json lists; `nested`:
    index.json points at an image index that points at the manifest (as multi-arch saves do);
    `corrupt`: the first layer's bytes no longer match its digest."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> str:
        blobs[digest(data)] = data
        return digest(data)

    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}})
    config_digest = blob(config.encode())
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [{"mediaType": media, "digest": blob(d), "size": len(d)} for d in layers],
        }
    ).encode()
    descriptor = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": blob(manifest),
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "latest"},
    }
    if nested:
        inner = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{**descriptor, "platform": {"architecture": "amd64", "os": "linux"}}],
            }
        ).encode()
        descriptor = {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": blob(inner),
            "size": len(inner),
        }
    index = {"schemaVersion": 2, "manifests": [descriptor] * images}
    if corrupt:
        first = digest(layers[0])
        blobs[first] = blobs[first][:-1] + bytes([blobs[first][-1] ^ 1])
    with tarfile.open(path, "w") as tar:
        _add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        _add(tar, "index.json", json.dumps(index).encode())
        for d, data in blobs.items():
            _add(tar, "blobs/" + d.replace(":", "/"), data)
    return path


def docker_archive(path: Path, layers: list[bytes], *, content_addressed: bool = False) -> Path:
    """A `docker save` tarball: `<id>/layer.tar` per layer (older docker and podman), or
    `blobs/sha256/<hex>` (docker 25 and newer) when `content_addressed`."""
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    config_name = digest(config).removeprefix("sha256:") + ".json"
    names = []
    with tarfile.open(path, "w") as tar:
        _add(tar, config_name, config)
        for i, data in enumerate(layers):
            hexdigest = digest(data).removeprefix("sha256:")
            name = (
                f"blobs/sha256/{hexdigest}"
                if content_addressed
                else f"{hexdigest[:12]}{i}/layer.tar"
            )
            _add(tar, name, data)
            names.append(name)
        manifest = [{"Config": config_name, "RepoTags": ["localhost/disk:latest"], "Layers": names}]
        _add(tar, "manifest.json", json.dumps(manifest).encode())
    return path
