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

from kvd import logs

log = logs.get_logger(__name__)
RECORD = "qemu.json"


def start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses; it ends at the last ')'
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has ended; only its parent's wait is missing
        return None
    return int(fields[19])


def record(run_dir: Path, pid: int) -> None:
    """Remember the domain's QEMU so the next launcher can end it if this one is killed."""
    start = start_time(pid)
    if start is None:
        return
    tmp = run_dir / f".{RECORD}.tmp"
    tmp.write_text(json.dumps({"pid": pid, "start_time": start}))
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
        _end(pid, lambda: start_time(pid) == start, grace)
        ended.append(pid)
    qemu = _qemu(run_dir / RECORD)
    if qemu is not None:
        pid, start = qemu
        log.warning("orphaned_qemu_found", pid=pid)
        _end(pid, lambda: start_time(pid) == start, grace)
        ended.append(pid)
    forget(run_dir)
    return ended


def _libvirtd(pid_file: Path) -> tuple[int, int] | None:
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    start = start_time(pid)
    if start is None or str(pid_file).encode() not in cmdline.split(b"\0"):
        return None  # the pid was reused by something else
    return pid, start


def _qemu(path: Path) -> tuple[int, int] | None:
    try:
        data = json.loads(path.read_text())
        pid, start = int(data["pid"]), int(data["start_time"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (pid, start) if start_time(pid) == start else None


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
