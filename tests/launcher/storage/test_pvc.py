"""PVCs: a disk.img in the claim's directory (made, sparse, when missing and the claim's
capacity is known), or the claim itself as a block device; never removed by storage."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kvd.launcher import storage
from kvd.launcher.converter.context import DiskSource
from tests.launcher.conftest import QEMU
from tests.launcher.storage.conftest import MiB, Pod, make_vmi


def _claim(pod: Pod, claim: str) -> Path:
    image = pod.pvc_dir / claim / "disk.img"
    image.parent.mkdir()
    image.write_bytes(b"\0" * 4096)
    return image


@pytest.mark.parametrize(
    ("read_only", "expected"),
    [pytest.param(None, False, id="default"), pytest.param(True, True, id="readOnly")],
)
def test_filesystem_mode_uses_disk_img(pod: Pod, read_only: bool | None, expected: bool) -> None:
    image = _claim(pod, "vm-data")
    source: dict[str, object] = {"claimName": "vm-data"}
    if read_only is not None:
        source["readOnly"] = read_only
    sources = pod.prepare(make_vmi({"name": "data", "persistentVolumeClaim": source}))
    assert sources == {"data": DiskSource(path=image, format="raw", read_only=expected)}


def _device(pod: Pod, claim: str, *, minor: int = 0) -> Path:
    """A block device node where the pod maps the claim (root's, 0600, as a runtime makes it)."""
    device = pod.pvc_dir / claim
    try:
        os.mknod(device, stat.S_IFBLK | 0o600, os.makedev(7, minor))
    except PermissionError:
        pytest.fail("creating a block device node needs CAP_MKNOD: run the tests as root")
    return device


@pytest.mark.parametrize(
    ("read_only", "mode"), [pytest.param(False, 0o600, id="rw"), pytest.param(True, 0o400, id="ro")]
)
def test_block_mode_gives_qemu_its_own_node_and_leaves_the_pods_alone(
    pod: Pod, read_only: bool, mode: int
) -> None:
    device = _device(pod, "vm-block")
    before = device.stat()
    claim = {"claimName": "vm-block", "readOnly": read_only}
    volume = {"name": "data", "persistentVolumeClaim": claim}
    node = pod.run_dir / "disks" / "block" / "data"
    assert pod.prepare(make_vmi(volume)) == {
        "data": DiskSource(path=node, format="raw", kind="block", read_only=read_only)
    }
    st = node.stat()
    assert stat.S_ISBLK(st.st_mode) and st.st_rdev == before.st_rdev
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (QEMU.uid, QEMU.gid, mode)
    after = device.stat()  # on the local node, the host's own node: never chowned
    assert (after.st_ino, after.st_uid, after.st_gid, after.st_mode) == (
        before.st_ino,
        before.st_uid,
        before.st_gid,
        before.st_mode,
    )

    assert pod.prepare(make_vmi(volume))["data"].path == node
    assert node.stat().st_ino == st.st_ino, "a second prepare reuses the node"
    storage.cleanup(pod.run_dir)
    assert not node.exists() and device.stat().st_rdev == before.st_rdev


def test_a_node_of_another_device_is_replaced(pod: Pod) -> None:
    _device(pod, "vm-block", minor=1)
    stale = pod.run_dir / "disks" / "block" / "data"
    stale.parent.mkdir(parents=True)
    os.mknod(stale, stat.S_IFBLK | 0o600, os.makedev(7, 0))
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "vm-block"}}
    pod.prepare(make_vmi(volume))
    assert stale.stat().st_rdev == os.makedev(7, 1)


