"""DataVolumes on a local cluster's own storage: KubeVirt's `vm-alpine-datavolume` shape (a VM
whose dataVolumeTemplate imports the demo guest's qcow2 from an HTTP server the test runs, with
the progress seen on the way, then boots from it), the same into a Block claim, the `registry`
and `blank` sources, a 404 that ends `Failed`, a DataVolume deleted mid-import, and what
`kubectl get dv,pvc,pv` shows.

No PersistentVolume is made by hand: every template asks only for a size, so its claim gets the
default class `local` (WaitForFirstConsumer). The importer pod is the claim's first consumer, as
CDI's is without its HonorWaitForFirstConsumer gate (or with `storage.bind.immediate.requested`):
the scheduler selects the node, the provisioner makes the volume, and the DataVolume goes from
Pending straight to ImportScheduled. The HTTP server listens on the pod network's gateway (the
host side of the bridge): a pod's loopback is its own.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import vms
from tests.e2e.conftest import E2E, Json
from tests.support import image_server
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SIZE = "64Mi"
MiB = 1 << 20


def _gateway(e2e: E2E) -> str:
    return str(ipaddress.IPv4Network(e2e.cluster.cidr).network_address + 1)


def _storage(source: Json, *, mode: str | None = None, size: str = SIZE) -> Json:
    """A DataVolume spec asking for a size (and a mode) only: the class is the default's."""
    storage: Json = {"resources": {"requests": {"storage": size}}}
    if mode is not None:
        storage["volumeMode"] = mode
    return {"storage": storage, "source": source}


def _vm(name: str, templates: list[Json], *, marker: str) -> Json:
    """A VM booting from its first DataVolume, with the others as further disks."""
    disks = [{"name": t["metadata"]["name"], "disk": {"bus": "virtio"}} for t in templates]
    volumes: list[Json] = [
        {"name": t["metadata"]["name"], "dataVolume": {"name": t["metadata"]["name"]}}
        for t in templates
    ]
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {
            "dataVolumeTemplates": templates,
            "running": True,
            "template": {
                "spec": {
                    "domain": {
                        "devices": {
                            "disks": [*disks, {"name": "cloudinit", "disk": {"bus": "virtio"}}]
                        },
                        "resources": {"requests": {"memory": "128Mi"}},
                    },
                    "terminationGracePeriodSeconds": 0,
                    "volumes": [
                        *volumes,
                        {
                            "name": "cloudinit",
                            "cloudInitNoCloud": {"userData": f"#!/bin/sh\necho {marker}\n"},
                        },
                    ],
                }
            },
        },
    }


