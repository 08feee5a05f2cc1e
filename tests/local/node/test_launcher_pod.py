"""A launcher pod as the controller renders it (kvd.controller.render), run by the local node:
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

import grpc
import pytest

from kvd.api import kinds
from kvd.api.vmi import VirtualMachineInstance
from kvd.controller import render
from kvd.rpc.launcher.v1 import launcher_pb2, launcher_pb2_grpc
from tests.launcher.harness import Console, vmi_manifest
from tests.local.node.conftest import Cluster

pytestmark = pytest.mark.integration  # starts a local cluster and a real guest

RUN_ROOT = render.LAUNCHER_ROOT


@pytest.fixture
def sockets() -> Iterator[Path]:
    # short: the launcher's libvirtd socket lives under it and unix paths are at most 107 bytes
    d = Path(tempfile.mkdtemp(prefix="kvt-sock-"))
    d.chmod(0o755)  # as the node's launchers dir: QEMU's user passes through to its run dir
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_launcher_pod_runs_a_guest_and_virsh_works_through_exec(
    cluster: Cluster, sockets: Path
) -> None:
    vmi_uid = str(uuid.uuid4())
    manifest = vmi_manifest(
        namespace="default", name="demo", uid=vmi_uid, user_data="#!/bin/sh\necho in-pod\n"
    )
    vmi = kinds.load(manifest)
    assert isinstance(vmi, VirtualMachineInstance)
    pod = render.launcher_pod(vmi, render.RenderConfig(launcher_host_dir=str(sockets)))
    # No VMI object exists here (no controller runs): the garbage collector deletes a new pod
    # whose owners are all gone, as kube's does, so the pod is created without its owner.
    del pod["metadata"]["ownerReferences"]
    name = cluster.create_pod(pod)["metadata"]["name"]
    pod = cluster.wait_phase(name, "Running")
    socket = sockets / pod["metadata"]["uid"] / "launcher.sock"
    channel = grpc.insecure_channel(f"unix:{socket}")
    try:
        stub = launcher_pb2_grpc.LauncherServiceStub(channel)
        grpc.channel_ready_future(channel).result(timeout=60)
        info = stub.GetInfo(launcher_pb2.GetInfoRequest(), timeout=60)
        assert 1 in info.supported_contract_versions
        stub.DefineDomain(
            launcher_pb2.DefineDomainRequest(vmi_json=json.dumps(manifest).encode()), timeout=60
        )
        stub.LaunchDomain(launcher_pb2.LaunchDomainRequest(vmi_uid=vmi_uid), timeout=60)
        console = Console(stub)
        console.wait_for("in-pod")
        console.cancel()

        listed = cluster.kubectl("exec", name, "-c", "compute", "--", "virsh", "list")
        assert "default_demo" in listed.stdout and "running" in listed.stdout
        xml = cluster.kubectl(
            "exec", name, "-c", "compute", "--", "virsh", "dumpxml", "default_demo"
        ).stdout
        assert "<name>default_demo</name>" in xml and f"{RUN_ROOT}/{pod['metadata']['uid']}/" in xml
        links = cluster.kubectl("exec", name, "--", "ip", "-o", "addr").stdout
        assert pod["status"]["podIP"] in links
    finally:
        channel.close()
    # deleting the pod: SIGTERM to the launcher, which shuts the guest down and exits
    cluster.kubectl("delete", "pod", name, timeout=60)
    cluster.wait_gone(name)
    assert not [line for line in cluster.leftovers() if "qemu" in line or "libvirtd" in line]
    assert not socket.exists()
