"""The façade: every volume of a VMI at once, idempotent, all or nothing, and a cleanup that
removes exactly what storage made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kvd.launcher import storage
from kvd.launcher.converter.context import DiskSource
from tests.launcher.conftest import QEMU
from tests.launcher.storage.conftest import (
    Pod,
    everything_under,
    make_vmi,
    qemu_io,
    sha256,
    snapshot,
)


def _every_kind(pod: Pod) -> list[dict[str, Any]]:
    """One volume of each kind, with the inputs the pod would provide."""
    pod.base("root", fmt="qcow2")
    claim = pod.pvc_dir / "vm-data" / "disk.img"
    claim.parent.mkdir()
    claim.write_bytes(b"\x33" * 4096)
    pod.host_dir("host")
    return [
        {"name": "root", "containerDisk": {"image": "kvd-demo"}},
        {"name": "cloudinit", "cloudInitNoCloud": {"userData": "#!/bin/sh\n"}},
        {"name": "configdrive", "cloudInitConfigDrive": {"userData": "#!/bin/sh\n"}},
        {"name": "scratch", "emptyDisk": {"capacity": "16Mi"}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "vm-data"}},
        {
            "name": "host",
            "hostDisk": {"path": "/var/lib/vms/vm.img", "type": "DiskOrCreate", "capacity": "1Mi"},
        },
    ]


def test_prepares_every_volume(pod: Pod) -> None:
    sources = pod.prepare(make_vmi(*_every_kind(pod)))
    disks = pod.run_dir / "disks"
    assert sources == {
        "root": DiskSource(path=disks / "container-disks" / "root.qcow2", format="qcow2"),
        "cloudinit": DiskSource(
            path=disks / "cloud-init" / "cloudinit.iso", format="raw", read_only=True, is_iso=True
        ),
        "configdrive": DiskSource(
            path=disks / "cloud-init" / "configdrive.iso", format="raw", read_only=True, is_iso=True
        ),
        "scratch": DiskSource(path=disks / "empty-disks" / "scratch.qcow2", format="qcow2"),
        "data": DiskSource(path=pod.pvc_dir / "vm-data" / "disk.img", format="raw"),
        "host": DiskSource(path=pod.host_disk_dir / "host" / "vm.img", format="raw"),
    }
    assert all(source.path.exists() for source in sources.values())


def test_second_prepare_changes_nothing_anywhere(pod: Pod) -> None:
    vmi = make_vmi(*_every_kind(pod))
    first = pod.prepare(vmi)
    qemu_io(first["scratch"].path, "qcow2", "write -P 0x99 0 4k")  # the guest wrote
    before = snapshot(pod.root)

    assert pod.prepare(vmi) == first
    assert snapshot(pod.root) == before


def test_cleanup_removes_what_storage_made_and_nothing_else(pod: Pod) -> None:
    vmi = make_vmi(*_every_kind(pod))
    unrelated = pod.run_dir / "libvirt" / "state"  # another part of the launcher's run dir
    unrelated.parent.mkdir()
    unrelated.write_text("not storage's")
    pod.prepare(vmi)
    outside = {k: v for k, v in snapshot(pod.root).items() if not k.startswith("run/disks")}

    storage.cleanup(pod.run_dir)
    assert everything_under(pod.run_dir) == ["libvirt", "libvirt/state"]
    assert snapshot(pod.root) == outside  # base, PVC, hostDisk: same inode, mtime, bytes

    storage.cleanup(pod.run_dir)  # idempotent
    storage.cleanup(pod.root / "never-prepared")
    assert snapshot(pod.root) == outside


def test_prepare_after_cleanup_starts_afresh(pod: Pod) -> None:
    vmi = make_vmi(*_every_kind(pod))
    pod.prepare(vmi)
    storage.cleanup(pod.run_dir)
    sources = pod.prepare(vmi)
    assert all(source.path.exists() for source in sources.values())


def test_failure_halfway_removes_what_the_call_created(pod: Pod) -> None:
    inputs = pod.base("root")
    host = pod.host_dir("host") / "vm.img"
    vmi = make_vmi(
        {"name": "root", "containerDisk": {"image": "kvd-demo"}},
        {"name": "cloudinit", "cloudInitNoCloud": {"userData": "#!/bin/sh\n"}},
        {"name": "scratch", "emptyDisk": {"capacity": "1Mi"}},
        {
            "name": "host",
            "hostDisk": {"path": "/var/lib/vms/vm.img", "type": "DiskOrCreate", "capacity": "1Mi"},
        },
        {"name": "second", "containerDisk": {"image": "kvd-demo-2"}},  # its base is missing
    )
    before = sha256(inputs)
    with pytest.raises(storage.StorageError) as caught:
        pod.prepare(vmi)
    assert caught.value.volume == "second"
    assert 'volume "second"' in str(caught.value)
    assert everything_under(pod.run_dir) == []  # not even disks/
    assert not host.exists()  # the hostDisk this call made (its directory is the pod's)
    assert sha256(inputs) == before


def test_failed_second_call_keeps_what_the_first_call_made(pod: Pod) -> None:
    volumes = _every_kind(pod)
    pod.prepare(make_vmi(*volumes))
    made = snapshot(pod.root)
    (pod.pvc_dir / "vm-data" / "disk.img").unlink()  # the claim went away meanwhile
    del made["pvcs/vm-data/disk.img"]

    with pytest.raises(storage.StorageError, match='persistentVolumeClaim "vm-data"'):
        pod.prepare(make_vmi(*volumes, {"name": "extra", "emptyDisk": {"capacity": "1Mi"}}))
    assert snapshot(pod.root) == made


def test_temporary_failures_are_told_apart(pod: Pod, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("kvd.launcher.storage.qemu_img.QEMU_IMG", "kvd-no-such-qemu-img")
    with pytest.raises(storage.TemporaryStorageError, match="not installed") as caught:
        pod.prepare(make_vmi({"name": "scratch", "emptyDisk": {"capacity": "1Mi"}}))
    assert not isinstance(caught.value, ValueError)
    assert (caught.value.volume, caught.value.reason) == ("scratch", "StorageUnavailable")
    assert everything_under(pod.run_dir) == []


def test_paths_are_absolute_whatever_the_caller_passes(
    pod: Pod, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(pod.root)
    pod.base("root")
    sources = storage.prepare(
        make_vmi({"name": "root", "containerDisk": {"image": "kvd-demo"}}),
        run_dir=Path("run"),
        container_disk_dir=Path("container-disks"),
        pvc_dir=Path("pvcs"),
        host_disk_dir=Path("host-disks"),
        qemu=QEMU,
    )
    assert sources["root"].path.is_absolute()


def test_cleanup_does_not_follow_a_symlink_out_of_the_disks_directory(pod: Pod) -> None:
    pod.prepare(make_vmi({"name": "scratch", "emptyDisk": {"capacity": "1Mi"}}))
    precious = pod.root / "precious"
    precious.mkdir()
    (precious / "keep").write_text("keep me")
    (pod.run_dir / "disks" / "empty-disks" / "link").symlink_to(precious)

    storage.cleanup(pod.run_dir)
    assert everything_under(pod.run_dir) == []
    assert (precious / "keep").read_text() == "keep me"
