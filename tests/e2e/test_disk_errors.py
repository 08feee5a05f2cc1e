"""A full volume under a running guest (issue 19): nothing corrupts silently.

The claim is a hand-made PV on a tmpfs of a few MiB that the test mounts and removes, holding a
sparse `disk.img` far bigger than the tmpfs. The guest writes a random pattern to that disk with
O_DIRECT until the host file system is full. KubeVirt's default (`errorPolicy` unset, rendered
as libvirt's `error_policy='stop'`) pauses the domain: the VMI gets `Paused` with reason
`PausedIOError`, as KubeVirt shows it; once the tmpfs grows and `kvdctl unpause` resumes the
guest, QEMU retries the failed write, `dd` ends well and the pattern reads back intact. With
`errorPolicy: report` the guest gets the I/O error itself (dd fails, the kernel logs it) and the
domain never pauses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e import vms
from tests.e2e.conftest import E2E, Json
from tests.e2e.test_verbs import kvdctl
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

MiB = 1 << 20
TMPFS_MIB = 8
DISK_MIB = 64
PATTERN_MIB = 16  # twice what the tmpfs holds
SCRIPT = f"""#!/bin/sh
dd if=/dev/urandom of=/run/pattern bs=1M count={PATTERN_MIB} 2>/dev/null
echo "KVD-PATTERN $(md5sum < /run/pattern | cut -d' ' -f1)"
dd if=/run/pattern of=/dev/vdb bs=1M oflag=direct 2>/run/dd.err
echo "KVD-WRITE-RC $?"
dmesg | grep -m 1 'I/O error' | sed 's/^/KVD-DMESG /'
sum=$(dd if=/dev/vdb bs=1M count={PATTERN_MIB} iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
echo "KVD-READBACK $sum"
"""


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of TMPFS_MIB MiB holding a sparse DISK_MIB MiB disk.img; unmounted after."""
    mount = tmp_path / "volume"
    mount.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MIB}m,mode=0755", "tmpfs", str(mount)],
        check=True,
    )
    try:
        with (mount / "disk.img").open("wb") as image:
            image.truncate(DISK_MIB * MiB)
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def _manifests(name: str, path: Path, *, error_policy: str | None) -> str:
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{name}-pv"},
        "spec": {
            "capacity": {"storage": f"{DISK_MIB}Mi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(path)},
            "claimRef": {"namespace": "default", "name": f"{name}-disk"},
        },
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{name}-disk"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": f"{name}-pv",
            "resources": {"requests": {"storage": f"{DISK_MIB}Mi"}},
        },
    }
    data: Json = {"name": "data", "disk": {"bus": "virtio"}}
    if error_policy is not None:
        data["errorPolicy"] = error_policy
    vmi = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "domain": {
                "resources": {"requests": {"memory": "128Mi"}},
                "devices": {
                    "disks": [
                        {"name": "containerdisk", "disk": {"bus": "virtio"}},
                        data,
                        {"name": "cloudinitdisk", "disk": {"bus": "virtio"}},
                    ]
                },
            },
            "volumes": [
                {"name": "containerdisk", "containerDisk": {"image": "kvd-demo"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": f"{name}-disk"}},
                {"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": SCRIPT}},
            ],
        },
    }
    return yaml.safe_dump_all([volume, claim, vmi])


class Console:
    """The guest's serial output, through `kubectl logs` of the launcher pod."""

    def __init__(self, e2e: E2E, vmi: Json) -> None:
        [pod] = e2e.pods_of(vmi)
        self.e2e, self.pod, self.seen = e2e, pod["metadata"]["name"], ""

    def text(self) -> str:
        done = self.e2e.kubectl("logs", self.pod, "-c", "guest-console-log", check=False)
        self.seen = str(done.stdout)
        return self.seen

    def wait(self, pattern: str, *, timeout: float = vms.BOOT) -> re.Match[str]:
        def shown() -> re.Match[str] | None:
            return re.search(pattern, self.text(), re.MULTILINE)

        found: re.Match[str] = wait_for(
            f"{pattern!r} on the console",
            shown,
            timeout=timeout,
            diagnose=lambda: f"the console so far:\n{self.seen[-3000:]}",
        )
        return found


