"""Fixtures that boot the kvd-demo test guest (guest/README.md) under QEMU/TCG.

The guest is built by ``guest/build.sh`` into ``build/guest`` (or ``$KVD_GUEST_DIR``).
Tests fail, not skip, when it is missing: a skipped integration test hides a broken setup.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pycdlib
import pytest

from tests.conftest import QEMU
from tests.support.console import Transcript, tail
from tests.support.waiting import wait_for

POLL = 0.05  # seconds between looks at the console or the process


class Qemu:
    """One QEMU process: serial console appended to a file, QMP on a unix socket.

    The console file is followed as it grows (tests.support.console); every wait has a
    deadline and fails with the console output so far, or at once if QEMU dies.
    """

    def __init__(self, workdir: Path, args: list[str], *, memory_mib: int = 256) -> None:
        self.console_path = workdir / "console.log"
        self.stderr_path = workdir / "qemu.stderr"
        # unix socket paths are limited to 108 bytes; tmp_path can be long.
        self._sockdir = tempfile.mkdtemp(prefix="kvd-qmp-")
        self.qmp_path = Path(self._sockdir) / "qmp.sock"
        self.argv = [
            QEMU, "-accel", "tcg", "-machine", "q35", "-m", str(memory_mib), "-smp", "1",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-chardev", f"file,id=console,path={self.console_path}",
            "-serial", "chardev:console",
            "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
            *args,
        ]  # fmt: skip
        self._qmp: Any = None
        self._sock: socket.socket | None = None
        self.started = time.monotonic()
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err
            )
        self.serial = Transcript(
            tail(self.console_path, running=lambda: self.proc.poll() is None, interval=POLL),
            what="the guest's serial console",
            diagnose=self._qemu,
        )

    # -- console --------------------------------------------------------------
    def console(self) -> str:
        """All console output so far."""
        return self.serial.text

    def seen_at(self, pattern: str, timeout: float) -> float:
        """Seconds after QEMU started at which `pattern` first reached the console.

        Waits for it like wait_for; the resolution is the polling interval.
        """
        start = self.wait_for(pattern, timeout).start()
        return self.serial.arrived_at(start) - self.started

    def _qemu(self) -> str:
        err = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        code = self.proc.poll()
        state = "running" if code is None else f"exited {code}"
        return f"--- qemu ({state}): {' '.join(self.argv)}\n--- qemu stderr:\n{err}"

    def diagnostics(self) -> str:
        return (
            f"\n{self._qemu()}"
            f"--- console ({time.monotonic() - self.started:.1f} s after start):\n"
            f"{self.console()}\n--- end of console"
        )

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until the regex `pattern` (multi-line mode) matches the console; fails at
        once if QEMU ends first."""
        return self.serial.wait_match(pattern, timeout=timeout)

    # -- process --------------------------------------------------------------
    def wait_exit(self, timeout: float) -> int | None:
        """The exit code if QEMU ends within `timeout` seconds, else None."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self._sockdir, ignore_errors=True)

    # -- QMP ------------------------------------------------------------------
    def qmp(self, command: str, timeout: float = 10.0, **arguments: Any) -> Any:
        """Run a QMP command and return its "return" value (events are skipped)."""
        if self._qmp is None:

            def connected() -> socket.socket | None:
                assert self.proc.poll() is None, f"QEMU exited before QMP{self.diagnostics()}"
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(str(self.qmp_path))
                except OSError:
                    sock.close()
                    return None
                return sock

            sock = wait_for(
                f"QMP at {self.qmp_path}",
                connected,
                timeout=timeout,
                interval=POLL,
                diagnose=self.diagnostics,
            )
            sock.settimeout(timeout)
            self._sock = sock
            self._qmp = sock.makefile("rwb")
            json.loads(self._qmp.readline())  # greeting: {"QMP": {...}}
            self._qmp_call("qmp_capabilities", {})
        return self._qmp_call(command, arguments)

    def _qmp_call(self, command: str, arguments: dict[str, Any]) -> Any:
        msg: dict[str, Any] = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self._qmp.write(json.dumps(msg).encode() + b"\n")
        self._qmp.flush()
        while True:
            line = self._qmp.readline()
            if not line:
                pytest.fail(f"QMP closed during {command}{self.diagnostics()}", pytrace=False)
            reply = json.loads(line)
            if "error" in reply:
                pytest.fail(f"QMP {command} failed: {reply['error']}", pytrace=False)
            if "return" in reply:
                return reply["return"]


StartQemu = Callable[..., Qemu]  # qemu(*args) -> a started guest
MakeSeed = Callable[..., Path]  # cidata_iso(user_data, meta_data=...) -> ISO path


@pytest.fixture
def qemu(tmp_path: Path) -> Iterator[StartQemu]:
    """Factory: ``qemu(*extra_args, memory_mib=256)`` starts a guest; all are killed at
    teardown."""
    started: list[Qemu] = []

    def start(*args: str | os.PathLike[str], memory_mib: int = 256) -> Qemu:
        workdir = tmp_path / f"vm{len(started)}"
        workdir.mkdir()
        vm = Qemu(workdir, [os.fspath(a) for a in args], memory_mib=memory_mib)
        started.append(vm)
        return vm

    yield start
    for vm in started:
        vm.kill()


@pytest.fixture
def cidata_iso(tmp_path: Path) -> MakeSeed:
    """Factory: a NoCloud seed ISO (ISO 9660 + Joliet + Rock Ridge, volume ``cidata``)."""

    def make(
        user_data: str, meta_data: str = "instance-id: kvd-test\n", name: str = "cidata.iso"
    ) -> Path:
        iso = pycdlib.PyCdlib()
        iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata")
        for fname, text in (("meta-data", meta_data), ("user-data", user_data)):
            data = text.encode()
            iso.add_fp(
                io.BytesIO(data),
                len(data),
                "/" + fname.upper().replace("-", "_") + ".;1",
                rr_name=fname,
                joliet_path="/" + fname,
            )
        path = tmp_path / name
        iso.write(str(path))
        iso.close()
        return path

    return make
