"""Loop devices over a backing file, with util-linux's `losetup`: the block side of local PVs.

A loop device is node state, not API state: a PV names its backing *file*, and the device over
it is found (`losetup -j`), made (`losetup -f --show`), grown (`losetup -c`) or detached
(`losetup -d`) here. So a node restart, which loses nothing but may renumber nothing either,
re-attaches by file; and two callers attaching the same file get the same device (a lock in
this process; the node is the only process that attaches).
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from kvd import logs

log = logs.get_logger(__name__)

_lock = threading.Lock()


class LoopError(Exception):
    pass


def _losetup(*args: str) -> str:
    try:
        done = subprocess.run(
            ["losetup", *args], capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LoopError(f"losetup {' '.join(args)}: {exc}") from exc
    if done.returncode != 0:
        raise LoopError(f"losetup {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def devices(backing: Path) -> list[Path]:
    """The loop devices attached over `backing` (none when it does not exist)."""
    if not backing.exists():
        return []
    out = _losetup("--list", "--noheadings", "--output", "NAME", "--associated", str(backing))
    return [Path(line.strip()) for line in out.splitlines() if line.strip()]


def attach(backing: Path) -> Path:
    """The loop device over `backing`, attached if none is."""
    with _lock:
        existing = devices(backing)
        if existing:
            return existing[0]
        device = Path(_losetup("--find", "--show", str(backing)).strip())
        log.info("loop_attached", device=str(device), backing=str(backing))
        return device


def detach(backing: Path) -> None:
    """Detach every loop device over `backing`. One still open (a pod's QEMU) goes when its
    last user closes it: the kernel's autoclear."""
    with _lock:
        for device in devices(backing):
            _losetup("--detach", str(device))
            log.info("loop_detached", device=str(device), backing=str(backing))


def refresh(backing: Path) -> None:
    """Make every device over `backing` see the file's new size (after growing it)."""
    with _lock:
        for device in devices(backing):
            _losetup("--set-capacity", str(device))