def _paused_condition(e2e: E2E, name: str) -> Json | None:
    conditions = ((e2e.vmi(name) or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Paused"), None)


def _data_driver(e2e: E2E, vmi: Json) -> str:
    """The live domain's `<driver>` of the data disk, as libvirt reports it."""
    [pod] = e2e.pods_of(vmi)
    domain = f"default_{vmi['metadata']['name']}"
    xml = e2e.kubectl(
        "exec", pod["metadata"]["name"], "-c", "compute", "--", "virsh", "dumpxml", domain
    ).stdout
    image = re.escape(f"/{vmi['metadata']['name']}-disk/disk.img'")
    found = re.search(rf"<driver [^>]*/>\s*<source file='[^']*{image}", xml)
    assert found, xml
    return found.group(0)


def _cleanup(e2e: E2E, name: str) -> None:
    e2e.kubectl("delete", "vmi", name, "--ignore-not-found", "--wait=true", "--timeout=120s")
    e2e.kubectl("delete", "pvc", f"{name}-disk", "--ignore-not-found", "--timeout=60s")
    e2e.kubectl("delete", "pv", f"{name}-pv", "--ignore-not-found", "--timeout=60s")


def test_a_full_volume_pauses_the_vmi_and_resuming_loses_nothing(
    e2e: E2E, small_volume: Path
) -> None:
    name = "full-stop"
    e2e.apply(_manifests(name, small_volume, error_policy=None))
    try:
        vmi = e2e.wait_vmi(name, "Running", timeout=vms.BOOT)
        console = Console(e2e, vmi)
        pattern = console.wait(r"^KVD-PATTERN ([0-9a-f]{32})\r?$").group(1)
        condition = wait_for(
            "the VMI's Paused condition",
            lambda: _paused_condition(e2e, name),
            timeout=vms.BOOT,
            diagnose=lambda: f"console:\n{console.text()[-2000:]}",
        )
        assert (condition["status"], condition["reason"], condition["message"]) == (
            "True",
            "PausedIOError",
            "VMI was paused, low-level IO error detected",  # KubeVirt's words
        )
        # QEMU's own default would pause on ENOSPC too (werror=enospc): the policy must be
        # KubeVirt's stop, which also pauses on any other write error
        assert "error_policy='stop'" in _data_driver(e2e, vmi)
        assert (e2e.vmi(name) or {})["status"]["phase"] == "Running"  # paused is not a phase
        assert os.statvfs(small_volume).f_bavail == 0  # the host file system is what is full
        assert "KVD-WRITE-RC" not in console.text()  # the guest saw no error

        # free space, then resume: QEMU retries the write that failed
        subprocess.run(
            ["mount", "-o", f"remount,size={DISK_MIB * 2}m", str(small_volume)], check=True
        )
        kvdctl(e2e, "unpause", "vmi", name)
        console.wait(r"^KVD-WRITE-RC 0\r?$")
        readback = console.wait(r"^KVD-READBACK ([0-9a-f]{32})\r?$").group(1)
        assert readback == pattern
        assert "KVD-DMESG" not in console.text()
        wait_for("the Paused condition to go", lambda: _paused_condition(e2e, name) is None)
        # what the guest wrote is in the image on the host
        with (small_volume / "disk.img").open("rb") as image:
            written = image.read(PATTERN_MIB * MiB)
        assert len(written) == PATTERN_MIB * MiB and written.count(0) < len(written) // 2
    finally:
        _cleanup(e2e, name)


def test_error_policy_report_gives_the_guest_the_error(e2e: E2E, small_volume: Path) -> None:
    name = "full-report"
    e2e.apply(_manifests(name, small_volume, error_policy="report"))
    try:
        vmi = e2e.wait_vmi(name, "Running", timeout=vms.BOOT)
        console = Console(e2e, vmi)
        console.wait(r"^KVD-PATTERN ([0-9a-f]{32})\r?$")
        rc = console.wait(r"^KVD-WRITE-RC (\d+)\r?$", timeout=vms.BOOT).group(1)
        assert rc != "0"
        assert "error_policy='report'" in _data_driver(e2e, vmi)
        console.wait(r"^KVD-DMESG .*I/O error.*vdb", timeout=30)
        assert _paused_condition(e2e, name) is None
        vmi_now = e2e.vmi(name) or {}
        assert vmi_now["status"]["phase"] == "Running", json.dumps(vmi_now.get("status"))
    finally:
        _cleanup(e2e, name)
