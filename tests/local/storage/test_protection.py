"""PVC and PV protection against a real API server and kvd's storage controller, with kubectl:
a claim a running pod uses stays Terminating, its data with it, until the pod is gone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kvd.local.storage import protection
from tests.local.storage.conftest import Storage
from tests.support.waiting import wait_for

Json = dict[str, Any]
PVC = "kubernetes.io/pvc-protection"
PV = "kubernetes.io/pv-protection"


def _pod(name: str, claim: str, *, node: str | None = "node-a", phase: str = "Running") -> Json:
    spec: Json = {
        "containers": [{"name": "c", "image": "busybox"}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
    }
    if node is not None:
        spec["nodeName"] = node
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
        "status": {"phase": phase},
    }


@pytest.mark.parametrize(
    ("pod", "uses"),
    [
        pytest.param(_pod("p", "data"), ["data"], id="running-on-a-node"),
        pytest.param(_pod("p", "data", phase="Pending"), ["data"], id="starting-on-a-node"),
        pytest.param(_pod("p", "data", node=None, phase="Pending"), [], id="not-scheduled"),
        pytest.param(_pod("p", "data", phase="Succeeded"), [], id="succeeded"),
        pytest.param(_pod("p", "data", phase="Failed"), [], id="failed"),
    ],
)
def test_which_pods_hold_a_claim(pod: Json, uses: list[str]) -> None:
    assert protection.claims_used_by(pod) == uses


def test_a_claim_is_held_only_by_pods_of_its_namespace() -> None:
    claim = {"metadata": {"name": "data", "namespace": "default"}}
    elsewhere = _pod("p", "data")
    elsewhere["metadata"]["namespace"] = "other"
    assert not protection.in_use(claim, [elsewhere])
    assert protection.in_use(claim, [elsewhere, _pod("q", "data")])


def _claim(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "16Mi"}},
                "storageClassName": "now",
            },
        }
    )


NOW_CLASS = json.dumps(
    {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "now"},
        "provisioner": "kvd.io/local",
        "volumeBindingMode": "Immediate",
        "reclaimPolicy": "Delete",
    }
)


def _get(s: Storage, kind: str, name: str) -> Json | None:
    done = s.server.kubectl("get", kind, name, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def _bound_claim(s: Storage, name: str) -> Json:
    s.kubectl("apply", "-f", "-", stdin=NOW_CLASS)
    s.kubectl("apply", "-f", "-", stdin=_claim(name))

    def bound() -> Json | None:
        claim = _get(s, "pvc", name)
        return claim if claim and claim.get("status", {}).get("phase") == "Bound" else None

    found: Json = wait_for(f"claim {name} to be Bound", bound, timeout=30)
    return found


def _run_pod(s: Storage, pod: Json) -> None:
    """A pod on the node as the API shows it; nothing runs (no kubelet in this fixture)."""
    name = pod["metadata"]["name"]
    s.raw.create("/api/v1/namespaces/default/pods", {k: v for k, v in pod.items() if k != "status"})
    s.raw.merge_patch(f"/api/v1/namespaces/default/pods/{name}/status", {"status": pod["status"]})


@pytest.mark.integration
def test_new_claims_and_volumes_carry_their_protection(storage: Storage) -> None:
    claim = _bound_claim(storage, "data")
    assert PVC in claim["metadata"]["finalizers"]
    volume = _get(storage, "pv", claim["spec"]["volumeName"])
    assert volume is not None and PV in volume["metadata"]["finalizers"]


@pytest.mark.integration
def test_a_claim_in_use_stays_terminating_until_its_pod_is_gone(storage: Storage) -> None:
    claim = _bound_claim(storage, "data")
    pv = claim["spec"]["volumeName"]
    volume = _get(storage, "pv", pv)
    assert volume is not None
    directory = Path(volume["spec"]["hostPath"]["path"])
    (directory / "written").write_text("by the pod")
    _run_pod(storage, _pod("user", "data"))
    # the controller sees the pod before the claim is deleted: wait for its cache, as a
    # kubelet would have taken time to start the pod anyway
    wait_for(
        "the pod in the controller's cache",
        lambda: storage.controller.protection.pods.get("default/user"),
    )

    storage.kubectl("delete", "pvc", "data", "--wait=false")
    terminating = _get(storage, "pvc", "data")
    assert terminating is not None and terminating["metadata"].get("deletionTimestamp")
    row = storage.kubectl("get", "pvc", "data", "--no-headers").split()
    assert row[:2] == ["data", "Terminating"]
    # a volume being deleted while bound is held too
    storage.kubectl("delete", "pv", pv, "--wait=false")
    # Nothing happens while the pod runs: give the controllers time to act wrongly, bounded
    # by a resync of something else they must do (a second claim getting bound).
    _bound_claim(storage, "other")
    assert _get(storage, "pvc", "data") is not None
    assert (directory / "written").read_text() == "by the pod"
    volume = _get(storage, "pv", pv)
    assert volume is not None and volume["status"]["phase"] == "Bound"

    storage.kubectl("delete", "pod", "user", "--grace-period=0", "--force")
    wait_for("the claim to go", lambda: _get(storage, "pvc", "data") is None, timeout=30)
    wait_for("the volume to go", lambda: _get(storage, "pv", pv) is None, timeout=30)
    assert not directory.exists()


@pytest.mark.integration
def test_a_finished_pod_does_not_hold_its_claim(storage: Storage) -> None:
    claim = _bound_claim(storage, "data")
    pv = claim["spec"]["volumeName"]
    _run_pod(storage, _pod("done", "data", phase="Succeeded"))
    wait_for(
        "the pod in the controller's cache",
        lambda: storage.controller.protection.pods.get("default/done"),
    )
    storage.kubectl("delete", "pvc", "data", "--wait=false")
    wait_for("the claim to go", lambda: _get(storage, "pvc", "data") is None, timeout=30)
    wait_for("the volume to go", lambda: _get(storage, "pv", pv) is None, timeout=30)
    assert _get(storage, "pod", "done") is not None


@pytest.mark.integration
def test_an_unbound_volume_goes_at_once(storage: Storage, tmp_path: Path) -> None:
    manual = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "manual"},
        "spec": {
            "capacity": {"storage": "1Mi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "none",
            "hostPath": {"path": str(tmp_path / "manual")},
        },
    }
    storage.kubectl("apply", "-f", "-", stdin=json.dumps(manual))
    created = _get(storage, "pv", "manual")
    assert created is not None and PV in created["metadata"]["finalizers"]
    storage.kubectl("delete", "pv", "manual", "--wait=false")
    wait_for("the volume to go", lambda: _get(storage, "pv", "manual") is None, timeout=30)
