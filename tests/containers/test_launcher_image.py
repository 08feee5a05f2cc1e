"""The launcher image as a launcher pod runs it: `kvd launcher` is the container's entry point
and PID 1, with its own libvirtd (seeded) and QEMU under TCG, no network, its run directory
shared with the host the way a pod shares it with the handler. A client on the host (the
handler's side) drives it over the socket: the demo guest boots, and SIGTERM — what the kubelet
sends — ends the guest within the grace period and the container with the launcher's status."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from kvd.rpc.launcher.v1 import launcher_pb2, launcher_pb2_grpc
from tests.containers import podman
from tests.launcher.harness import RPC_TIMEOUT, Console, files_dir, vmi_manifest
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
GRACE = 30  # the guest powers off in a few seconds under TCG; this only bounds a hang


class Pod:
    """One launcher container; its files in a directory QEMU's uid may traverse."""

    def __init__(self, base: Path, guest_dir: Path) -> None:
        self.files = files_dir(base)
        disks = self.files / "container-disks" / "containerdisk"
        disks.mkdir(parents=True)
        shutil.copyfile(guest_dir / "kvd-demo.qcow2", disks / "disk.qcow2")
        self.run_dir = self.files / "run"
        self.name = f"kvd-test-launcher-{uuid.uuid4().hex[:12]}"
        self.uid = str(uuid.uuid4())
        self._channel: grpc.Channel | None = None

    def start(self, ref: str) -> None:
        podman.ok(
            "run", *podman.OPTIONS, "--detach", "--name", self.name,  # kept (no --rm): its logs
            "--volume", f"{self.files}:{self.files}",
            ref,
            "--namespace", "default", "--name", "vm", "--uid", self.uid,
            "--run-dir", str(self.run_dir),
            "--container-disk-dir", str(self.files / "container-disks"),
            "--grace-period-seconds", str(GRACE), "--allow-emulation",
        )  # fmt: skip
        wait_for(
            "the launcher in its container to answer GetInfo",
            self._answers,
            timeout=120,
            diagnose=self.logs,
        )

    @property
    def stub(self) -> launcher_pb2_grpc.LauncherServiceStub:
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"unix:{self.run_dir / 'launcher.sock'}")
        return launcher_pb2_grpc.LauncherServiceStub(self._channel)

    def _answers(self) -> bool:
        state = podman.ok("inspect", "--format", "{{.State.Status}}", self.name).strip()
        if state != "running":
            raise AssertionError(f"the launcher container is {state}:\n{self.logs()}")
        try:
            self.stub.GetInfo(launcher_pb2.GetInfoRequest(), timeout=2)
        except grpc.RpcError:
            return False
        return True

    def logs(self) -> str:
        return podman.podman("logs", self.name).stderr[-6000:]

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        podman.podman("rm", "--force", "--time", "0", self.name)
        shutil.rmtree(self.files, ignore_errors=True)


@pytest.fixture
def pod(tmp_path: Path, guest_dir: Path) -> Iterator[Pod]:
    made = Pod(tmp_path, guest_dir)
    try:
        yield made
    finally:
        made.close()


def test_launcher_image_boots_the_demo_guest_and_ends_on_sigterm(pod: Pod) -> None:
    (ref,) = podman.require("kvd-launcher")
    pod.start(ref)
    info = pod.stub.GetInfo(launcher_pb2.GetInfoRequest(), timeout=RPC_TIMEOUT)
    assert info.launcher_version == podman.VERSION
    assert info.emulated, "the container has no /dev/kvm: QEMU must run under TCG"
    assert info.libvirt_version and info.qemu_version
    # the image's capability seed was taken: libvirtd did not spend seconds probing QEMU
    assert '"seeded": true' in pod.logs() and '"probed_qemu": false' in pod.logs(), pod.logs()

    manifest = vmi_manifest(namespace="default", name="vm", uid=pod.uid)
    pod.stub.DefineDomain(
        launcher_pb2.DefineDomainRequest(vmi_json=json.dumps(manifest).encode()),
        timeout=RPC_TIMEOUT,
    )
    pod.stub.LaunchDomain(launcher_pb2.LaunchDomainRequest(vmi_uid=pod.uid), timeout=RPC_TIMEOUT)
    console = Console(pod.stub)  # replays what the guest printed before it attached
    console.wait_for("KVD-GUEST-BOOTED")
    console.wait_for("KVD-READY")  # acpid runs: an ACPI shutdown will be heard

    # what the kubelet does to a pod being deleted; the launcher (PID 1 of the container) shuts
    # the guest down and exits 0 ("the guest shut down"), instead of hanging until SIGKILL (137)
    podman.ok("kill", "--signal", "TERM", pod.name)
    status = podman.ok("wait", pod.name, timeout=GRACE + 60).strip()
    assert status == "0", f"exit {status}:\n{pod.logs()}"
    assert '"event": "grace_period_over_killing_domain"' not in pod.logs(), pod.logs()
