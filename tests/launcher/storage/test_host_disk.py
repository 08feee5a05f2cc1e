"""hostDisk: an existing file (Disk) or one created sparse when missing (DiskOrCreate), which
outlives the VMI: cleanup never removes it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kvd.launcher import storage
from kvd.launcher.converter.context import DiskSource
from tests.launcher.storage.conftest import MiB, Pod, make_vmi


def _host(path: Path, kind: str, capacity: str | None = None) -> dict[str, object]:
    source: dict[str, object] = {"path": str(path), "type": kind}
    if capacity is not None:
        source["capacity"] = capacity
    return {"name": "host", "hostDisk": source}


def test_disk_uses_the_existing_file_as_raw(pod: Pod) -> None:
    path = pod.root / "node" / "vm.img"
    path.parent.mkdir()
    path.write_bytes(b"\x11" * 4096)
    sources = pod.prepare(make_vmi(_host(path, "Disk")))
    assert sources == {"host": DiskSource(path=path, format="raw")}
    assert path.read_bytes() == b"\x11" * 4096


def test_disk_that_does_not_exist_is_a_clear_error(pod: Pod) -> None:
    path = pod.root / "node" / "missing.img"
    with pytest.raises(storage.StorageError, match=f"hostDisk {path} does not exist") as caught:
        pod.prepare(make_vmi(_host(path, "Disk")))
    assert (caught.value.volume, caught.value.reason) == ("host", "HostDiskNotFound")
    assert not path.parent.exists()


def test_disk_or_create_makes_a_sparse_raw_file_and_its_parents(pod: Pod) -> None:
    path = pod.root / "node" / "a" / "b" / "vm.img"
    sources = pod.prepare(make_vmi(_host(path, "DiskOrCreate", "1000Mi")))
    assert sources == {"host": DiskSource(path=path, format="raw")}
    st = os.stat(path)
    assert st.st_size == 1000 * MiB
    assert st.st_blocks == 0  # sparse: nothing allocated until the guest writes


def test_disk_or_create_rounds_capacity_up_to_whole_sectors(pod: Pod) -> None:
    path = pod.root / "vm.img"
    pod.prepare(make_vmi(_host(path, "DiskOrCreate", "1k")))
    assert path.stat().st_size == 1024


def test_disk_or_create_leaves_an_existing_file_alone(pod: Pod) -> None:
    path = pod.root / "vm.img"
    path.write_bytes(b"\x22" * 4096)
    before = os.stat(path)
    pod.prepare(make_vmi(_host(path, "DiskOrCreate", "1Gi")))  # not resized, not zeroed
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        4096,
    )
    assert path.read_bytes() == b"\x22" * 4096


def test_a_directory_is_not_a_host_disk(pod: Pod) -> None:
    with pytest.raises(storage.StorageError, match="not a regular file"):
        pod.prepare(make_vmi(_host(pod.root, "Disk")))


def test_cleanup_keeps_a_created_host_disk(pod: Pod) -> None:
    path = pod.root / "node" / "vm.img"
    vmi = make_vmi(_host(path, "DiskOrCreate", "1Mi"), {"name": "s", "emptyDisk": {"capacity": 1}})
    pod.prepare(vmi)
    with path.open("r+b") as f:
        f.write(b"guest data")
    storage.cleanup(pod.run_dir)
    assert path.read_bytes()[:10] == b"guest data"
    assert list(pod.run_dir.iterdir()) == []
