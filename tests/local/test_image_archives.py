"""`ImageStore.import_archive`: the disk of a containerDisk image saved as an OCI or docker
archive, with its layers applied as a runtime applies them, and every bad archive refused."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from kvd.local.images import ImageError, ImageStore
from kvd.local.images.archive import is_archive
from tests.support.image_archives import docker_archive, layer, oci_archive


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path / "store")


def qcow2(path: Path, size: str = "16M") -> Path:
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True, timeout=60
    )
    return path


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    return qcow2(tmp_path / "disk.qcow2")


def leftovers(store: ImageStore) -> list[str]:
    return sorted(os.listdir(store.root / ".staging")) if store.root.exists() else []


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "tar+gzip"])
@pytest.mark.parametrize("nested", [False, True], ids=["manifest", "index"])
def test_an_oci_archive_gives_its_disk(
    store: ImageStore, disk: Path, tmp_path: Path, compress: bool, nested: bool
) -> None:
    media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
    one = layer({"disk/disk.qcow2": disk}, compress=compress)
    archive = oci_archive(tmp_path / "image.tar", [one], media=media, nested=nested)
    assert is_archive(archive) and not is_archive(disk)

    image = store.import_archive("localhost/cirros-disk", archive)

    assert image.disk is not None and image.disk.name == "disk.qcow2"
    assert image.disk.read_bytes() == disk.read_bytes()
    assert image.format == "qcow2"
    assert image.source["format"] == "oci-archive"
    assert image.source["file"] == str(archive)
    assert image.source["path"] == "/disk/disk.qcow2"
    assert image.source["image"].startswith("sha256:")
    assert store.get("localhost/cirros-disk") == image  # the source is in the manifest too


@pytest.mark.parametrize("content_addressed", [False, True], ids=["layer.tar", "blobs"])
def test_a_docker_archive_gives_its_disk(
    store: ImageStore, disk: Path, tmp_path: Path, content_addressed: bool
) -> None:
    layers = [layer({"etc/hostname": b"x\n"}), layer({"disk/": b"", "disk/vm.img": disk})]
    archive = docker_archive(tmp_path / "save.tar", layers, content_addressed=content_addressed)
    image = store.import_archive("disk", archive)
    assert image.disk is not None and image.disk.read_bytes() == disk.read_bytes()
    assert image.source["format"] == "docker-archive"
    assert image.source["path"] == "/disk/vm.img"


def test_later_layers_replace_and_whiteout_earlier_disks(store: ImageStore, tmp_path: Path) -> None:
    a, b, c = (
        qcow2(tmp_path / f"{n}.qcow2", size) for n, size in (("a", "1M"), ("b", "2M"), ("c", "3M"))
    )
    layers = [
        layer({"disk/a.qcow2": a, "disk/c.qcow2": c}),
        layer({"disk/.wh.a.qcow2": b""}),  # a is deleted: c is the first left
    ]
    image = store.import_archive("one", oci_archive(tmp_path / "1.tar", layers))
    assert image.disk is not None and image.disk.read_bytes() == c.read_bytes()

    opaque = [*layers, layer({"disk/.wh..wh..opq": b"", "disk/b.qcow2": b})]
    image = store.import_archive("two", oci_archive(tmp_path / "2.tar", opaque))
    assert image.disk is not None and image.disk.read_bytes() == b.read_bytes()

    replaced = [layer({"disk/a.qcow2": a}), layer({"disk/a.qcow2": b})]
    image = store.import_archive("three", oci_archive(tmp_path / "3.tar", replaced))
    assert image.disk is not None and image.disk.read_bytes() == b.read_bytes()


def test_a_hard_linked_disk_is_followed(store: ImageStore, disk: Path, tmp_path: Path) -> None:
    one = layer({"data/original": disk, "disk/disk.qcow2": ("link", "data/original")})
    image = store.import_archive("linked", oci_archive(tmp_path / "l.tar", [one]))
    assert image.disk is not None and image.disk.read_bytes() == disk.read_bytes()


def bad(tmp_path: Path, disk: Path, case: str) -> Path:
    archive = tmp_path / f"{case}.tar"
    disk_layer = layer({"disk/disk.qcow2": disk})
    if case == "no-disk":
        return oci_archive(archive, [layer({"disk/readme.txt": b"hi", "etc/x": b""})])
    if case == "whited-out":
        return oci_archive(archive, [disk_layer, layer({".wh.disk": b""})])
    if case == "altered":
        return oci_archive(archive, [disk_layer], corrupt=True)
    if case == "zstd":
        return oci_archive(
            archive, [disk_layer], media="application/vnd.oci.image.layer.v1.tar+zstd"
        )
    if case == "two-images":
        return oci_archive(archive, [disk_layer], images=2)
    if case == "plain-tar":
        archive.write_bytes(layer({"disk/disk.qcow2": disk}))
        return archive
    if case == "not-a-disk":
        return oci_archive(archive, [layer({"disk/disk.qcow2": b"#!/bin/sh\necho hi\n"})])
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-disk", "the image has no disk under /disk/ (a file ending .qcow2, .img, .raw; "
         "found /disk/readme.txt)"),
        ("whited-out", "the image has no disk under /disk/"),
        ("altered", "does not match its digest"),
        ("zstd", "is zstd-compressed"),
        ("two-images", "index.json lists 2 images"),
        ("plain-tar", "neither an OCI archive"),
        ("not-a-disk", "(its /disk/disk.qcow2): looks like a text file, not a qcow2 or raw"),
    ],
)  # fmt: skip
def test_bad_archives_are_refused_and_leave_nothing(
    store: ImageStore, disk: Path, tmp_path: Path, case: str, message: str
) -> None:
    archive = bad(tmp_path, disk, case)
    with pytest.raises(ImageError, match=None) as raised:
        store.import_archive("x", archive)
    assert message in str(raised.value)
    assert str(raised.value).startswith(f"{archive}")
    assert store.list() == []
    assert leftovers(store) == []
