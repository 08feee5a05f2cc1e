"""DataVolumes on a local cluster: KubeVirt's `vm-alpine-datavolume` shape (a VM whose
dataVolumeTemplate imports the demo guest's qcow2 from an HTTP server the test runs, with the
progress seen on the way, then boots from it), a 404 that ends `Failed`, and what `kubectl get
dv` shows.

The local cluster has no provisioner on this branch yet (issue 19's storage part is built
alongside), so each DataVolume names a PersistentVolume the test makes by hand (`volumeName`,
hostPath, `storageClassName: ""`), as KubeVirt's own examples presume storage exists. The HTTP
server listens on the pod network's gateway (the host side of the bridge): a pod's loopback is
its own.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e import vms
from tests.e2e.conftest import E2E, Json
from tests.support import image_server
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SIZE = "64Mi"


def _gateway(e2e: E2E) -> str:
    return str(ipaddress.IPv4Network(e2e.cluster.cidr).network_address + 1)


def _volume(e2e: E2E, name: str, directory: Path) -> None:
    directory.mkdir(parents=True)
    e2e.apply(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name},
                "spec": {
                    "capacity": {"storage": SIZE},
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "volumeMode": "Filesystem",
                    "hostPath": {"path": str(directory), "type": "Directory"},
                },
            }
        )
    )


def _dv_spec(url: str, volume: str) -> Json:
    return {
        "pvc": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": SIZE}},
            "storageClassName": "",
            "volumeName": volume,
        },
        "source": {"http": {"url": url}},
    }


def _dv(e2e: E2E, name: str) -> Json:
    done = e2e.kubectl("get", "dv", name, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def _gone(e2e: E2E, kind: str, name: str) -> bool:
    done = e2e.kubectl("get", kind, name, check=False)
    return done.returncode != 0 and "NotFound" in done.stderr


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_vm_alpine_datavolume_shape_imports_with_progress_and_boots(
    e2e: E2E, storage: Path, guest_dir: Path
) -> None:
    served = image_server.Served(guest_dir / "kvd-demo.qcow2", gate=threading.Event())
    _volume(e2e, "alpine-pv", storage / "alpine")
    with image_server.serve(served, host=_gateway(e2e)) as url:
        vm = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": "vm-alpine-datavolume"},
            "spec": {
                "dataVolumeTemplates": [
                    {"metadata": {"name": "alpine-dv"}, "spec": _dv_spec(url, "alpine-pv")}
                ],
                "running": True,
                "template": {
                    "spec": {
                        "domain": {
                            "devices": {
                                "disks": [
                                    {"name": "datavolumedisk1", "disk": {"bus": "virtio"}},
                                    {"name": "cloudinitdisk", "disk": {"bus": "virtio"}},
                                ]
                            },
                            "resources": {"requests": {"memory": "128Mi"}},
                        },
                        "terminationGracePeriodSeconds": 0,
                        "volumes": [
                            {"name": "datavolumedisk1", "dataVolume": {"name": "alpine-dv"}},
                            {
                                "name": "cloudinitdisk",
                                "cloudInitNoCloud": {"userData": "#!/bin/sh\necho DV-BOOTED\n"},
                            },
                        ],
                    }
                },
            },
        }
        try:
            e2e.apply(yaml.safe_dump(vm))
            # The server holds the second half of the body back: the import is under way.
            status = vms.wait_shows(e2e, "vm-alpine-datavolume", "Provisioning")
            assert not status.get("created"), "the VMI must wait for its DataVolume"
            dv = wait_for(
                "the DataVolume to report progress of the import",
                lambda: (
                    (d := _dv(e2e, "alpine-dv"))
                    and (d.get("status") or {}).get("phase") == "ImportInProgress"
                    and (d.get("status") or {}).get("progress") not in (None, "N/A", "0.00%")
                    and d
                ),
                timeout=120,
                diagnose=lambda: f"{_dv(e2e, 'alpine-dv')}\n{e2e.log_tail('controller')}",
            )
            progress = float(dv["status"]["progress"].rstrip("%"))
            assert 0 < progress <= 50.01, dv["status"]
            owner = dv["metadata"]["ownerReferences"][0]
            assert (owner["kind"], owner["name"]) == ("VirtualMachine", "vm-alpine-datavolume")
            assert e2e.vmi("vm-alpine-datavolume") is None
            served.gate.set()  # type: ignore[union-attr]
            wait_for(
                "the DataVolume to succeed",
                lambda: (_dv(e2e, "alpine-dv").get("status") or {}).get("phase") == "Succeeded",
                timeout=120,
                diagnose=lambda: f"{_dv(e2e, 'alpine-dv')}\n{e2e.log_tail('controller')}",
            )
            table = e2e.kubectl("get", "dv", "alpine-dv").stdout.split("\n")
            assert table[0].split() == ["NAME", "PHASE", "PROGRESS", "RESTARTS", "AGE"]
            assert table[1].split()[:4] == ["alpine-dv", "Succeeded", "100.0%", "0"]
            assert _gone(e2e, "pod", "importer-alpine-dv"), "the importer pod outlived its job"
            vmi = e2e.wait_vmi("vm-alpine-datavolume", "Running", timeout=vms.BOOT)
            (pod,) = e2e.pods_of(vmi)
            claims = [
                v["persistentVolumeClaim"]["claimName"]
                for v in pod["spec"]["volumes"]
                if "persistentVolumeClaim" in v
            ]
            assert claims == ["alpine-dv"]
            wait_for(
                "the guest booted from the imported disk to print its marker",
                lambda: (
                    "DV-BOOTED"
                    in e2e.kubectl(
                        "logs", pod["metadata"]["name"], "-c", "guest-console-log", check=False
                    ).stdout
                ),
                timeout=vms.BOOT,
            )
            assert (storage / "alpine" / "disk.img").is_file()
        finally:
            e2e.kubectl("delete", "vm", "vm-alpine-datavolume", "--ignore-not-found", "--wait")
            wait_for("the VM's DataVolume to go with it", lambda: _gone(e2e, "dv", "alpine-dv"))
            wait_for("its claim to go too", lambda: _gone(e2e, "pvc", "alpine-dv"))
            e2e.kubectl("delete", "pv", "alpine-pv", "--ignore-not-found")


def test_a_404_ends_failed_and_deleting_removes_claim_and_pod(
    e2e: E2E, storage: Path, guest_dir: Path
) -> None:
    served = image_server.Served(guest_dir / "kvd-demo.qcow2", status=404)
    _volume(e2e, "missing-pv", storage / "missing")
    with image_server.serve(served, host=_gateway(e2e)) as url:
        dv = {
            "apiVersion": "cdi.kubevirt.io/v1beta1",
            "kind": "DataVolume",
            "metadata": {"name": "missing"},
            "spec": _dv_spec(url.replace("kvd-demo", "nothing-here"), "missing-pv"),
        }
        try:
            e2e.apply(yaml.safe_dump(dv))
            failed = wait_for(
                "the DataVolume to fail",
                lambda: (
                    (d := _dv(e2e, "missing"))
                    and (d.get("status") or {}).get("phase") == "Failed"
                    and d
                ),
                timeout=120,
                diagnose=lambda: f"{_dv(e2e, 'missing')}\n{e2e.log_tail('controller')}",
            )
            ready = {c["type"]: c for c in failed["status"]["conditions"]}["Ready"]
            assert "404" in ready["message"], failed["status"]
            assert failed["status"]["restartCount"] == 0, "a 404 is not worth a retry"
            row = e2e.kubectl("get", "dv", "missing").stdout.split("\n")[1].split()
            assert row[:2] == ["missing", "Failed"]
            assert not (storage / "missing" / "disk.img").exists()
            e2e.kubectl("delete", "dv", "missing", "--wait")
            wait_for("its claim to go", lambda: _gone(e2e, "pvc", "missing"))
            wait_for("its importer pod to go", lambda: _gone(e2e, "pod", "importer-missing"))
        finally:
            e2e.kubectl("delete", "dv", "missing", "--ignore-not-found")
            e2e.kubectl("delete", "pv", "missing-pv", "--ignore-not-found")
