"""containerDisk: a qcow2 overlay on the pod's base image, which is only ever read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kvd.launcher import storage
from kvd.launcher.converter.context import DiskSource
from tests.launcher.storage.conftest import (
    MiB,
    Pod,
    guest_bytes,
    image_info,
    make_vmi,
    qemu_io,
    run,
    sha256,
)


def _container_disk(name: str = "root", **source: str) -> dict[str, object]:
    return {"name": name, "containerDisk": {"image": "kvd-demo", **source}}


@pytest.mark.parametrize("fmt", [pytest.param("raw", id="raw"), pytest.param("qcow2", id="qcow2")])
def test_overlay_is_backed_by_the_base_in_its_detected_format(pod: Pod, fmt: str) -> None:
    base = pod.base("root", fmt=fmt)
    sources = pod.prepare(make_vmi(_container_disk()))
    overlay = pod.run_dir / "disks" / "container-disks" / "root.qcow2"
    assert sources == {"root": DiskSource(path=overlay, format="qcow2")}
    info = image_info(overlay)
    assert info["format"] == "qcow2"
    assert info["full-backing-filename"] == str(base)
    assert info["backing-filename-format"] == fmt
    assert info["virtual-size"] == MiB
    assert guest_bytes(overlay, "qcow2", pod.root, length=4) == b"\x5a" * 4


def test_guest_writes_land_in_the_overlay_never_in_the_base(pod: Pod) -> None:
    base = pod.base("root")
    before = (sha256(base), base.stat().st_mtime_ns)
    overlay = pod.prepare(make_vmi(_container_disk()))["root"].path
    assert (sha256(base), base.stat().st_mtime_ns) == before  # creating the overlay reads only

    qemu_io(overlay, "qcow2", "write -P 0xab 0 64k")
    assert guest_bytes(overlay, "qcow2", pod.root, length=4) == b"\xab" * 4
    assert (sha256(base), base.stat().st_mtime_ns) == before


def test_path_picks_the_file_relative_to_the_volume_directory(pod: Pod) -> None:
    pod.base("root", name="other.img")
    wanted = pod.base("root", name="disk/boot.qcow2", fmt="qcow2")
    sources = pod.prepare(make_vmi(_container_disk(path="/disk/boot.qcow2")))
    assert image_info(sources["root"].path)["full-backing-filename"] == str(wanted)


def test_second_prepare_reuses_the_overlay_and_keeps_guest_writes(pod: Pod) -> None:
    pod.base("root")
    vmi = make_vmi(_container_disk())
    overlay = pod.prepare(vmi)["root"].path
    qemu_io(overlay, "qcow2", "write -P 0xcd 4096 4k")
    before = os.stat(overlay)

    assert pod.prepare(vmi)["root"].path == overlay
    after = os.stat(overlay)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert guest_bytes(overlay, "qcow2", pod.root, offset=4096, length=4) == b"\xcd" * 4


def test_an_overlay_made_for_another_base_is_refused_not_recreated(pod: Pod) -> None:
    pod.base("root")
    overlay = pod.prepare(make_vmi(_container_disk()))["root"].path
    pod.base("root", name="second.img")  # now the spec must name the file …
    vmi = make_vmi(_container_disk(path="/second.img"))  # … and names a different one
    before = os.stat(overlay)
    with pytest.raises(storage.StorageError, match="existing overlay") as caught:
        pod.prepare(vmi)
    assert caught.value.reason == "OverlayMismatch"
    assert os.stat(overlay).st_mtime_ns == before.st_mtime_ns


def _qcow2_backed_by(path: Path, backing: Path) -> None:
    run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(backing), str(path))


def _refusals() -> list[object]:
    def not_mounted(pod: Pod) -> None:
        pass

    def empty_dir(pod: Pod) -> None:
        (pod.container_disk_dir / "root").mkdir()

    def two_files(pod: Pod) -> None:
        pod.base("root", name="a.img")
        pod.base("root", name="b.img")

    def backing_outside(pod: Pod) -> None:
        outside = pod.root / "secret.raw"
        outside.write_bytes(b"host secret".ljust(512, b"\0"))
        directory = pod.container_disk_dir / "root"
        directory.mkdir()
        _qcow2_backed_by(directory / "disk.qcow2", outside)

    def symlink_outside(pod: Pod) -> None:
        outside = pod.root / "elsewhere.raw"
        outside.write_bytes(b"\0" * 512)
        directory = pod.container_disk_dir / "root"
        directory.mkdir()
        (directory / "disk.img").symlink_to(outside)

    def vmdk(pod: Pod) -> None:
        directory = pod.container_disk_dir / "root"
        directory.mkdir()
        run("qemu-img", "create", "-q", "-f", "vmdk", str(directory / "disk.vmdk"), "1M")

    def external_data_file(pod: Pod) -> None:
        directory = pod.container_disk_dir / "root"
        directory.mkdir()
        data = pod.root / "data.bin"
        image = directory / "disk.qcow2"
        run("qemu-img", "create", "-q", "-f", "qcow2", "-o", f"data_file={data}", str(image), "1M")

    return [
        pytest.param(not_mounted, "ContainerDiskNotFound", "not mounted", id="not-mounted"),
        pytest.param(empty_dir, "ContainerDiskNotFound", "found 0", id="no-file"),
        pytest.param(two_files, "ContainerDiskNotFound", r"found 2 \(a.img, b.img\)", id="two"),
        pytest.param(backing_outside, "ContainerDiskInvalid", "outside the image", id="backing"),
        pytest.param(symlink_outside, "ContainerDiskInvalid", "leads outside", id="symlink"),
        pytest.param(vmdk, "ContainerDiskInvalid", "vmdk image", id="vmdk"),
        pytest.param(external_data_file, "ContainerDiskInvalid", "external file", id="data-file"),
    ]


@pytest.mark.parametrize(("setup", "reason", "message"), _refusals())
def test_unusable_base_is_refused_and_leaves_nothing(
    pod: Pod, setup: object, reason: str, message: str
) -> None:
    assert callable(setup)
    setup(pod)
    with pytest.raises(storage.StorageError, match=message) as caught:
        pod.prepare(make_vmi(_container_disk()))
    assert (caught.value.volume, caught.value.reason) == ("root", reason)
    assert list(pod.run_dir.iterdir()) == []


def test_a_backing_chain_inside_the_image_is_allowed(pod: Pod) -> None:
    directory = pod.container_disk_dir / "root"
    directory.mkdir()
    lower = directory / "layers" / "lower.raw"
    lower.parent.mkdir()
    lower.write_bytes(b"\x42" * 65536)
    _qcow2_backed_by(directory / "disk.qcow2", Path("layers/lower.raw"))
    overlay = pod.prepare(make_vmi(_container_disk(path="/disk.qcow2")))["root"].path
    assert guest_bytes(overlay, "qcow2", pod.root, length=2) == b"\x42\x42"
