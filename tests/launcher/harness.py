"""A real `kvd launcher` process in a sandbox, driven over its real unix socket.

Each launcher runs as it would in its pod: a private mount namespace with fresh libvirt
directories (kvd.sandbox), its own run dir, and the kvd-demo containerDisk where the pod would
mount it. `Launcher.close()` ends everything the sandbox started, even after a failure.

QEMU runs as an unprivileged user, which must pass through every directory above the run dir
and the pod's mounts, as it can in a pod. pytest's tmp_path is under /tmp/pytest-of-root (0700,
and pytest makes it 0700 again at every session start, which a concurrent session would do
under our feet), so the launcher's files live in a directory of their own under /tmp (`files`),
linked from `base/files` for whoever debugs a failure; the last launcher using it removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from kvd import sandbox
from kvd.rpc.launcher.v1 import domain_pb2, launcher_pb2, launcher_pb2_grpc
from tests.support import console, waiting

KVD = str(Path(sys.executable).parent / "kvd")
_users: dict[Path, int] = {}  # a launcher files directory → how many open Launchers use it


def files_dir(base: Path) -> Path:
    """The directory, searchable by every user, where launchers with this `base` keep their
    run dir and the pod's mounts (one per `base`, so a restarted launcher finds its run dir)."""
    link = base / "files"
    if link.is_symlink():
        return link.resolve()
    base.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="kvd-launcher-"))
    os.chmod(directory, 0o755)
    link.symlink_to(directory)
    return directory


RPC_TIMEOUT = 60.0
BOOT = console.BOOT  # seconds to a console marker under TCG


def vmi_manifest(
    *,
    namespace: str,
    name: str,
    uid: str,
    user_data: str | None = None,
    empty_disk: str | None = None,
    interfaces: list[dict[str, Any]] | None = None,
    memory: str = "128Mi",
    firmware: dict[str, Any] | None = None,
    container_disk: bool = True,
) -> dict[str, Any]:
    """A VMI with the kvd-demo disk (unless not `container_disk`); no NIC unless `interfaces`
    (on the pod network) are given; `firmware` is spec.domain.firmware."""
    disks: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    if container_disk:
        disks.append({"name": "containerdisk", "disk": {"bus": "virtio"}})
        volumes.append({"name": "containerdisk", "containerDisk": {"image": "kvd-demo"}})
    if user_data is not None:
        disks.append({"name": "cloudinitdisk", "disk": {"bus": "virtio"}})
        volumes.append({"name": "cloudinitdisk", "cloudInitNoCloud": {"userData": user_data}})
    if empty_disk is not None:
        disks.append({"name": "scratch", "disk": {"bus": "virtio"}})
        volumes.append({"name": "scratch", "emptyDisk": {"capacity": empty_disk}})
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"namespace": namespace, "name": name, "uid": uid},
        "spec": {
            "domain": {
                "resources": {"requests": {"memory": memory}},
                **({"firmware": firmware} if firmware is not None else {}),
                "devices": {
                    "disks": disks,
                    "interfaces": interfaces or [],
                    # without interfaces, no default pod interface either: most launchers in
                    # tests run in the host's network namespace, where there is no pod network
                    "autoattachPodInterface": bool(interfaces),
                },
            },
            "networks": [{"name": i["name"], "pod": {}} for i in interfaces or []],
            "volumes": volumes,
            "terminationGracePeriodSeconds": 5,
        },
    }


class Console(console.GrpcConsole):
    """The launcher's Console stream, followed in the background (tests.support.console)."""

    def __init__(
        self,
        stub: launcher_pb2_grpc.LauncherServiceStub,
        *,
        mode: int = launcher_pb2.CONSOLE_MODE_READ_ONLY,
        replay: int = 1 << 20,
        take_over: bool = False,
    ) -> None:
        opened = launcher_pb2.ConsoleOpen(mode=mode, replay_bytes=replay, take_over=take_over)
        super().__init__(
            stub.Console, launcher_pb2.ConsoleRequest(open=opened), what="launcher console"
        )


