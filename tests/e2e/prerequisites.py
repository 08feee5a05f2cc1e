"""What some of KubeVirt's examples presume a cluster already has, made the way a user would.

- `vmi-pvc.yaml` wants the claim `disk-alpine`: a PersistentVolume whose hostPath directory holds
  `disk.img` (the demo guest converted to raw with qemu-img, as KubeVirt expects a filesystem
  claim's disk), and the claim bound to it by `spec.volumeName`.
- `vmi-block-pvc.yaml` wants `local-block-storage-cirros`: a loop device over a raw copy of the
  demo guest, as a `local` PersistentVolume with `volumeMode: Block` on this node (KubeVirt's
  example names the local-block storage of its own test cluster), and the claim bound to it.
- `vmi-host-disk.yaml` would create `/var/data/disk.img` on the node: the test applies a copy
  whose path is a file under its own tmp dir instead, and never touches /var/data.

Each is a context manager around one example's run: it yields what to apply and what the demo
guest's console shows once booted from that disk; on the way out it deletes the objects it made,
detaches its loop device and removes its files, whatever happened. Only when the run succeeded
does it then check what the run left: a claim's disk untouched by the launcher, a loop device
gone, a hostDisk that outlived its VMI (as KubeVirt leaves one) and nothing more.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import yaml

from kvd.api import kinds
from kvd.api import vmi as vmitypes
from tests.api.compatibility import Row
from tests.e2e.conftest import E2E, Json
from tests.support.waiting import wait_for


@dataclass(frozen=True)
class Prepared:
    manifest: Path  # what to `kubectl apply -f`: the example, or the test's copy of it
    console: str | None = None  # a line the demo guest prints once booted from its disk


Prerequisite = Callable[[E2E, Row, Path, Path], AbstractContextManager[Prepared]]


def _only_volume(row: Row) -> vmitypes.Volume:
    (document,) = row.documents()
    vmi = kinds.load(document)
    assert isinstance(vmi, vmitypes.VirtualMachineInstance)
    (volume,) = vmi.spec.volumes
    return volume


def _claim_name(row: Row) -> str:
    claim = _only_volume(row).persistent_volume_claim
    assert claim is not None, f"{row.file} has no persistentVolumeClaim"
    return claim.claim_name


def _raw_guest(guest_dir: Path, target: Path) -> int:
    """The demo guest as a raw image at `target`; its size in bytes."""
    subprocess.run(
        ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(guest_dir / "kvd-demo.qcow2"),
         str(target)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return target.stat().st_size


def volume_and_claim(claim: str, *, mode: str, size: int, source: Json) -> str:
    """A PersistentVolume and a claim bound to it by name, as YAML for `kubectl apply`."""
    storage = f"{-(-size // 2**20)}Mi"
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{claim}-pv"},
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "volumeMode": mode,
            **source,
        },
    }
    bound = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeMode": mode,
            "volumeName": f"{claim}-pv",
            "resources": {"requests": {"storage": storage}},
        },
    }
    return yaml.safe_dump_all([volume, bound])


def _delete_claim(e2e: E2E, claim: str) -> None:
    e2e.kubectl("delete", "pvc", claim, "--ignore-not-found", check=False)
    e2e.kubectl("delete", "pv", f"{claim}-pv", "--ignore-not-found", check=False)


@contextlib.contextmanager
def filesystem_claim(e2e: E2E, row: Row, tmp: Path, guest_dir: Path) -> Iterator[Prepared]:
    claim = _claim_name(row)
    directory = tmp / f"pv-{claim}"
    directory.mkdir()
    image = directory / "disk.img"
    size = _raw_guest(guest_dir, image)
    source = {"hostPath": {"path": str(directory), "type": "Directory"}}
    try:
        e2e.apply(volume_and_claim(claim, mode="Filesystem", size=size, source=source))
        yield Prepared(row.path, console=rf"^KVD-DISK vda {size}\r?$")
        # the claim's disk is the cluster's: the launcher neither removed nor replaced it
        assert [p.name for p in directory.iterdir()] == ["disk.img"]
        assert image.stat().st_size == size
    finally:
        _delete_claim(e2e, claim)
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def block_claim(e2e: E2E, row: Row, tmp: Path, guest_dir: Path) -> Iterator[Prepared]:
    claim = _claim_name(row)
    raw = tmp / f"{claim}.raw"
    size = _raw_guest(guest_dir, raw)
    device = _losetup("-f", "--show", str(raw)).strip()
    succeeded = False
    try:
        assert Path(device).is_block_device(), device
        source = {
            "local": {"path": device},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [e2e.cluster.node_name],
                                }
                            ]
                        }
                    ]
                }
            },
        }
        e2e.apply(volume_and_claim(claim, mode="Block", size=size, source=source))
        yield Prepared(row.path, console=rf"^KVD-DISK vda {size}\r?$")
        succeeded = True
    finally:
        _delete_claim(e2e, claim)
        # Detaching a device still open (a run that failed midway) makes it go at last close.
        _losetup("-d", device)
        try:
            if succeeded:  # asked while the file is there to be matched; a device something
                # still holds open (udev probing it, say) goes when that lets go
                wait_for(
                    f"{device} detached from {raw}",
                    lambda: _losetup("-j", str(raw)) == "",
                    timeout=10,
                )
        finally:
            raw.unlink(missing_ok=True)


@contextlib.contextmanager
def host_disk_under_tmp(e2e: E2E, row: Row, tmp: Path, guest_dir: Path) -> Iterator[Prepared]:
    """The example with its hostDisk path moved from /var/data/disk.img to the test's tmp dir,
    into a directory that does not exist yet (DiskOrCreate: the node makes it, the launcher
    creates the file)."""
    (document,) = row.documents()
    (volume,) = document["spec"]["volumes"]
    disk = volume["hostDisk"]
    assert (disk["path"], disk["type"]) == ("/var/data/disk.img", "DiskOrCreate"), disk
    directory = tmp / "var-data"
    disk["path"] = str(directory / "disk.img")
    manifest = tmp / Path(row.file).name
    manifest.write_text(yaml.safe_dump(document))
    capacity = _only_volume(row).host_disk
    assert capacity is not None and capacity.capacity is not None
    try:
        yield Prepared(manifest)
        # a hostDisk outlives its VMI, as in KubeVirt: there, sparse, of the asked capacity
        assert [p.name for p in directory.iterdir()] == ["disk.img"]
        stat = (directory / "disk.img").stat()
        assert stat.st_size == capacity.capacity.bytes()
        assert stat.st_blocks * 512 < stat.st_size  # the guest wrote nearly nothing
    finally:
        shutil.rmtree(directory, ignore_errors=True)
        manifest.unlink(missing_ok=True)


@contextlib.contextmanager
def nothing(e2e: E2E, row: Row, tmp: Path, guest_dir: Path) -> Iterator[Prepared]:
    """For the examples that need nothing but their images."""
    yield Prepared(row.path)


PREREQUISITES: dict[str, Prerequisite] = {
    "kubevirt-examples/vmi-pvc.yaml": filesystem_claim,
    "kubevirt-examples/vmi-block-pvc.yaml": block_claim,
    "kubevirt-examples/vmi-host-disk.yaml": host_disk_under_tmp,
}


def needs_storage(row: Row) -> bool:
    """Whether a row's VMI names storage the cluster must already have."""
    vmis = [kinds.load(d) for d in row.documents()]
    return any(
        v.persistent_volume_claim or v.host_disk
        for vmi in vmis
        if isinstance(vmi, vmitypes.VirtualMachineInstance)
        for v in vmi.spec.volumes
    )


def _losetup(*args: str) -> str:
    done = subprocess.run(
        ["losetup", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, f"losetup {' '.join(args)}: {done.stderr}"
    return done.stdout
