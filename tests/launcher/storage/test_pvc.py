"""PVCs: a disk.img in the claim's directory, or the claim itself as a block
device; never created or removed by storage."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kvd.launcher import storage
from kvd.launcher.converter.context import DiskSource
from tests.launcher.storage.conftest import Pod, make_vmi


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


def test_block_mode_uses_the_device(pod: Pod) -> None:
    device = pod.pvc_dir / "vm-block"
    try:
        os.mknod(device, stat.S_IFBLK | 0o600, os.makedev(7, 0))
    except PermissionError:
        pytest.skip("creating a block device node needs CAP_MKNOD")
    volume = {"name": "data", "persistentVolumeClaim": {"claimName": "vm-block"}}
    assert pod.prepare(make_vmi(volume)) == {
        "data": DiskSource(path=device, format="raw", kind="block")
    }


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