@pytest.mark.parametrize(
    ("read_only", "before", "after"),
    [
        pytest.param(False, (0, 0, 0o644), (QEMU.uid, QEMU.gid, 0o644), id="given-to-qemu"),
        pytest.param(False, (0, 0, 0o400), (QEMU.uid, QEMU.gid, 0o600), id="owner-gets-rw"),
        pytest.param(True, (0, 0, 0o644), (0, 0, 0o644), id="readable-is-enough"),
        pytest.param(False, (0, QEMU.gid, 0o660), (0, QEMU.gid, 0o660), id="group-is-enough"),
    ],
)
def test_disk_img_is_given_to_qemu_only_when_it_could_not_open_it(
    pod: Pod,
    read_only: bool,
    before: tuple[int, int, int],
    after: tuple[int, int, int],
) -> None:
    image = _claim(pod, "vm-data")
    os.chown(image, before[0], before[1])
    image.chmod(before[2])
    claim = {"claimName": "vm-data", "readOnly": read_only}
    pod.prepare(make_vmi({"name": "data", "persistentVolumeClaim": claim}))
    st = image.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == after
    assert stat.S_IMODE((pod.pvc_dir / "vm-data").stat().st_mode) == 0o755, "its dir is left"


def test_a_claim_directory_qemu_cannot_pass_is_refused(pod: Pod) -> None:
    image = _claim(pod, "vm-data")
    image.parent.chmod(0o700)
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "vm-data"}}
    with pytest.raises(storage.StorageError, match="cannot pass through the directory") as caught:
        pod.prepare(make_vmi(volume))
    assert (caught.value.volume, caught.value.reason) == ("data", "VolumeNotAccessible")
    assert f"{image.parent} (drwx------ root:root)" in str(caught.value)


@pytest.mark.parametrize(
    ("volume", "message", "reason"),
    [
        pytest.param(
            {"persistentVolumeClaim": {"claimName": "nope"}},
            'persistentVolumeClaim "nope" is not attached',
            "PVCNotFound",
            id="pvc-missing",
        ),
        pytest.param(
            {"persistentVolumeClaim": {"claimName": "empty"}},
            "has no disk.img",
            "PVCNotFound",
            id="no-disk-img",
        ),
        pytest.param(
            {"persistentVolumeClaim": {"claimName": "../outside"}},
            "not a valid claim name",
            "PVCInvalid",
            id="traversal",
        ),
    ],
)
def test_unusable_claim_names_the_claim(
    pod: Pod, volume: dict[str, object], message: str, reason: str
) -> None:
    (pod.pvc_dir / "empty").mkdir()
    (pod.root / "outside").mkdir()
    (pod.root / "outside" / "disk.img").write_bytes(b"\0" * 512)  # would be found via ..
    with pytest.raises(storage.StorageError, match=message) as caught:
        pod.prepare(make_vmi({"name": "data", **volume}))
    assert (caught.value.volume, caught.value.reason) == ("data", reason)


def test_a_missing_disk_img_is_made_sparse_at_the_capacity_less_kubevirts_overhead(
    pod: Pod,
) -> None:
    (pod.pvc_dir / "fresh").mkdir(mode=0o777)
    (pod.pvc_dir / "fresh").chmod(0o777)
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "fresh"}}
    sources = pod.prepare(make_vmi(volume), pvc_capacities={"fresh": 64 * MiB})
    image = pod.pvc_dir / "fresh" / "disk.img"
    assert sources == {"data": DiskSource(path=image, format="raw")}
    st = image.stat()
    # 64 MiB less 5.5% is 60.48 MiB: whole MiB, rounded down
    assert st.st_size == 60 * MiB == storage.pvc.image_size(64 * MiB)
    assert st.st_blocks == 0  # sparse
    assert (st.st_uid, st.st_gid) == (QEMU.uid, QEMU.gid)

    image.write_bytes(b"guest data")  # the guest's from now on: used as it is, never resized
    pod.prepare(make_vmi(volume), pvc_capacities={"fresh": 128 * MiB})
    assert image.read_bytes() == b"guest data"
    storage.cleanup(pod.run_dir)
    assert image.exists(), "the claim's disk belongs to the claim, not to the launcher"


def test_a_capacity_too_small_for_any_disk_is_refused(pod: Pod) -> None:
    (pod.pvc_dir / "tiny").mkdir()
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "tiny"}}
    with pytest.raises(storage.StorageError, match="leaves no room for a disk") as caught:
        pod.prepare(make_vmi(volume), pvc_capacities={"tiny": MiB})
    assert caught.value.reason == "PVCNotUsable"
    assert not (pod.pvc_dir / "tiny" / "disk.img").exists()
