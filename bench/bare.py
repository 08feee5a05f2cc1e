"""The physical limit for `density.py`: N bare `qemu-system-x86_64 -accel tcg` starts of the same
disk as the VMIs, GAP apart, each timed from its spawn to QMP saying `running`, then to the
guest's boot marker on its serial console. No libvirt, no launcher, no API: what the machine
gives when nothing but QEMU runs.

Each VM boots a qcow2 overlay of the image (as a containerDisk does), so the image is never
written. Every QEMU is killed and its directory removed on every path, failure included.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MARKER = b"KVD-READY"


@dataclass
class BareVM:
    index: int
    spawned: float = 0.0  # monotonic
    running: float | None = None  # seconds after the spawn
    booted: float | None = None
    error: str = ""
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def qemu_binary() -> str:
    found = shutil.which("qemu-system-x86_64")
    if found is None:
        raise SystemExit("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    return found


def _qmp_running(path: Path, deadline: float) -> None:
    """Until QMP's `query-status` says running."""
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no QMP socket {path}")
        time.sleep(0.005)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        while True:
            try:
                sock.connect(str(path))
                break
            except (ConnectionRefusedError, FileNotFoundError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        reader = sock.makefile("rb")
        reader.readline()  # the greeting
        sock.sendall(b'{"execute":"qmp_capabilities"}\n')
        _answer(reader)
        while True:
            sock.sendall(b'{"execute":"query-status"}\n')
            status = _answer(reader)
            if status.get("status") == "running":
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"QMP status still {status.get('status')}")
            time.sleep(0.005)


def _answer(reader: object) -> dict[str, object]:
    """The next `return` of QMP, events skipped."""
    while True:
        line = reader.readline()  # type: ignore[attr-defined]
        if not line:
            raise ConnectionError("QMP closed the connection")
        message = json.loads(line)
        if "return" in message:
            return message["return"] if isinstance(message["return"], dict) else {}
        if "error" in message:
            raise RuntimeError(f"QMP error: {message['error']}")


def _follow(vm: BareVM, work: Path, timeout: float) -> None:
    deadline = vm.spawned + timeout
    try:
        _qmp_running(work / "qmp.sock", deadline)
        vm.running = time.monotonic() - vm.spawned
        log = work / "serial.log"
        while time.monotonic() < deadline:
            if log.exists() and MARKER in log.read_bytes():
                vm.booted = time.monotonic() - vm.spawned
                return
            if vm.proc is not None and vm.proc.poll() is not None:
                raise RuntimeError(f"QEMU exited with {vm.proc.returncode}")
            time.sleep(0.05)
        vm.error = "not booted in time"
    except Exception as exc:  # reported per VM, never fatal to the bench
        vm.error = f"{type(exc).__name__}: {exc}"


def run(image: Path, *, count: int, gap: float, memory_mib: int, timeout: float) -> list[BareVM]:
    """Start `count` QEMUs `gap` seconds apart, wait until each booted (or `timeout` after its
    spawn), then kill them all."""
    qemu = qemu_binary()
    root = Path(tempfile.mkdtemp(prefix="kvd-bare-"))
    vms = [BareVM(i) for i in range(count)]
    threads = []
    try:
        for vm in vms:
            work = root / str(vm.index)
            work.mkdir()
            subprocess.run(
                [
                    "qemu-img",
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    "-F",
                    "qcow2",
                    "-b",
                    str(image),
                    str(work / "disk.qcow2"),
                ],
                check=True,
            )
        began = time.monotonic()
        for vm in vms:
            work = root / str(vm.index)
            time.sleep(max(0.0, began + vm.index * gap - time.monotonic()))
            vm.spawned = time.monotonic()
            vm.proc = subprocess.Popen(
                [
                    qemu,
                    "-accel",
                    "tcg",
                    "-machine",
                    "q35",
                    "-m",
                    str(memory_mib),
                    "-smp",
                    "1",
                    "-nodefaults",
                    "-no-user-config",
                    "-display",
                    "none",
                    "-drive",
                    f"file={work / 'disk.qcow2'},if=virtio,format=qcow2",
                    "-serial",
                    f"file:{work / 'serial.log'}",
                    "-qmp",
                    f"unix:{work / 'qmp.sock'},server=on,wait=off",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            t = threading.Thread(target=_follow, args=(vm, work, timeout), daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join(timeout + 5)
    finally:
        for vm in vms:
            if vm.proc is not None and vm.proc.poll() is None:
                vm.proc.kill()
        for vm in vms:
            if vm.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    vm.proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
    left = [vm.index for vm in vms if vm.proc is not None and vm.proc.poll() is None]
    if left:
        raise SystemExit(f"bare QEMUs {left} did not die of SIGKILL")
    return vms
