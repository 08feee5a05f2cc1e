"""The launcher's private libvirtd, for real: each daemon runs inside its own kvd sandbox, owned by
a stand-in launcher process (libvirtd_driver.py), as the real launcher owns one in its pod. The test
process reaches each daemon through the socket in that launcher's run directory."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest

from kvd import sandbox
from kvd.launcher.virt.libvirtd import Libvirtd, LibvirtdError
from tests.support.waiting import wait_for

DRIVER = Path(__file__).with_name("libvirtd_driver.py")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(180),
    pytest.mark.skipif(os.geteuid() != 0, reason="a sandbox needs root"),
    pytest.mark.skipif(
        shutil.which("libvirtd", path="/usr/sbin:/usr/bin") is None, reason="no libvirtd"
    ),
]


class Launcher:
    """A sandboxed process owning one Libvirtd; every process of its sandbox dies in `close`."""

    def __init__(self, run_dir: Path, caps_store: Path) -> None:
        self.run_dir = run_dir
        self.stderr_path = run_dir.with_suffix(".stderr")
        run_dir.mkdir(parents=True)
        argv = [sys.executable, str(DRIVER), "--run-dir", str(run_dir)]
        argv += ["--caps-store", str(caps_store)]
        with open(self.stderr_path, "w") as stderr:
            self.proc = sandbox.popen(
                argv,
                sandbox.SandboxSpec(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self.namespace = sandbox.wait_for_namespace(self.proc)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def reply(self, timeout: float = 60.0) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"launcher silent for {timeout}s: {self.logs()}") from None
        result: dict[str, Any] = json.loads(line)
        return result

    def ask(self, command: str, timeout: float = 60.0) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.reply(timeout)

    def logs(self) -> str:
        return self.stderr_path.read_text()

    def close(self) -> None:
        sandbox.kill_all(self.namespace)
        self.proc.wait(10)


@pytest.fixture
def launchers(tmp_path: Path) -> Iterator[Callable[[str, Path], Launcher]]:
    started: list[Launcher] = []

    def start(name: str, store: Path) -> Launcher:
        started.append(Launcher(tmp_path / name, store))
        return started[-1]

    yield start
    for launcher in started:
        launcher.close()


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seed store filled by one cold start (8-9 s of QEMU probing), shared by the module."""
    store = tmp_path_factory.mktemp("caps")
    launcher = Launcher(tmp_path_factory.mktemp("cold") / "l", store)
    try:
        ready = launcher.reply(timeout=120)
        assert ready["event"] == "ready", ready
        assert ready["seeded"] is False
        assert launcher.ask("stop") == {"stopped": True, "pid": ready["pid"]}
    finally:
        launcher.close()
    return store


def test_a_cold_start_fills_the_seed_store(seeded_store: Path) -> None:
    (entry,) = [p for p in seeded_store.iterdir() if not p.name.startswith(".")]
    assert sorted(p.suffix for p in entry.iterdir()) == [".json", ".xml", ".xml"]  # i386, x86_64
    identity = json.loads((entry / "identity.json").read_text())
    assert "/usr/bin/qemu-system-x86_64" in identity["qemu"]


def test_two_private_daemons_run_at_once_from_the_seed(
    seeded_store: Path, launchers: Callable[[str, Path], Launcher]
) -> None:
    host_run_libvirt = sorted(os.listdir("/run/libvirt")) if Path("/run/libvirt").exists() else None
    a, b = launchers("a", seeded_store), launchers("b", seeded_store)
    ready_a, ready_b = a.reply(), b.reply()
    assert ready_a["event"] == ready_b["event"] == "ready", (ready_a, ready_b, a.logs(), b.logs())
    assert ready_a["uri"] != ready_b["uri"]
    assert ready_a["seeded"] and ready_b["seeded"], "libvirt re-probed QEMU despite the seed"
    assert '"event": "caps_seeded"' in a.logs()
    for ready in (ready_a, ready_b):
        conn = libvirt.open(ready["uri"])
        try:
            assert conn.getVersion() > 0
        finally:
            conn.close()
    current = sorted(os.listdir("/run/libvirt")) if Path("/run/libvirt").exists() else None
    assert current == host_run_libvirt, "a sandboxed libvirtd wrote into the host's /run/libvirt"


