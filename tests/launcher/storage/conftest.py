"""Real files and the real qemu-img/qemu-io in tmp_path: what storage is tested against.

`Pod` lays out a launcher pod's view of the node (run dir, container disk mounts, PVC mounts,
hostDisk directory mounts) under a temporary directory QEMU's user can pass through; `make_vmi`
builds a VMI from an inline manifest through `kinds.load`, exactly as the launcher receives one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kvd.api import kinds
from kvd.api.vmi import VirtualMachineInstance
from kvd.launcher import storage
from kvd.launcher.converter.context import DiskSource
from tests.launcher.conftest import QEMU

UID = "6f1c2b8e-3a44-4e0b-9d51-0f2a7c9b1e11"
MiB = 1024 * 1024


@dataclass(frozen=True)
class Pod:
    root: Path
    run_dir: Path
    container_disk_dir: Path
    pvc_dir: Path
    host_disk_dir: Path

    def prepare(
        self, vmi: VirtualMachineInstance, *, pvc_capacities: dict[str, int] | None = None
    ) -> dict[str, DiskSource]:
        return storage.prepare(
            vmi,
            run_dir=self.run_dir,
            container_disk_dir=self.container_disk_dir,
            pvc_dir=self.pvc_dir,
            host_disk_dir=self.host_disk_dir,
            qemu=QEMU,
            pvc_capacities=pvc_capacities,
        )

    def host_dir(self, volume: str) -> Path:
        """The hostDisk directory of `volume` as the pod has it (the kubelet's hostPath mount;
        DirectoryOrCreate makes it when missing)."""
        directory = self.host_disk_dir / volume
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def base(self, volume: str, *, fmt: str = "raw", name: str = "disk.img") -> Path:
        """A 1 MiB base image for `volume`, every byte 0x5a, in `fmt`."""
        directory = self.container_disk_dir / volume
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = path if fmt == "raw" else self.root / f"{volume}-{path.name}.raw"
        raw.write_bytes(b"\x5a" * MiB)
        if fmt != "raw":
            run("qemu-img", "convert", "-f", "raw", "-O", fmt, str(raw), str(path))
            raw.unlink()
        return path


@pytest.fixture
def pod(reachable_tmp: Path) -> Pod:
    """The pod's directories in a directory QEMU's user can pass through, as in a pod."""
    root = reachable_tmp
    pod = Pod(
        root=root,
        run_dir=root / "run",
        container_disk_dir=root / "container-disks",
        pvc_dir=root / "pvcs",
        host_disk_dir=root / "host-disks",
    )
    for directory in (pod.run_dir, pod.container_disk_dir, pod.pvc_dir, pod.host_disk_dir):
        directory.mkdir()
    return pod


def make_vmi(
    *volumes: dict[str, Any], name: str = "testvm", hostname: str | None = None
) -> VirtualMachineInstance:
    spec: dict[str, Any] = {
        "domain": {"resources": {"requests": {"memory": "64Mi"}}, "devices": {}},
        "volumes": list(volumes),
    }
    if hostname is not None:
        spec["hostname"] = hostname
    manifest = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": name, "namespace": "default", "uid": UID},
        "spec": spec,
    }
    vmi = kinds.load(manifest)
    assert isinstance(vmi, VirtualMachineInstance)
    return vmi


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done.stdout


def image_info(path: Path) -> dict[str, Any]:
    info: dict[str, Any] = json.loads(run("qemu-img", "info", "--output=json", "-U", str(path)))
    return info


def qemu_io(path: Path, fmt: str, command: str) -> None:
    """Run one qemu-io command (`write -P 0xab 0 64k`) against an image, checking it worked."""
    if shutil.which("qemu-io") is None:
        pytest.skip("qemu-io is not installed")
    out = run("qemu-io", "-f", fmt, "-c", command, str(path))
    assert "failed" not in out.lower(), out


def guest_bytes(path: Path, fmt: str, tmp: Path, *, offset: int = 0, length: int = 16) -> bytes:
    """What a guest reads at `offset`: the image (and its backing chain) flattened to raw."""
    flat = tmp / f"flat-{os.getpid()}-{path.name}.raw"
    run("qemu-img", "convert", "-f", fmt, "-O", "raw", str(path), str(flat))
    try:
        with flat.open("rb") as f:
            f.seek(offset)
            return f.read(length)
    finally:
        flat.unlink()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every file under `root` → (inode, mtime_ns, size, sha256): equal snapshots, no change."""
    result: dict[str, tuple[int, int, int, str]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            st = path.stat()
            result[str(path.relative_to(root))] = (
                st.st_ino,
                st.st_mtime_ns,
                st.st_size,
                sha256(path),
            )
    return result


def everything_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))
