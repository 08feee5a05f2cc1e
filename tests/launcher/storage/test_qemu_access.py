"""Every disk storage prepares is usable by QEMU's unprivileged user, and nothing shared changes.

What the launcher makes is QEMU's user's, in directories only root and QEMU's group may pass
through (and only root may list); shared inputs (container disk bases and their backing chain)
are refused, named, when that user cannot read them, and are never chowned or chmodded.
(PVCs: test_pvc.py.)
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kvd.launcher import storage
from tests.launcher.conftest import QEMU
from tests.launcher.storage.conftest import Pod, make_vmi, run

CONTAINER_DISK = {"name": "root", "containerDisk": {"image": "kvd-demo"}}


def _owner(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_what_storage_makes_is_qemus_and_only_root_lists_it(pod: Pod) -> None:
    pod.base("root", fmt="qcow2")
    vmi = make_vmi(
        CONTAINER_DISK,
        {"name": "scratch", "emptyDisk": {"capacity": "1Mi"}},
        {"name": "cloudinit", "cloudInitNoCloud": {"userData": "#!/bin/sh\n"}},
    )
    sources = pod.prepare(vmi)
    assert _owner(sources["root"].path) == (QEMU.uid, QEMU.gid, 0o600)
    assert _owner(sources["scratch"].path) == (QEMU.uid, QEMU.gid, 0o600)
    assert _owner(sources["cloudinit"].path) == (QEMU.uid, QEMU.gid, 0o400)
    disks = pod.run_dir / "disks"
    for directory in (disks, *(p.parent for p in (s.path for s in sources.values()))):
        assert _owner(directory) == (0, QEMU.gid, 0o710), directory
    for path in (s.path for s in sources.values()):
        assert QEMU.blocking_directory(path) is None

    # a second call (DefineDomain again) keeps them so, and keeps the files
    inodes = {name: s.path.stat().st_ino for name, s in sources.items()}
    again = pod.prepare(vmi)
    assert {name: s.path.stat().st_ino for name, s in again.items()} == inodes
    assert _owner(again["cloudinit"].path) == (QEMU.uid, QEMU.gid, 0o400)


def test_the_base_and_its_backing_chain_are_never_changed(pod: Pod) -> None:
    lower = pod.base("root", name="lower.qcow2", fmt="qcow2")
    top = lower.parent / "disk.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(lower), str(top))
    for path in (lower, top):
        path.chmod(0o444)  # as the local image store keeps them
    before = {p: (_owner(p), p.stat().st_ino, p.stat().st_mtime_ns) for p in (lower, top)}
    source = {"image": "kvd-demo", "path": "/disk.qcow2"}
    pod.prepare(make_vmi({"name": "root", "containerDisk": source}))
    assert {p: (_owner(p), p.stat().st_ino, p.stat().st_mtime_ns) for p in (lower, top)} == before


@pytest.mark.parametrize(
    ("unreadable", "what"),
    [pytest.param("disk.qcow2", "base image", id="base"), pytest.param("lower.qcow2", "backing")],
)
def test_a_layer_qemu_cannot_read_is_refused_by_name(pod: Pod, unreadable: str, what: str) -> None:
    lower = pod.base("root", name="lower.qcow2", fmt="qcow2")
    top = lower.parent / "disk.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(lower), str(top))
    (lower.parent / unreadable).chmod(0o600)
    source = {"image": "kvd-demo", "path": "/disk.qcow2"}
    with pytest.raises(storage.StorageError, match=what) as caught:
        pod.prepare(make_vmi({"name": "root", "containerDisk": source}))
    message = str(caught.value)
    assert f"{lower.parent / unreadable} is -rw------- root:root" in message
    assert f"{QEMU.name} (uid {QEMU.uid}, gid {QEMU.gid})" in message
    assert (caught.value.volume, caught.value.reason) == ("root", "VolumeNotAccessible")
    assert _owner(lower.parent / unreadable) == (0, 0, 0o600), "refused, never chmodded"
    assert not list((pod.run_dir).rglob("*.qcow2")), "nothing is left behind"


def test_an_image_qemu_cannot_reach_is_refused_naming_the_directory(pod: Pod) -> None:
    base = pod.base("root")
    base.parent.chmod(0o700)
    with pytest.raises(storage.StorageError, match="cannot pass through") as caught:
        pod.prepare(make_vmi(CONTAINER_DISK))
    assert f"{base.parent} (drwx------ root:root)" in str(caught.value)


def test_host_disks_are_qemus_whether_made_or_found(pod: Pod) -> None:
    pod.host_dir("made").chmod(0o755)
    pod.host_dir("found").chmod(0o755)
    found = pod.host_dir("found") / "found.img"
    found.write_bytes(b"\0" * 4096)
    found.chmod(0o644)
    vmi = make_vmi(
        {
            "name": "made",
            "hostDisk": {"path": "/x/made.img", "type": "DiskOrCreate", "capacity": "1Mi"},
        },
        {"name": "found", "hostDisk": {"path": "/x/found.img", "type": "Disk"}},
    )
    sources = pod.prepare(vmi)
    assert _owner(sources["made"].path) == (QEMU.uid, QEMU.gid, 0o600)
    assert _owner(found) == (QEMU.uid, QEMU.gid, 0o644)
    for directory in (found.parent, sources["made"].path.parent):
        assert _owner(directory) == (0, 0, 0o755), "the user's directory is left as it is"


def test_a_host_disk_directory_qemu_cannot_pass_is_refused(pod: Pod) -> None:
    directory = pod.host_dir("host")
    (directory / "vm.img").write_bytes(b"\0" * 4096)
    directory.chmod(0o700)
    with pytest.raises(storage.StorageError, match="cannot pass through") as caught:
        pod.prepare(make_vmi({"name": "host", "hostDisk": {"path": "/x/vm.img", "type": "Disk"}}))
    assert caught.value.reason == "VolumeNotAccessible"
    assert _owner(directory) == (0, 0, 0o700)


def test_a_failed_prepare_leaves_no_directory_it_made(pod: Pod) -> None:
    pod.base("root").chmod(0o600)
    vmi = make_vmi({"name": "scratch", "emptyDisk": {"capacity": "1Mi"}}, CONTAINER_DISK)
    with pytest.raises(storage.StorageError):
        pod.prepare(vmi)
    assert os.listdir(pod.run_dir) == []
