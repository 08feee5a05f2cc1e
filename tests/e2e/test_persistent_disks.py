"""THE acceptance test of persistent disks (issue 19): on `kvd local up`, a VM's guest writes a
marker to its PVC disk, the VM is stopped and started again (`kubectl patch` of its
runStrategy), and the new guest reads the marker back — with a Filesystem claim (the launcher
makes `disk.img` on the freshly provisioned directory) and with a Block claim (a loop device the
node attaches, given to libvirt as `<disk type='block'>`). The claims are the default class's:
WaitForFirstConsumer, provisioned when the launcher pod is scheduled, deleted with their data."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e import vms
from tests.e2e.conftest import E2E, Json
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

MiB = 1 << 20
# dd reads the disk's first bytes; a marker there is the earlier guest's, else this one writes it
SCRIPT = """#!/bin/sh
got=$(dd if=/dev/vdb bs=64 count=1 2>/dev/null | tr -d '\\000')
case "$got" in
  KVD-MARK-*) echo "KVD-PERSIST-READ $got" ;;
  *) printf 'KVD-MARK-%s' {token} | dd of=/dev/vdb bs=512 conv=sync 2>/dev/null && sync &&
     echo "KVD-PERSIST-WROTE {token}" ;;
esac
"""


def _manifests(name: str, *, mode: str, token: str) -> str:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{name}-disk"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "volumeMode": mode,
            "resources": {"requests": {"storage": "64Mi"}},
        },
    }
    vm = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {
            "runStrategy": "Always",
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "domain": {
                        "resources": {"requests": {"memory": "128Mi"}},
                        "devices": {
                            "disks": [
                                {"name": "containerdisk", "disk": {"bus": "virtio"}},
                                {"name": "data", "disk": {"bus": "virtio"}},
                                {"name": "cloudinitdisk", "disk": {"bus": "virtio"}},
                            ]
                        },
                    },
                    "volumes": [
                        {"name": "containerdisk", "containerDisk": {"image": "kvd-demo"}},
                        {"name": "data", "persistentVolumeClaim": {"claimName": f"{name}-disk"}},
                        {
                            "name": "cloudinitdisk",
                            "cloudInitNoCloud": {"userData": SCRIPT.format(token=token)},
                        },
                    ],
                }
            },
        },
    }
    return yaml.safe_dump_all([claim, vm])


def _console(e2e: E2E, vmi: Json, pattern: str) -> str:
    """Until a line of the VMI's guest console matches; the match."""
    [pod] = e2e.pods_of(vmi)
    seen, error = "", ""

    def shown() -> str | None:
        nonlocal seen, error
        name = pod["metadata"]["name"]
        logs = e2e.kubectl("logs", name, "-c", "guest-console-log", check=False)
        seen, error = logs.stdout, logs.stderr if logs.returncode else ""
        found = re.search(pattern, seen, re.MULTILINE)
        return found.group(0) if found else None

    def diagnose() -> str:
        failed = f"kubectl logs failed: {error}\n" if error else ""
        state = e2e.kubectl("get", "vmi,pods", "-o", "wide", check=False).stdout
        return f"{failed}the console so far:\n{seen[-3000:]}\n{state}"

    match: str = wait_for(
        f"{pattern!r} on {vmi['metadata']['name']}'s console",
        shown,
        timeout=vms.BOOT,
        diagnose=diagnose,
    )
    return match


def _domain_xml(e2e: E2E, vmi: Json) -> str:
    [pod] = e2e.pods_of(vmi)
    domain = f"default_{vmi['metadata']['name']}"
    done = e2e.kubectl(
        "exec", pod["metadata"]["name"], "-c", "compute", "--", "virsh", "dumpxml", domain
    )
    return str(done.stdout)


def _set_run_strategy(e2e: E2E, name: str, strategy: str) -> None:
    patch = json.dumps({"spec": {"runStrategy": strategy}})
    e2e.kubectl("patch", "vm", name, "--type=merge", "-p", patch)


@pytest.mark.parametrize(
    ("mode", "guest_bytes"),
    [
        # 64 MiB less KubeVirt's 5.5% file system overhead, in whole MiB
        pytest.param("Filesystem", 60 * MiB, id="filesystem"),
        pytest.param("Block", 64 * MiB, id="block"),
    ],
)
def test_a_guests_writes_to_its_pvc_survive_a_vm_stop_and_start(
    e2e: E2E, mode: str, guest_bytes: int
) -> None:
    name = f"persist-{mode.lower()}"
    token = secrets.token_hex(4)
    e2e.apply(_manifests(name, mode=mode, token=token))
    first = vms.running_vmi(e2e, name)
    _console(e2e, first, rf"^KVD-DISK vdb {guest_bytes}\r?$")
    _console(e2e, first, rf"^KVD-PERSIST-WROTE {token}\r?$")
    claim = json.loads(e2e.kubectl("get", "pvc", f"{name}-disk", "-o", "json").stdout)
    assert claim["status"]["phase"] == "Bound"
    pv = json.loads(e2e.kubectl("get", "pv", claim["spec"]["volumeName"], "-o", "json").stdout)
    xml = _domain_xml(e2e, first)
    if mode == "Block":
        assert re.search(r"<disk type=['\"]block['\"] device=['\"]disk['\"]", xml), xml
        backing = Path(pv["spec"]["local"]["path"])
    else:
        backing = Path(pv["spec"]["hostPath"]["path"]) / "disk.img"
        # the claim's directory as the launcher pod mounts it
        assert f"<source file='/var/run/kvd/pvcs/{name}-disk/disk.img'" in xml, xml

    _set_run_strategy(e2e, name, "Halted")
    vms.wait_stopped(e2e, name, timeout=120)
    assert backing.read_bytes()[: len(f"KVD-MARK-{token}")] == f"KVD-MARK-{token}".encode()
    _set_run_strategy(e2e, name, "Always")
    second = vms.running_vmi(e2e, name, not_uid=first["metadata"]["uid"])
    _console(e2e, second, rf"^KVD-PERSIST-READ KVD-MARK-{token}\r?$")

    e2e.kubectl("delete", "vm", name, "--wait=true", "--timeout=120s")
    e2e.kubectl("delete", "pvc", f"{name}-disk", "--wait=true", "--timeout=60s")
    wait_for(
        f"{pv['metadata']['name']} and its data to be deleted",
        lambda: (
            e2e.kubectl("get", "pv", pv["metadata"]["name"], check=False).returncode != 0
            and not backing.exists()
        ),
        timeout=60,
    )
    loops = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "BACK-FILE"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(backing) not in loops
