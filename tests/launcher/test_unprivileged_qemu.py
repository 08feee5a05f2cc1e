"""QEMU runs as libvirt-qemu, not root, and still boots the guest with every kind of disk.

A real launcher, libvirtd and QEMU: the guest boots from the local image store's kvd-demo disk
(bound where the pod would mount it, as the local node does), with a filesystem PVC's disk.img
and a block PVC that is the host's own loop device node (bound, same inode, as the local node
maps a block claim). The guest writes to both; afterwards the shared files — the image store's
and the host's device node — have the owner, mode and inode they had before.
"""

from __future__ import annotations

import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvd import sandbox
from kvd.launcher import qemu_user
from kvd.local import images
from kvd.rpc.launcher.v1 import launcher_pb2
from tests.launcher.harness import RPC_TIMEOUT, Console, Launcher
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
WRITES = """#!/bin/sh
printf kvd-wrote-the-file-pvc >/dev/vdc
printf kvd-wrote-the-block-pvc >/dev/vdd
sync
echo KVD-WRITES-DONE
"""


@pytest.fixture
def loop_device(tmp_path: Path) -> Iterator[Path]:
    backing = tmp_path / "block.raw"
    backing.write_bytes(b"\0" * 4 * MiB)
    done = subprocess.run(
        ["losetup", "--find", "--show", str(backing)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"losetup: {done.stderr}"
    device = Path(done.stdout.strip())
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", str(device)], timeout=30, check=False)


def _shared(paths: list[Path]) -> dict[Path, tuple[int, int, int, int, int]]:
    """(inode, uid, gid, mode, mtime) of each path: what must never change."""
    found = {}
    for path in paths:
        st = path.stat()
        found[path] = (st.st_ino, st.st_uid, st.st_gid, st.st_mode, st.st_mtime_ns)
    return found


def _ids(pid: int) -> dict[str, list[str]]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid", "CapEff", "CapPrm"):
            fields[key] = value.split()
    return fields


def test_qemu_runs_unprivileged_and_its_disks_work_without_touching_shared_files(
    tmp_path: Path, guest_dir: Path, loop_device: Path
) -> None:
    store = images.ImageStore()
    demo = store.resolve("kvd-demo")
    assert isinstance(demo, images.StoredImage) and demo.disk is not None, demo
    base = tmp_path / "l"
    launcher = Launcher(base, guest_dir, uid=str(uuid.uuid4()))
    # The pod's view: the image's disk/ directory from the store; the claims under pvc_dir.
    claim = launcher.pvc_dir / "data"
    claim.mkdir(parents=True)
    image = claim / "disk.img"
    image.write_bytes(b"\0" * 4 * MiB)
    image.chmod(0o644)
    block = launcher.pvc_dir / "blk"
    block.write_bytes(b"")  # the mountpoint of the bind; the host's node is bound over it
    launcher.sandbox_spec = sandbox.SandboxSpec(
        binds={launcher.disk_dir / "containerdisk": demo.disk.parent, block: loop_device}
    )
    store_files = [demo.root, *demo.root.rglob("*")]
    before = _shared([*store_files, loop_device])

    manifest = launcher.manifest(user_data=WRITES)
    spec = manifest["spec"]
    spec["domain"]["devices"]["disks"] += [
        {"name": "data", "disk": {"bus": "virtio"}},
        {"name": "blk", "disk": {"bus": "virtio"}},
    ]
    spec["volumes"] += [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
        {"name": "blk", "persistentVolumeClaim": {"claimName": "blk"}},
    ]
    try:
        launcher.start()
        launcher.define(manifest)
        launcher.stub.LaunchDomain(launcher_pb2.LaunchDomainRequest(), timeout=RPC_TIMEOUT)
        console = Console(launcher.stub)  # replays the output from the first byte
        console.wait_for(f"KVD-DISK vdc {4 * MiB}")
        console.wait_for(f"KVD-DISK vdd {4 * MiB}")
        console.wait_for("KVD-WRITES-DONE")

        [qemu] = [p for p in launcher.processes() if b"qemu-system" in _cmdline(p)]
        user = qemu_user.lookup()
        ids = _ids(qemu)
        assert ids["Uid"] == [str(user.uid)] * 4, ids  # real, effective, saved, filesystem
        assert ids["Gid"] == [str(user.gid)] * 4, ids
        assert int(ids["CapEff"][0], 16) == 0 == int(ids["CapPrm"][0], 16), ids
        wait_for(
            "the guest's writes on the PVC file and the block device",
            lambda: (
                image.read_bytes().startswith(b"kvd-wrote-the-file-pvc")
                and loop_device.read_bytes()[:23] == b"kvd-wrote-the-block-pvc"
            ),
            timeout=30,
        )
        assert image.stat().st_uid == user.uid, "the VMI's own disk.img is given to QEMU"

        launcher.stub.KillDomain(launcher_pb2.KillDomainRequest(), timeout=RPC_TIMEOUT)
        launcher.stub.DeleteDomain(launcher_pb2.DeleteDomainRequest(), timeout=RPC_TIMEOUT)
        assert not (launcher.run_dir / "disks").exists()
    finally:
        launcher.close()
    assert _shared([*store_files, loop_device]) == before
    st = loop_device.stat()
    assert stat.S_ISBLK(st.st_mode)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_a_run_dir_qemu_cannot_reach_stops_the_launcher_saying_why(
    tmp_path: Path, guest_dir: Path
) -> None:
    launcher = Launcher(tmp_path / "l", guest_dir)
    closed = launcher.files / "closed"
    closed.mkdir(mode=0o700)
    os.chmod(closed, 0o700)
    launcher.run_dir = closed / "run"
    launcher.args[launcher.args.index("--run-dir") + 1] = str(launcher.run_dir)
    try:
        log = open(launcher.log_path, "ab")  # noqa: SIM115 - handed to the child
        launcher.proc = sandbox.popen(launcher.args, launcher.sandbox_spec, stdout=log, stderr=log)
        log.close()
        assert launcher.wait_exit(60) == 4  # STARTUP_FAILED
        assert "qemu_user_unusable" in launcher.log()
        assert f"cannot pass through {closed}" in launcher.log()
    finally:
        launcher.close()