class Launcher:
    def __init__(
        self,
        base: Path,
        guest_dir: Path,
        *,
        namespace: str = "default",
        name: str = "testvmi",
        uid: str | None = None,
        grace: int = 5,
        allow_emulation: bool = True,
        define_timeout: float = 120.0,
        netns: str | None = None,
        sandbox_spec: sandbox.SandboxSpec | None = None,
    ) -> None:
        self.namespace, self.name, self.uid = namespace, name, uid or str(uuid.uuid4())
        self.base = base
        self.files = files_dir(base)
        _users[self.files] = _users.get(self.files, 0) + 1
        self._closed = False
        self.run_dir = self.files / "run"
        self.disk_dir = self.files / "container-disks"
        (self.disk_dir / "containerdisk").mkdir(parents=True, exist_ok=True)
        base_image = self.disk_dir / "containerdisk" / "disk.qcow2"
        if not base_image.exists():
            shutil.copyfile(guest_dir / "kvd-demo.qcow2", base_image)
        self.base_image = base_image
        # where a pod would mount a kernelBoot image; absent unless a test puts files there
        self.kernel_boot_dir = self.files / "kernel-boot"
        self.pvc_dir = self.files / "pvcs"
        self.host_disk_dir = self.files / "host-disks"
        self.sandbox_spec = sandbox_spec or sandbox.SandboxSpec()
        self.log_path = base / "launcher.log"
        self.args = [
            KVD,
            "launcher",
            "--namespace",
            namespace,
            "--name",
            name,
            "--uid",
            self.uid,
            "--run-dir",
            str(self.run_dir),
            "--grace-period-seconds",
            str(grace),
            "--container-disk-dir",
            str(self.disk_dir),
            "--pvc-dir",
            str(self.pvc_dir),
            "--host-disk-dir",
            str(self.host_disk_dir),
            "--kernel-boot-dir",
            str(self.kernel_boot_dir),
            "--define-timeout-seconds",
            str(define_timeout),
        ] + (["--allow-emulation"] if allow_emulation else [])
        # Outside a pod's netns the launcher must never take the host's eth0 over.
        self.args += ["--pod-network"] if netns else []
        self.netns = netns  # a named network namespace (`ip netns`) to run in, as a pod's
        self.proc: subprocess.Popen[bytes] | None = None
        self.namespace_id: str | None = None
        self._channel: grpc.Channel | None = None

    @property
    def socket(self) -> Path:
        return self.run_dir / "launcher.sock"

    def start(self, timeout: float = 60.0) -> Launcher:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed with it
        if self.netns is None:
            # a session of its own, as a container's processes have
            self.proc = sandbox.popen(
                self.args, self.sandbox_spec, stdout=log, stderr=log, start_new_session=True
            )
        else:
            # `ip netns exec` also binds /etc/netns/<netns>/resolv.conf, as a pod's resolv.conf
            argv = ["ip", "netns", "exec", self.netns]
            argv += sandbox.command(self.args, self.sandbox_spec)
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.namespace_id = sandbox.wait_for_namespace(self.proc)
        waiting.wait_for(
            "the launcher's socket to answer GetInfo",
            self._answers,
            timeout=timeout,
            interval=0.02,
            diagnose=self.log,
        )
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"launcher exited {self.proc.returncode}:\n{self.log()}")
        if not self.socket.exists():
            return False
        try:
            self.stub.GetInfo(launcher_pb2.GetInfoRequest(), timeout=2)
        except grpc.RpcError:
            return False
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    @property
    def stub(self) -> launcher_pb2_grpc.LauncherServiceStub:
        if self._channel is None:
            self._channel = grpc.insecure_channel(f"unix:{self.socket}")
        return launcher_pb2_grpc.LauncherServiceStub(self._channel)

    def manifest(self, **kwargs: Any) -> dict[str, Any]:
        return vmi_manifest(namespace=self.namespace, name=self.name, uid=self.uid, **kwargs)

    def define(self, manifest: dict[str, Any]) -> launcher_pb2.DefineDomainResponse:
        return self.stub.DefineDomain(
            launcher_pb2.DefineDomainRequest(vmi_json=json.dumps(manifest).encode()),
            timeout=RPC_TIMEOUT,
        )

    def watch(self) -> Iterator[launcher_pb2.WatchDomainResponse]:
        return self.stub.WatchDomain(launcher_pb2.WatchDomainRequest(), timeout=600)  # type: ignore[no-any-return]

    def screen_size(self) -> tuple[int, int]:
        """The guest framebuffer's (width, height) as QEMU reports it: `virsh screenshot`,
        QEMU's screendump, through this launcher's own libvirtd (a PNG, or PPM from an older
        QEMU)."""
        uri = f"qemu:///system?socket={self.run_dir / 'libvirt' / 'sock' / 'libvirt-sock'}"
        shot = self.base / "screen.img"
        subprocess.run(
            ["virsh", "-c", uri, "screenshot", f"{self.namespace}_{self.name}", str(shot)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        data = shot.read_bytes()
        if data.startswith(b"\x89PNG"):
            width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
            return width, height
        magic, width_text, height_text = data.split(maxsplit=3)[:3]
        assert magic == b"P6", f"virsh screenshot wrote neither PNG nor PPM: {data[:16]!r}"
        return int(width_text), int(height_text)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"launcher still runs after {timeout}s:\n{self.log()}") from None

    def processes(self) -> list[int]:
        """Every process still alive in this launcher's sandbox (libvirtd, QEMU, …)."""
        return sandbox.pids_in(self.namespace_id) if self.namespace_id else []

    def leftovers(self) -> list[str]:
        """`processes()` as "pid: argv" lines, so a failed "nothing is left" check says what was."""
        found = []
        for pid in self.processes():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                argv = b"(gone meanwhile)"
            found.append(f"{pid}: {argv.decode(errors='replace').strip()}")
        return found

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.namespace_id is not None:
            sandbox.kill_all(self.namespace_id)
        if not self._closed:
            self._closed = True
            _users[self.files] -= 1
            if _users[self.files] == 0:
                del _users[self.files]
                shutil.rmtree(self.files, ignore_errors=True)


def wait_for_event(
    events: Iterator[launcher_pb2.WatchDomainResponse],
    accept: Callable[[domain_pb2.Domain], bool],
    *,
    seen: list[launcher_pb2.WatchDomainResponse],
) -> launcher_pb2.WatchDomainResponse:
    """The first event whose domain satisfies `accept`; every event read is kept in `seen`."""
    for event in events:
        seen.append(event)
        if accept(event.domain):
            return event
    raise AssertionError(f"watch ended before the awaited state; saw {[_brief(e) for e in seen]}")


def _brief(event: launcher_pb2.WatchDomainResponse) -> str:
    return (
        f"{domain_pb2.DomainEventType.Name(event.type)}:"
        f"{domain_pb2.DomainState.Name(event.domain.state)}/"
        f"{domain_pb2.DomainStateReason.Name(event.domain.reason)}"
    )