def _get(e2e: E2E, kind: str, name: str) -> Json:
    done = e2e.kubectl("get", kind, name, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def _phase(e2e: E2E, name: str) -> str | None:
    return (_get(e2e, "dv", name).get("status") or {}).get("phase")


def _gone(e2e: E2E, kind: str, name: str) -> bool:
    done = e2e.kubectl("get", kind, name, check=False)
    return done.returncode != 0 and "NotFound" in done.stderr


def _succeeded(e2e: E2E, name: str) -> Json:
    found: Json = wait_for(
        f"DataVolume {name} to succeed",
        lambda: (
            (d := _get(e2e, "dv", name))
            and (d.get("status") or {}).get("phase") == "Succeeded"
            and d
        ),
        timeout=180,
        diagnose=lambda: f"{_get(e2e, 'dv', name)}\n{e2e.log_tail('controller')}",
    )
    return found


def _volume_of(e2e: E2E, claim: str) -> tuple[Json, Path]:
    """The claim's PV and where its data lives (a directory, or a Block volume's file)."""
    pvc = _get(e2e, "pvc", claim)
    pv = _get(e2e, "pv", pvc["spec"]["volumeName"])
    spec = pv["spec"]
    path = Path((spec.get("hostPath") or spec.get("local") or {})["path"])
    assert path.is_relative_to(e2e.cluster.data_dir), (path, "is not the local storage's")
    return pv, path


def _loops() -> str:
    return subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "BACK-FILE"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def _console(e2e: E2E, vmi: Json, pattern: str) -> str:
    [pod] = e2e.pods_of(vmi)
    seen = ""

    def shown() -> str | None:
        nonlocal seen
        seen = e2e.kubectl(
            "logs", pod["metadata"]["name"], "-c", "guest-console-log", check=False
        ).stdout
        found = re.search(pattern, seen, re.MULTILINE)
        return found.group(0) if found else None

    match: str = wait_for(
        f"{pattern!r} on the guest's console",
        shown,
        timeout=vms.BOOT,
        diagnose=lambda: f"the console so far:\n{seen[-3000:]}",
    )
    return match


def _delete_vm_and_check_storage_freed(e2e: E2E, name: str, volumes: dict[str, Path]) -> None:
    e2e.kubectl("delete", "vm", name, "--ignore-not-found", "--wait=true", "--timeout=120s")
    for dv, path in volumes.items():
        wait_for(f"DataVolume {dv} to go with its VM", lambda dv=dv: _gone(e2e, "dv", dv))
        wait_for(f"claim {dv} to go too", lambda dv=dv: _gone(e2e, "pvc", dv), timeout=60)
        wait_for(f"{path} to be deleted", lambda path=path: not path.exists(), timeout=60)
        assert str(path) not in _loops()


def _row(e2e: E2E, kind: str, name: str) -> dict[str, str]:
    """`kubectl get KIND NAME` as header → cell (headers of two words joined by a space)."""
    lines = e2e.kubectl("get", kind, name).stdout.splitlines()
    starts = [m.start() for m in re.finditer(r"(?<!\S)\S+(?: \S+)?(?=\s{2,}|$)", lines[0])]
    heads = [lines[0][s:e].strip() for s, e in zip(starts, [*starts[1:], None], strict=True)]
    cells = [lines[1][s:e].strip() for s, e in zip(starts, [*starts[1:], None], strict=True)]
    return dict(zip(heads, cells, strict=True))


def test_vm_alpine_datavolume_shape_imports_on_local_storage_with_progress_and_boots(
    e2e: E2E, guest_dir: Path
) -> None:
    served = image_server.Served(guest_dir / "kvd-demo.qcow2", gate=threading.Event())
    with image_server.serve(served, host=_gateway(e2e)) as url:
        template = {"metadata": {"name": "alpine-dv"}, "spec": _storage({"http": {"url": url}})}
        vm = _vm("vm-alpine-datavolume", [template], marker="DV-BOOTED")
        volumes: dict[str, Path] = {}
        try:
            e2e.apply(yaml.safe_dump(vm))
            # The server holds the second half of the body back: the import is under way.
            status = vms.wait_shows(e2e, "vm-alpine-datavolume", "Provisioning")
            assert not status.get("created"), "the VMI must wait for its DataVolume"
            dv = wait_for(
                "the DataVolume to report progress of the import",
                lambda: (
                    (d := _get(e2e, "dv", "alpine-dv"))
                    and (d.get("status") or {}).get("phase") == "ImportInProgress"
                    and (d.get("status") or {}).get("progress") not in (None, "N/A", "0.00%")
                    and d
                ),
                timeout=120,
                diagnose=lambda: f"{_get(e2e, 'dv', 'alpine-dv')}\n{e2e.log_tail('controller')}",
            )
            progress = float(dv["status"]["progress"].rstrip("%"))
            assert 0 < progress <= 50.01, dv["status"]
            owner = dv["metadata"]["ownerReferences"][0]
            assert (owner["kind"], owner["name"]) == ("VirtualMachine", "vm-alpine-datavolume")
            assert e2e.vmi("vm-alpine-datavolume") is None

            # The claim got the default class; the importer, its first consumer, had it bound.
            claim = _get(e2e, "pvc", "alpine-dv")
            assert claim["spec"]["storageClassName"] == "local", claim["spec"]
            annotations = claim["metadata"]["annotations"]
            assert annotations["volume.kubernetes.io/selected-node"] == e2e.cluster.node_name
            pv, data = _volume_of(e2e, "alpine-dv")
            volumes["alpine-dv"] = data
            assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
            assert _row(e2e, "dv", "alpine-dv") | {"AGE": ""} == {
                "NAME": "alpine-dv",
                "PHASE": "ImportInProgress",
                "PROGRESS": dv["status"]["progress"],
                "RESTARTS": "0",
                "AGE": "",
            }
            shown_claim = _row(e2e, "pvc", "alpine-dv")
            assert {k: shown_claim[k] for k in ("NAME", "STATUS", "VOLUME", "CAPACITY")} == {
                "NAME": "alpine-dv",
                "STATUS": "Bound",
                "VOLUME": pv["metadata"]["name"],
                "CAPACITY": SIZE,
            }
            assert (shown_claim["ACCESS MODES"], shown_claim["STORAGECLASS"]) == ("RWO", "local")
            shown_pv = _row(e2e, "pv", pv["metadata"]["name"])
            assert {
                k: shown_pv[k]
                for k in ("CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM")
            } == {
                "CAPACITY": SIZE,
                "ACCESS MODES": "RWO",
                "RECLAIM POLICY": "Delete",
                "STATUS": "Bound",
                "CLAIM": "default/alpine-dv",
            }
            assert shown_pv["STORAGECLASS"] == "local"

            served.gate.set()  # type: ignore[union-attr]
            _succeeded(e2e, "alpine-dv")
            assert _row(e2e, "dv", "alpine-dv") | {"AGE": ""} == {
                "NAME": "alpine-dv",
                "PHASE": "Succeeded",
                "PROGRESS": "100.0%",
                "RESTARTS": "0",
                "AGE": "",
            }
            assert _gone(e2e, "pod", "importer-alpine-dv"), "the importer pod outlived its job"
            assert (data / "disk.img").is_file()
            vmi = e2e.wait_vmi("vm-alpine-datavolume", "Running", timeout=vms.BOOT)
            (pod,) = e2e.pods_of(vmi)
            claims = [
                v["persistentVolumeClaim"]["claimName"]
                for v in pod["spec"]["volumes"]
                if "persistentVolumeClaim" in v
            ]
            assert claims == ["alpine-dv"]
            _console(e2e, vmi, r"DV-BOOTED")
        finally:
            served.gate.set()  # type: ignore[union-attr]
            _delete_vm_and_check_storage_freed(e2e, "vm-alpine-datavolume", volumes)


def test_a_block_datavolume_imports_onto_a_loop_device_and_the_vm_boots_from_it(
    e2e: E2E, guest_dir: Path
) -> None:
    served = image_server.Served(guest_dir / "kvd-demo.qcow2")
    with image_server.serve(served, host=_gateway(e2e)) as url:
        template = {
            "metadata": {"name": "block-dv"},
            "spec": _storage({"http": {"url": url}}, mode="Block"),
        }
        volumes: dict[str, Path] = {}
        try:
            e2e.apply(yaml.safe_dump(_vm("vm-block-dv", [template], marker="BLOCK-DV-BOOTED")))
            _succeeded(e2e, "block-dv")
            pv, backing = _volume_of(e2e, "block-dv")
            volumes["block-dv"] = backing
            assert pv["spec"]["volumeMode"] == "Block"
            assert backing.is_file() and str(backing) in _loops(), "no loop device over it"
            vmi = e2e.wait_vmi("vm-block-dv", "Running", timeout=vms.BOOT)
            _console(e2e, vmi, r"BLOCK-DV-BOOTED")
            _console(e2e, vmi, rf"^KVD-DISK vda {64 * MiB}\r?$")  # the device, all of it
            [pod] = e2e.pods_of(vmi)
            xml = e2e.kubectl(
                "exec", pod["metadata"]["name"], "-c", "compute", "--",
                "virsh", "dumpxml", "default_vm-block-dv",
            ).stdout  # fmt: skip
            assert re.search(r"<disk type=['\"]block['\"] device=['\"]disk['\"]", xml), xml
        finally:
            _delete_vm_and_check_storage_freed(e2e, "vm-block-dv", volumes)


def test_registry_and_blank_sources_give_a_vm_its_root_and_an_empty_disk(e2e: E2E) -> None:
    templates = [
        {
            "metadata": {"name": "registry-dv"},
            "spec": _storage({"registry": {"url": "docker://kvd-demo"}}),
        },
        {"metadata": {"name": "blank-dv"}, "spec": _storage({"blank": {}}, size="32Mi")},
    ]
    volumes: dict[str, Path] = {}
    try:
        e2e.apply(yaml.safe_dump(_vm("vm-registry-dv", templates, marker="REGISTRY-DV-BOOTED")))
        for name in ("registry-dv", "blank-dv"):
            _succeeded(e2e, name)
            volumes[name] = _volume_of(e2e, name)[1]
        # blank: a sparse disk.img of the claim less the file system overhead, all zeroes
        blank = volumes["blank-dv"] / "disk.img"
        assert blank.stat().st_size == 30 * MiB
        assert blank.stat().st_blocks == 0
        vmi = e2e.wait_vmi("vm-registry-dv", "Running", timeout=vms.BOOT)
        _console(e2e, vmi, r"REGISTRY-DV-BOOTED")
        _console(e2e, vmi, rf"^KVD-DISK vdb {30 * MiB}\r?$")
    finally:
        _delete_vm_and_check_storage_freed(e2e, "vm-registry-dv", volumes)


def test_a_pvc_source_clones_another_claim_and_the_vm_boots_from_the_copy(e2e: E2E) -> None:
    """CDI's `pvc` source: a copy of a claim that already holds a disk (here one a registry
    DataVolume filled), made by an importer that reads the source claim mounted read-only."""
    source = {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {"name": "golden"},
        "spec": _storage({"registry": {"url": "docker://kvd-demo"}}),
    }
    clone = {
        "metadata": {"name": "clone-dv"},
        "spec": _storage({"pvc": {"namespace": "default", "name": "golden"}}),
    }
    volumes: dict[str, Path] = {}
    try:
        e2e.apply(yaml.safe_dump(source))
        _succeeded(e2e, "golden")
        golden = _volume_of(e2e, "golden")[1] / "disk.img"
        e2e.apply(yaml.safe_dump(_vm("vm-clone", [clone], marker="CLONE-BOOTED")))
        _succeeded(e2e, "clone-dv")
        volumes["clone-dv"] = _volume_of(e2e, "clone-dv")[1]
        copy = volumes["clone-dv"] / "disk.img"
        assert copy.read_bytes() == golden.read_bytes()  # a copy, not the same file
        assert copy.stat().st_ino != golden.stat().st_ino
        vmi = e2e.wait_vmi("vm-clone", "Running", timeout=vms.BOOT)
        _console(e2e, vmi, r"CLONE-BOOTED")
    finally:
        _delete_vm_and_check_storage_freed(e2e, "vm-clone", volumes)
        e2e.kubectl("delete", "dv", "golden", "--ignore-not-found", "--wait=true")


def test_a_404_ends_failed_and_deleting_removes_claim_volume_data_and_pod(
    e2e: E2E, guest_dir: Path
) -> None:
    served = image_server.Served(guest_dir / "kvd-demo.qcow2", status=404)
    with image_server.serve(served, host=_gateway(e2e)) as url:
        dv = {
            "apiVersion": "cdi.kubevirt.io/v1beta1",
            "kind": "DataVolume",
            "metadata": {"name": "missing", "labels": {"test": "missing"}},
            "spec": _storage({"http": {"url": url.replace("kvd-demo", "nothing-here")}}),
        }
        phases = vms.StatusWatch(e2e, "-l test=missing", kind="dv", field=".status.phase")
        try:
            e2e.apply(yaml.safe_dump(dv))
            failed = wait_for(
                "the DataVolume to fail",
                lambda: (
                    (d := _get(e2e, "dv", "missing"))
                    and (d.get("status") or {}).get("phase") == "Failed"
                    and d
                ),
                timeout=120,
                diagnose=lambda: f"{_get(e2e, 'dv', 'missing')}\n{e2e.log_tail('controller')}",
            )
            # Pending until the importer, the claim's first consumer, has it bound: never
            # WaitForFirstConsumer, which in CDI means "no importer until a workload comes"
            wait_for("the watch to show Failed", lambda: phases.saw("Pending", "Failed"))
            after = {"Pending", "ImportScheduled", "ImportInProgress", "Failed"}
            assert set(phases.shown()) <= after, phases.shown()
            ready = {c["type"]: c for c in failed["status"]["conditions"]}["Ready"]
            assert "404" in ready["message"], failed["status"]
            assert failed["status"]["restartCount"] == 0, "a 404 is not worth a retry"
            row = _row(e2e, "dv", "missing")
            assert (row["PHASE"], row["RESTARTS"]) == ("Failed", "0")
            pv, data = _volume_of(e2e, "missing")
            assert data.is_dir() and not (data / "disk.img").exists()
            e2e.kubectl("delete", "dv", "missing", "--wait=true", "--timeout=60s")
            wait_for("its claim to go", lambda: _gone(e2e, "pvc", "missing"), timeout=60)
            wait_for("its importer pod to go", lambda: _gone(e2e, "pod", "importer-missing"))
            wait_for(
                f"its volume {pv['metadata']['name']} and {data} to go",
                lambda: _gone(e2e, "pv", pv["metadata"]["name"]) and not data.exists(),
                timeout=60,
            )
        finally:
            phases.close()
            e2e.kubectl("delete", "dv", "missing", "--ignore-not-found")


def test_a_datavolume_deleted_mid_import_leaves_no_pod_claim_volume_or_loop_device(
    e2e: E2E, guest_dir: Path
) -> None:
    served = image_server.Served(guest_dir / "kvd-demo.qcow2", gate=threading.Event())
    with image_server.serve(served, host=_gateway(e2e)) as url:
        dv: dict[str, Any] = {
            "apiVersion": "cdi.kubevirt.io/v1beta1",
            "kind": "DataVolume",
            "metadata": {"name": "abandoned"},
            "spec": _storage({"http": {"url": url}}, mode="Block"),
        }
        try:
            e2e.apply(yaml.safe_dump(dv))
            wait_for(
                "the import to be under way",
                lambda: _phase(e2e, "abandoned") == "ImportInProgress" and served.halfway.is_set(),
                timeout=120,
                diagnose=lambda: f"{_get(e2e, 'dv', 'abandoned')}\n{e2e.log_tail('controller')}",
            )
            pv, backing = _volume_of(e2e, "abandoned")
            assert str(backing) in _loops()
            e2e.kubectl("delete", "dv", "abandoned", "--wait=true", "--timeout=60s")
            wait_for("the importer pod to go", lambda: _gone(e2e, "pod", "importer-abandoned"))
            wait_for("its claim to go", lambda: _gone(e2e, "pvc", "abandoned"), timeout=60)
            wait_for(
                f"its volume and {backing} to go",
                lambda: _gone(e2e, "pv", pv["metadata"]["name"]) and not backing.exists(),
                timeout=60,
            )
            assert str(backing) not in _loops()
        finally:
            served.gate.set()  # type: ignore[union-attr]
            e2e.kubectl("delete", "dv", "abandoned", "--ignore-not-found")


def test_a_claim_that_cannot_be_provisioned_is_told_on_the_datavolume(e2e: E2E) -> None:
    dv = {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {"name": "classless"},
        "spec": {
            "source": {"blank": {}},
            "storage": {
                "storageClassName": "nothere",
                "resources": {"requests": {"storage": "4Mi"}},
            },
        },
    }
    try:
        e2e.apply(yaml.safe_dump(dv))

        def running() -> Json:
            conditions = (_get(e2e, "dv", "classless").get("status") or {}).get("conditions")
            return next((c for c in conditions or [] if c["type"] == "Running"), {})

        told = wait_for(
            "the DataVolume to say why its importer waits",
            lambda: (c := running()) and c.get("reason") == "Unschedulable" and c,
            timeout=60,
            diagnose=lambda: _get(e2e, "dv", "classless").get("status"),
        )
        assert 'storageclass.storage.k8s.io "nothere" not found' in told["message"], told
        assert _phase(e2e, "classless") == "Pending"
        assert _get(e2e, "pvc", "classless")["status"]["phase"] == "Pending"
        e2e.kubectl("delete", "dv", "classless", "--wait=true", "--timeout=60s")
        wait_for("its claim to go", lambda: _gone(e2e, "pvc", "classless"), timeout=60)
        wait_for("its importer pod to go", lambda: _gone(e2e, "pod", "importer-classless"))
    finally:
        e2e.kubectl("delete", "dv", "classless", "--ignore-not-found")
