"""A launcher pod, shaped as the controller will render it, run by the local node unchanged:
kvd's image runs `kvd launcher`, the kvd-demo containerDisk comes from the local image store as
an image volume, the launcher's socket reaches the host through a hostPath, and the usual
debugging habit works: `kubectl exec <launcher pod> -c compute -- virsh …`."""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kvd.rpc.launcher.v1 import launcher_pb2, launcher_pb2_grpc
from kvd.version import kvd_image
from tests.launcher.harness import Console, vmi_manifest
from tests.local.node.conftest import Cluster

RUN_DIR = "/var/run/kvd/launcher"
DISK_DIR = "/var/run/kvd/container-disks"
LAUNCHER_ARGS = [
    "--namespace", "default", "--name", "demo", "--run-dir", RUN_DIR,
    "--grace-period-seconds", "5", "--allow-emulation", "--container-disk-dir", DISK_DIR,
]  # fmt: skip


@pytest.fixture
def sockets() -> Iterator[Path]:
    # short: the launcher's libvirtd socket lives under it and unix paths are at most 107 bytes
    d = Path(tempfile.mkdtemp(prefix="kvt-sock-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def launcher_pod(vmi_uid: str, sockets: Path) -> dict[str, Any]:
    return {
        "metadata": {"name": "virt-launcher-demo", "labels": {"kubevirt.io": "virt-launcher"}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 20,
            "containers": [
                {
                    "name": "compute",
                    "image": kvd_image(),
                    "command": ["kvd", "launcher"],
                    "args": [*LAUNCHER_ARGS, "--uid", vmi_uid],
                    "env": [
                        {
                            "name": "LIBVIRT_DEFAULT_URI",
                            "value": f"qemu:///system?socket={RUN_DIR}/libvirt/sock/libvirt-sock",
                        }
                    ],
                    "resources": {"limits": {"memory": "512Mi"}},
                    "volumeMounts": [
                        {"name": "sockets", "mountPath": RUN_DIR},
                        {
                            "name": "containerdisk",
                            "mountPath": f"{DISK_DIR}/containerdisk",
                            "subPath": "disk",
                            "readOnly": True,
                        },
                    ],
                }
            ],
            "volumes": [
                {"name": "sockets", "hostPath": {"path": str(sockets), "type": "Directory"}},
                {"name": "containerdisk", "image": {"reference": "kvd-demo"}},
            ],
        },
    }


def test_launcher_pod_runs_a_guest_and_virsh_works_through_exec(
    cluster: Cluster, sockets: Path
) -> None:
    vmi_uid = str(uuid.uuid4())
    cluster.create_pod(launcher_pod(vmi_uid, sockets))
    pod = cluster.wait_phase("virt-launcher-demo", "Running")
    socket = sockets / "launcher.sock"
    channel = grpc.insecure_channel(f"unix:{socket}")
    try:
        stub = launcher_pb2_grpc.LauncherServiceStub(channel)
        grpc.channel_ready_future(channel).result(timeout=60)
        info = stub.GetInfo(launcher_pb2.GetInfoRequest(), timeout=60)
        assert 1 in info.supported_contract_versions
        manifest = vmi_manifest(
            namespace="default", name="demo", uid=vmi_uid, user_data="#!/bin/sh\necho in-pod\n"
        )
        stub.DefineDomain(
            launcher_pb2.DefineDomainRequest(vmi_json=json.dumps(manifest).encode()), timeout=60
        )
        stub.LaunchDomain(launcher_pb2.LaunchDomainRequest(vmi_uid=vmi_uid), timeout=60)
        console = Console(stub)
        console.wait_for("in-pod")
        console.cancel()

        listed = cluster.kubectl(
            "exec", "virt-launcher-demo", "-c", "compute", "--", "virsh", "list"
        )
        assert "default_demo" in listed.stdout and "running" in listed.stdout
        xml = cluster.kubectl(
            "exec", "virt-launcher-demo", "-c", "compute", "--", "virsh", "dumpxml", "default_demo"
        ).stdout
        assert "<name>default_demo</name>" in xml and f"{RUN_DIR}/" in xml
        links = cluster.kubectl("exec", "virt-launcher-demo", "--", "ip", "-o", "addr").stdout
        assert pod["status"]["podIP"] in links
    finally:
        channel.close()
    # deleting the pod: SIGTERM to the launcher, which shuts the guest down and exits
    cluster.kubectl("delete", "pod", "virt-launcher-demo", timeout=60)
    cluster.wait_gone("virt-launcher-demo")
    assert not [line for line in cluster.leftovers() if "qemu" in line or "libvirtd" in line]
    assert not socket.exists()
