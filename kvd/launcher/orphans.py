"""What a launcher killed with kill -9 leaves behind — found and ended by the next one.

A launcher's libvirtd keeps its state on tmpfs private to the launcher, so a new launcher
cannot adopt a domain from a dead one: the safe course is to end what is left and start clean.
Two things can outlive a killed launcher: its libvirtd (whose pid file is in the run dir) and
the domain's QEMU (whose pid and start time each launch records in the run dir, which
outlives the launcher). The next launcher for the same run dir ends both if they still run
and are still the same processes — libvirtd's command line names this run dir, and QEMU's
start time guards against pid reuse — before it starts its own.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from kvd import logs, procfs

log = logs.get_logger(__name__)
RECORD = "qemu.json"


def record(run_dir: Path, pid: int) -> None:
    """Remember the domain's QEMU so the next launcher can end it if this one is killed."""
    stat = procfs.read(pid)
    if stat is None or stat.ended:  # nothing a next launcher would have to end
        return
    tmp = run_dir / f".{RECORD}.tmp"
    tmp.write_text(json.dumps({"pid": pid, "start_time": stat.start_time}))
    tmp.replace(run_dir / RECORD)


def forget(run_dir: Path) -> None:
    (run_dir / RECORD).unlink(missing_ok=True)


def reap(run_dir: Path, *, libvirtd_pid_file: Path, grace: float = 5.0) -> list[int]:
    """End the libvirtd and QEMU a previous launcher left running; return their pids."""
    ended = []
    daemon = _libvirtd(libvirtd_pid_file)
    if daemon is not None:
        pid, start = daemon
        log.warning("orphaned_libvirtd_found", pid=pid)
        _end(pid, lambda: procfs.running(pid, start), grace)
        ended.append(pid)
    qemu = _qemu(run_dir / RECORD)
    if qemu is not None:
        pid, start = qemu
        log.warning("orphaned_qemu_found", pid=pid)
        _end(pid, lambda: procfs.running(pid, start), grace)
        ended.append(pid)
    forget(run_dir)
    return ended


def _libvirtd(pid_file: Path) -> tuple[int, int] | None:
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    stat = procfs.read(pid)
    if stat is None or stat.ended:
        return None
    if str(pid_file).encode() not in cmdline.split(b"\0"):
        return None  # the pid was reused by something else
    return pid, stat.start_time


def _qemu(path: Path) -> tuple[int, int] | None:
    try:
        data = json.loads(path.read_text())
        pid, start = int(data["pid"]), int(data["start_time"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (pid, start) if procfs.running(pid, start) else None


def _end(pid: int, alive: Callable[[], bool], grace: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not alive():
            return
    log.error("orphan_survived_sigkill", pid=pid)