DOMAIN = """
<domain type='qemu'>
  <name>kvd-survivor</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def qemu_pids(launcher: Launcher) -> list[int]:
    found = []
    for pid in sandbox.pids_in(launcher.namespace):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"qemu-system" in cmdline and b"kvd-survivor" in cmdline:
            found.append(pid)
    return found


def test_a_domain_keeps_running_while_libvirtd_is_killed_and_restarted(
    seeded_store: Path, launchers: Callable[[str, Path], Launcher]
) -> None:
    launcher = launchers("l", seeded_store)
    ready = launcher.reply()
    assert ready["event"] == "ready", launcher.logs()
    conn = libvirt.open(ready["uri"])
    try:
        conn.defineXML(DOMAIN).create()
    finally:
        conn.close()
    (qemu,) = wait_for("the domain's QEMU", lambda: qemu_pids(launcher))
    # libvirtd was pinned to one CPU while it started; the guest must not inherit that pin.
    assert os.sched_getaffinity(qemu) == os.sched_getaffinity(0)

    os.kill(ready["pid"], signal.SIGKILL)
    status = wait_for(
        "a new libvirtd",
        lambda: (s := launcher.ask("status"))["ready"] and s["pid"] != ready["pid"] and s,
    )
    assert status["restarts"] == 1
    conn = libvirt.open(ready["uri"])
    try:
        domain = conn.lookupByName("kvd-survivor")
        assert domain.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert qemu_pids(launcher) == [qemu], "QEMU was restarted or replaced"
        domain.destroy()
    finally:
        conn.close()
    wait_for("QEMU to end", lambda: not qemu_pids(launcher))


def test_stop_leaves_no_libvirtd(
    seeded_store: Path, launchers: Callable[[str, Path], Launcher]
) -> None:
    launcher = launchers("l", seeded_store)
    ready = launcher.reply()
    assert ready["event"] == "ready", launcher.logs()
    assert launcher.ask("stop") == {"stopped": True, "pid": ready["pid"]}
    assert launcher.proc.wait(10) == 0
    assert not Path(f"/proc/{ready['pid']}").exists()
    assert sandbox.pids_in(launcher.namespace) == []


def test_a_missing_libvirt_qemu_user_is_named_with_its_fix(
    tmp_path: Path, seeded_store: Path
) -> None:
    # A passwd and group without libvirt-qemu, bound over the host's inside the sandbox only.
    for name in ("passwd", "group"):
        lines = Path(f"/etc/{name}").read_text().splitlines(keepends=True)
        (tmp_path / name).write_text("".join(x for x in lines if not x.startswith("libvirt-qemu:")))
    binds = {Path("/etc/passwd"): tmp_path / "passwd", Path("/etc/group"): tmp_path / "group"}
    argv = [sys.executable, str(DRIVER), "--run-dir", str(tmp_path / "l")]
    argv += ["--caps-store", str(seeded_store)]
    result = subprocess.run(
        sandbox.command(argv, sandbox.SandboxSpec(binds=binds)),
        stdin=subprocess.DEVNULL,  # had it started a daemon after all, end of input stops it
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    error = json.loads(result.stdout.splitlines()[0])
    assert error["event"] == "error"
    assert "libvirt-qemu" in error["message"] and "useradd" in error["message"]


def test_a_second_daemon_for_the_same_run_dir_is_refused(reachable_tmp: Path) -> None:
    # A live libvirtd holds a lock on its pid file; a second one must not take over its sockets.
    # (reachable_tmp: a short path, as a run dir is; under xdist tmp_path's is too long for the
    # 107 bytes of a unix socket's, which the daemon checks first)
    tmp = reachable_tmp
    daemon = Libvirtd(tmp / "run", caps_store=tmp / "caps", etc_dir=tmp / "etc")
    pid_file = daemon.dir / "libvirtd.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text("4242\n")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(pid_file)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(LibvirtdError, match=r"another libvirtd \(pid 4242\)"):
            daemon.start()
    finally:
        holder.kill()
        holder.wait()
    assert daemon.pid is None


HOLD_LOCK = """
import fcntl, sys, time
f = open(sys.argv[1], "rb+")
fcntl.lockf(f, fcntl.LOCK_EX, 1, 0)
print("locked", flush=True)
time.sleep(60)
"""
