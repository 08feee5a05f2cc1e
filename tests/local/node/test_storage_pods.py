"""Pods with PersistentVolumeClaims on a local cluster (`kvd local up`): the scheduler waits for
WaitForFirstConsumer claims to be provisioned on its node, a pod whose claim is missing or
cannot be bound stays Pending with kube-scheduler's message, a Filesystem claim is mounted and a
Block claim is a device, and nothing of a Block volume outlives its claim."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kvd.local.storage import loop
from tests.local.node.conftest import Cluster
from tests.local.node.test_node import condition, shell_pod
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration  # starts a local cluster (kvd local up)

Json = dict[str, Any]


def _claim(cluster: Cluster, name: str, **spec: Any) -> Json:
    body = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "32Mi"}},
            **spec,
        },
    }
    created: Json = cluster.raw.create("/api/v1/namespaces/default/persistentvolumeclaims", body)
    return created


def _get_claim(cluster: Cluster, name: str) -> Json:
    found: Json = cluster.raw.get(f"/api/v1/namespaces/default/persistentvolumeclaims/{name}")
    return found


def _logs(cluster: Cluster, pod: str) -> str:
    return cluster.kubectl("logs", pod).stdout


def _volume_of(cluster: Cluster, claim: str) -> Json:
    name = _get_claim(cluster, claim)["spec"]["volumeName"]
    found: Json = cluster.raw.get(f"/api/v1/persistentvolumes/{name}")
    return found


def _gone(cluster: Cluster, path: str) -> bool:
    try:
        cluster.raw.get(path)
    except Exception as exc:  # ApiError 404
        return "not found" in str(exc).lower()
    return False


def test_a_wait_for_first_consumer_claim_is_provisioned_for_its_pod(cluster: Cluster) -> None:
    _claim(cluster, "files")
    assert _get_claim(cluster, "files")["status"]["phase"] == "Pending"
    cluster.create_pod(
        shell_pod(
            "writer",
            "echo persisted > /data/marker && cat /data/marker",
            restartPolicy="Never",
            container={"volumeMounts": [{"name": "d", "mountPath": "/data"}]},
            volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "files"}}],
        )
    )
    cluster.wait_phase("writer", "Succeeded", timeout=60)
    claim = _get_claim(cluster, "files")
    assert claim["status"]["phase"] == "Bound"
    annotations = claim["metadata"]["annotations"]
    assert annotations["volume.kubernetes.io/selected-node"] == cluster.node_name
    volume = _volume_of(cluster, "files")
    directory = Path(volume["spec"]["hostPath"]["path"])
    assert (directory / "marker").read_text() == "persisted\n"
    assert str(directory).startswith(str(cluster.data_dir))

    cluster.kubectl("delete", "pod", "writer", timeout=30)
    cluster.kubectl("delete", "pvc", "files", timeout=30)
    wait_for(
        "the volume and its data to go",
        lambda: (
            _gone(cluster, f"/api/v1/persistentvolumes/{volume['metadata']['name']}")
            and not directory.exists()
        ),
        timeout=30,
    )


def test_a_pod_whose_claim_is_missing_waits_for_it(cluster: Cluster) -> None:
    cluster.create_pod(
        shell_pod(
            "patient",
            "cat /data/hello 2>/dev/null; echo done",
            restartPolicy="Never",
            container={"volumeMounts": [{"name": "d", "mountPath": "/data"}]},
            volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "later"}}],
        )
    )
    pod = cluster.wait_pod(
        "patient",
        lambda p: condition(p, "PodScheduled").get("reason") == "Unschedulable",
        what="unschedulable",
    )
    assert condition(pod, "PodScheduled")["message"] == (
        '0/1 nodes are available: persistentvolumeclaim "later" not found.'
    )
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    _claim(cluster, "later")
    cluster.wait_phase("patient", "Succeeded", timeout=60)
    cluster.kubectl("delete", "pod", "patient", timeout=30)
    cluster.kubectl("delete", "pvc", "later", timeout=30)


def test_a_pod_of_an_unbound_immediate_claim_stays_pending(cluster: Cluster) -> None:
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin=json.dumps(
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {"name": "elsewhere"},
                "provisioner": "example.com/nobody",
            }
        ),
    )
    _claim(cluster, "orphan", storageClassName="elsewhere")
    cluster.create_pod(
        shell_pod(
            "stuck",
            "true",
            container={"volumeMounts": [{"name": "d", "mountPath": "/data"}]},
            volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "orphan"}}],
        )
    )
    pod = cluster.wait_pod(
        "stuck",
        lambda p: condition(p, "PodScheduled").get("reason") == "Unschedulable",
        what="unschedulable",
    )
    assert (
        "pod has unbound immediate PersistentVolumeClaims"
        in condition(pod, "PodScheduled")["message"]
    )
    events = cluster.kubectl(
        "get", "events", "--field-selector", "involvedObject.name=orphan"
    ).stdout
    assert "ExternalProvisioning" in events and "example.com/nobody" in events
    cluster.kubectl("delete", "pod", "stuck", timeout=30)
    cluster.kubectl("delete", "pvc", "orphan", timeout=30)
    cluster.kubectl("delete", "sc", "elsewhere", timeout=30)


def test_a_block_claim_is_a_loop_device_in_the_pod_and_goes_with_its_claim(
    cluster: Cluster,
) -> None:
    _claim(cluster, "raw", volumeMode="Block")
    cluster.create_pod(
        shell_pod(
            "blocky",
            "test -b /dev/xvda && echo block && echo on-disk | dd of=/dev/xvda bs=512 conv=sync "
            "2>/dev/null && echo wrote",
            restartPolicy="Never",
            container={"volumeDevices": [{"name": "d", "devicePath": "/dev/xvda"}]},
            volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "raw"}}],
        )
    )
    cluster.wait_phase("blocky", "Succeeded", timeout=60)
    assert _logs(cluster, "blocky") == "block\nwrote\n"
    volume = _volume_of(cluster, "raw")
    backing = Path(volume["spec"]["local"]["path"])
    assert backing.read_bytes()[:8] == b"on-disk\n"
    [device] = loop.devices(backing)
    size = subprocess.run(
        ["blockdev", "--getsize64", str(device)], capture_output=True, text=True, check=True
    ).stdout
    assert int(size) == 32 << 20

    cluster.kubectl("delete", "pod", "blocky", timeout=30)
    cluster.kubectl("delete", "pvc", "raw", timeout=30)
    wait_for("the backing file to go", lambda: not backing.exists(), timeout=30)
    listing = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "BACK-FILE"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(backing) not in listing
