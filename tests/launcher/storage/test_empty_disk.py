"""emptyDisk: a sparse qcow2 of exactly the asked capacity (in whole sectors), never re-zeroed."""

from __future__ import annotations

import os

import pytest

from kvd.launcher import storage
from kvd.launcher.converter.context import DiskSource
from tests.launcher.storage.conftest import MiB, Pod, guest_bytes, image_info, make_vmi, qemu_io


def _empty(capacity: str | int, name: str = "scratch") -> dict[str, object]:
    return {"name": name, "emptyDisk": {"capacity": capacity}}


@pytest.mark.parametrize(
    ("capacity", "size"),
    [
        pytest.param("64Mi", 64 * MiB, id="binary"),
        pytest.param("1M", 1_000_448, id="decimal-rounded-up"),  # 1e6 → next multiple of 512
        pytest.param(1000, 1024, id="bytes-rounded-up"),
        pytest.param("1.5Ki", 1536, id="fractional"),
        pytest.param(512, 512, id="one-sector"),
    ],
)
def test_capacity_rounded_up_to_whole_sectors(pod: Pod, capacity: str | int, size: int) -> None:
    sources = pod.prepare(make_vmi(_empty(capacity)))
    path = pod.run_dir / "disks" / "empty-disks" / "scratch.qcow2"
    assert sources == {"scratch": DiskSource(path=path, format="qcow2")}
    info = image_info(path)
    assert (info["format"], info["virtual-size"]) == ("qcow2", size)


def test_sparse(pod: Pod) -> None:
    path = pod.prepare(make_vmi(_empty("10Gi")))["scratch"].path
    assert image_info(path)["virtual-size"] == 10 * 1024 * MiB
    assert os.stat(path).st_blocks * 512 < MiB  # only qcow2 metadata is allocated


def test_second_prepare_keeps_what_the_guest_wrote(pod: Pod) -> None:
    vmi = make_vmi(_empty("1Mi"))
    path = pod.prepare(vmi)["scratch"].path
    qemu_io(path, "qcow2", "write -P 0x77 0 64k")
    before = os.stat(path)

    assert pod.prepare(vmi)["scratch"].path == path
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    assert guest_bytes(path, "qcow2", pod.root, length=4) == b"\x77" * 4


def test_existing_disk_of_another_size_is_refused_not_recreated(pod: Pod) -> None:
    path = pod.prepare(make_vmi(_empty("1Mi")))["scratch"].path
    before = os.stat(path)
    with pytest.raises(storage.StorageError, match="holds 1048576 bytes") as caught:
        pod.prepare(make_vmi(_empty("2Mi")))
    assert caught.value.reason == "EmptyDiskMismatch"
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns


def test_capacity_too_large_for_qcow2_is_the_users_to_fix(pod: Pod) -> None:
    with pytest.raises(storage.StorageError, match="emptyDisk") as caught:
        pod.prepare(make_vmi(_empty("1Ei")))
    assert caught.value.volume == "scratch"
    assert list(pod.run_dir.iterdir()) == []
