"""kvd's local storage against a real API server, driven with real kubectl: the default class,
dynamic provisioning (Immediate and WaitForFirstConsumer), binding pre-created volumes,
reclaim, expansion, loop devices for Block volumes, and the API's refusals."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kvd.local.storage import loop
from tests.local.storage.conftest import Storage
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

Json = dict[str, Any]


def _claim(name: str, *, size: str = "64Mi", **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
                **spec,
            },
        }
    )


def _class(
    name: str, *, mode: str = "Immediate", expand: bool = True, reclaim: str = "Delete"
) -> str:
    return json.dumps(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": "kvd.io/local",
            "volumeBindingMode": mode,
            "reclaimPolicy": reclaim,
            "allowVolumeExpansion": expand,
        }
    )


def _get(s: Storage, kind: str, name: str) -> Json | None:
    done = s.server.kubectl("get", kind, name, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def _wait_phase(s: Storage, kind: str, name: str, phase: str) -> Json:
    def reached() -> Json | None:
        obj = _get(s, kind, name)
        return obj if obj and (obj.get("status") or {}).get("phase") == phase else None

    found: Json = wait_for(
        f"{kind} {name} to be {phase}",
        reached,
        timeout=30,
        diagnose=lambda: json.dumps(_get(s, kind, name), indent=1),
    )
    return found


def _events(s: Storage, name: str) -> list[str]:
    out = s.kubectl(
        "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
    )
    return [f"{e['reason']}: {e['message']}" for e in json.loads(out)["items"]]


def _device_size(device: Path) -> int:
    return int(
        subprocess.run(
            ["blockdev", "--getsize64", str(device)], capture_output=True, text=True, check=True
        ).stdout
    )


def test_the_default_class_is_local_and_kubectl_shows_it(storage: Storage) -> None:
    out = storage.kubectl("get", "sc")
    header, row = out.splitlines()[:2]
    assert header.split() == [
        "NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE",
    ]  # fmt: skip
    assert row.split()[:6] == [
        "local", "(default)", "kvd.io/local", "Delete", "WaitForFirstConsumer", "true",
    ]  # fmt: skip


def test_wait_for_first_consumer_provisions_once_a_node_is_selected(storage: Storage) -> None:
    storage.kubectl("apply", "-f", "-", stdin=_claim("data"))
    claim = _get(storage, "pvc", "data")
    assert claim is not None
    assert claim["spec"]["storageClassName"] == "local"  # the default class, by admission
    assert claim["spec"]["volumeMode"] == "Filesystem"
    wait_for(
        "the WaitForFirstConsumer event",
        lambda: any(e.startswith("WaitForFirstConsumer") for e in _events(storage, "data")),
        timeout=30,
    )
    assert _get(storage, "pvc", "data")["status"]["phase"] == "Pending"  # type: ignore[index]
    assert not list(storage.root.glob("*")) if storage.root.exists() else True

    storage.controller.select_node("default", "data")  # what the scheduler does
    claim = _wait_phase(storage, "pvc", "data", "Bound")
    pv = claim["spec"]["volumeName"]
    assert pv == f"pvc-{claim['metadata']['uid']}"
    assert claim["status"]["capacity"] == {"storage": "64Mi"}
    assert claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    volume = _wait_phase(storage, "pv", pv, "Bound")
    assert volume["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "kvd.io/local"
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    directory = Path(volume["spec"]["hostPath"]["path"])
    assert directory.is_dir() and directory.parent == storage.root
    reasons = [e.split(":")[0] for e in _events(storage, "data")]
    assert {"ExternalProvisioning", "Provisioning", "ProvisioningSucceeded"} <= set(reasons)

    header, row = storage.kubectl("get", "pvc", "data").splitlines()
    assert header.split() == [
        "NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS", "AGE",
    ]  # fmt: skip
    assert row.split()[:7] == ["data", "Bound", pv, "64Mi", "RWO", "local", "<unset>"]
    row = storage.kubectl("get", "pv", "--no-headers").split()
    assert row[:6] == [pv, "64Mi", "RWO", "Delete", "Bound", "default/data"]

    (directory / "marker").write_text("kept until the claim goes")
    storage.kubectl("delete", "pvc", "data")
    wait_for("the volume to be deleted", lambda: _get(storage, "pv", pv) is None, timeout=30)
    assert not directory.exists()


def test_immediate_block_claims_get_a_loop_device_that_grows_and_goes(storage: Storage) -> None:
    storage.kubectl("apply", "-f", "-", stdin=_class("now"))
    storage.kubectl(
        "apply", "-f", "-", stdin=_claim("disk", storageClassName="now", volumeMode="Block")
    )
    claim = _wait_phase(storage, "pvc", "disk", "Bound")
    volume = _get(storage, "pv", claim["spec"]["volumeName"])
    assert volume is not None and volume["spec"]["volumeMode"] == "Block"
    backing = Path(volume["spec"]["local"]["path"])
    assert backing.stat().st_size == 64 << 20
    assert backing.stat().st_blocks == 0  # sparse: nothing written yet
    [device] = loop.devices(backing)
    assert _device_size(device) == 64 << 20

    storage.kubectl(
        "patch", "pvc", "disk", "-p", '{"spec":{"resources":{"requests":{"storage":"96Mi"}}}}'
    )
    wait_for(
        "the claim to show its new capacity",
        lambda: (
            (_get(storage, "pvc", "disk") or {}).get("status", {}).get("capacity")
            == {"storage": "96Mi"}
        ),
        timeout=30,
    )
    assert _device_size(device) == 96 << 20
    assert (_get(storage, "pv", volume["metadata"]["name"]) or {})["spec"]["capacity"] == {
        "storage": "96Mi"
    }
    assert not (_get(storage, "pvc", "disk") or {})["status"].get("conditions")
    assert any(e.startswith("VolumeResizeSuccessful") for e in _events(storage, "disk"))

    storage.kubectl("delete", "pvc", "disk")
    wait_for(
        "the volume to be deleted",
        lambda: _get(storage, "pv", volume["metadata"]["name"]) is None,
        timeout=30,
    )
    assert not backing.exists()
    assert loop.devices(backing) == []
    listing = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "BACK-FILE"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(backing) not in listing


def test_a_pre_created_volume_is_bound_and_retained(storage: Storage, tmp_path: Path) -> None:
    data = tmp_path / "handmade"
    data.mkdir()
    (data / "keep").write_text("mine")
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "handmade", "labels": {"tier": "gold"}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "manual",
            "hostPath": {"path": str(data)},
        },
    }
    storage.kubectl("apply", "-f", "-", stdin=json.dumps(pv))
    _wait_phase(storage, "pv", "handmade", "Available")
    storage.kubectl(
        "apply",
        "-f",
        "-",
        stdin=_claim(
            "mine",
            size="512Mi",
            storageClassName="manual",
            selector={"matchLabels": {"tier": "gold"}},
        ),
    )
    claim = _wait_phase(storage, "pvc", "mine", "Bound")
    assert claim["spec"]["volumeName"] == "handmade"
    assert claim["status"]["capacity"] == {"storage": "1Gi"}  # the volume's, not the request
    volume = _wait_phase(storage, "pv", "handmade", "Bound")
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"  # kube's default
    assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]

    storage.kubectl("delete", "pvc", "mine")
    _wait_phase(storage, "pv", "handmade", "Released")
    assert (data / "keep").read_text() == "mine"


def test_a_foreign_volume_with_delete_policy_fails_rather_than_losing_data(
    storage: Storage, tmp_path: Path
) -> None:
    data = tmp_path / "foreign"
    data.mkdir()
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "foreign"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "persistentVolumeReclaimPolicy": "Delete",
            "hostPath": {"path": str(data)},
        },
    }
    storage.kubectl("apply", "-f", "-", stdin=json.dumps(pv))
    storage.kubectl("apply", "-f", "-", stdin=_claim("c", storageClassName=""))
    _wait_phase(storage, "pvc", "c", "Bound")
    storage.kubectl("delete", "pvc", "c")
    volume = _wait_phase(storage, "pv", "foreign", "Failed")
    assert "no deletable volume plugin matched" in volume["status"]["message"]
    assert data.is_dir()


def test_the_api_refuses_what_kube_refuses(storage: Storage) -> None:
    done = storage.server.kubectl(
        "apply", "-f", "-", stdin=_claim("bad", accessModes=[]), check=False
    )
    assert done.returncode != 0
    assert "spec.accessModes: Required value: at least 1 access mode is required" in done.stderr

    storage.kubectl("apply", "-f", "-", stdin=_class("fixed", expand=False))
    storage.kubectl("apply", "-f", "-", stdin=_claim("fixed", storageClassName="fixed"))
    _wait_phase(storage, "pvc", "fixed", "Bound")
    grow = '{"spec":{"resources":{"requests":{"storage":"1Gi"}}}}'
    done = storage.server.kubectl("patch", "pvc", "fixed", "-p", grow, check=False)
    assert done.returncode != 0
    assert "only dynamically provisioned pvc can be resized" in done.stderr
    shrink = '{"spec":{"resources":{"requests":{"storage":"1Mi"}}}}'
    done = storage.server.kubectl("patch", "pvc", "fixed", "-p", shrink, check=False)
    assert "field can not be less than status.capacity" in done.stderr
    done = storage.server.kubectl(
        "patch", "pvc", "fixed", "-p", '{"spec":{"accessModes":["ReadWriteMany"]}}', check=False
    )
    assert "spec is immutable after creation" in done.stderr
    done = storage.server.kubectl(
        "patch", "sc", "fixed", "-p", '{"reclaimPolicy":"Retain"}', check=False
    )
    assert "updates to reclaimPolicy are forbidden" in done.stderr


def test_a_claim_whose_volume_vanished_is_lost(storage: Storage, tmp_path: Path) -> None:
    storage.kubectl("apply", "-f", "-", stdin=_class("now"))
    storage.kubectl("apply", "-f", "-", stdin=_claim("lost", storageClassName="now"))
    claim = _wait_phase(storage, "pvc", "lost", "Bound")
    pv = claim["spec"]["volumeName"]
    # a volume deleted from under its claim: the finalizer holds it until it is unbound, so
    # remove the finalizer too (as an administrator forcing it would)
    storage.kubectl("delete", "pv", pv, "--wait=false")
    storage.kubectl("patch", "pv", pv, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    _wait_phase(storage, "pvc", "lost", "Lost")
    assert any(e.startswith("ClaimLost") for e in _events(storage, "lost"))
