"""hostDisk: an existing file (Disk) or one created sparse when missing (DiskOrCreate), found in
the directory the pod mounts for the volume, never at the node path itself; it outlives the
VMI: cleanup never removes it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kvd.launcher import storage
from kvd.launcher.converter.context import DiskSource
from tests.launcher.storage.conftest import MiB, Pod, make_vmi

NODE_PATH = "/var/lib/kvd-test-never-touched/vm.img"  # what the VMI says; the pod mounts its dir


def _host(kind: str, capacity: str | None = None, path: str = NODE_PATH) -> dict[str, object]:
    source: dict[str, object] = {"path": path, "type": kind}
    if capacity is not None:
        source["capacity"] = capacity
    return {"name": "host", "hostDisk": source}


def test_disk_uses_the_existing_file_in_its_mounted_directory_as_raw(pod: Pod) -> None:
    path = pod.host_dir("host") / "vm.img"
    path.write_bytes(b"\x11" * 4096)
    sources = pod.prepare(make_vmi(_host("Disk")))
    assert sources == {"host": DiskSource(path=path, format="raw")}
    assert path.read_bytes() == b"\x11" * 4096
    assert not Path(NODE_PATH).parent.exists()


def test_disk_that_does_not_exist_is_a_clear_error(pod: Pod) -> None:
    pod.host_dir("host")
    with pytest.raises(
        storage.StorageError, match=f"hostDisk {NODE_PATH} does not exist"
    ) as caught:
        pod.prepare(make_vmi(_host("Disk")))
    assert (caught.value.volume, caught.value.reason) == ("host", "HostDiskNotFound")
    assert os.listdir(pod.host_disk_dir / "host") == []


@pytest.mark.parametrize("kind", ["Disk", "DiskOrCreate"])
def test_a_directory_the_pod_does_not_have_is_a_clear_error(pod: Pod, kind: str) -> None:
    """A launcher run without the pod's hostPath mount: it says where it looked, and creates
    nothing in its own filesystem."""
    with pytest.raises(storage.StorageError, match="its directory is not mounted at") as caught:
        pod.prepare(make_vmi(_host(kind, "1Mi")))
    assert (caught.value.volume, caught.value.reason) == ("host", "HostDiskNotMounted")
    assert NODE_PATH in str(caught.value)
    assert os.listdir(pod.host_disk_dir) == []


def test_disk_or_create_makes_a_sparse_raw_file(pod: Pod) -> None:
    path = pod.host_dir("host") / "vm.img"
    sources = pod.prepare(make_vmi(_host("DiskOrCreate", "1000Mi")))
    assert sources == {"host": DiskSource(path=path, format="raw")}
    st = os.stat(path)
    assert st.st_size == 1000 * MiB
    assert st.st_blocks == 0  # sparse: nothing allocated until the guest writes


def test_disk_or_create_rounds_capacity_up_to_whole_sectors(pod: Pod) -> None:
    path = pod.host_dir("host") / "vm.img"
    pod.prepare(make_vmi(_host("DiskOrCreate", "1k")))
    assert path.stat().st_size == 1024


def test_disk_or_create_leaves_an_existing_file_alone(pod: Pod) -> None:
    path = pod.host_dir("host") / "vm.img"
    path.write_bytes(b"\x22" * 4096)
    before = os.stat(path)
    pod.prepare(make_vmi(_host("DiskOrCreate", "1Gi")))  # not resized, not zeroed
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        4096,
    )
    assert path.read_bytes() == b"\x22" * 4096


@pytest.mark.parametrize("what", ["directory", "dangling-link"])
def test_what_is_not_a_regular_file_is_not_a_host_disk(pod: Pod, what: str) -> None:
    path = pod.host_dir("host") / "vm.img"
    if what == "directory":
        path.mkdir()
    else:
        path.symlink_to(pod.root / "nowhere")
    with pytest.raises(storage.StorageError, match="not a regular file"):
        pod.prepare(make_vmi(_host("DiskOrCreate", "1Mi")))
    assert not (pod.root / "nowhere").exists()


def test_cleanup_keeps_a_created_host_disk(pod: Pod) -> None:
    path = pod.host_dir("host") / "vm.img"
    vmi = make_vmi(_host("DiskOrCreate", "1Mi"), {"name": "s", "emptyDisk": {"capacity": 1}})
    pod.prepare(vmi)
    with path.open("r+b") as f:
        f.write(b"guest data")
    storage.cleanup(pod.run_dir)
    assert path.read_bytes()[:10] == b"guest data"
    assert list(pod.run_dir.iterdir()) == []
