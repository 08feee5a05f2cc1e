"""One cgroup per container attempt: all its processes found and killed, its memory limited.

Layout: `<hierarchy>/<parent>/<pod uid>/<container>/<attempt>`, `parent` named per `Containers`
(default `kvd`; tests use a unique one). A process joins by writing its own pid into
`cgroup.procs` before it runs anything, so every descendant is inside, whatever it does later
(setsid, double fork, daemonize): `kill` is exact.

What works where:
- cgroup v2 (`/sys/fs/cgroup` is cgroup2): one directory; `memory.max` when the root offers the
  memory controller (it is enabled down the path), `memory.events` `oom_kill`, `cgroup.kill`.
- cgroup v1 (this development machine: v1 controllers mounted, v2 `unified` with no controller):
  the `memory` hierarchy (`memory.limit_in_bytes`, `memory.oom_control` `oom_kill`), or `pids` for
  tracking only when memory is not writable.
- nothing writable (unprivileged, read-only cgroupfs): `Cgroups.available` is False; the caller
  finds a container's processes by its mount namespace instead, and memory limits are not applied.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path

from kvd import logs, sandbox

log = logs.get_logger(__name__)

CGROUP_FS = Path("/sys/fs/cgroup")


class CgroupError(RuntimeError):
    """A cgroup that cannot be set up or emptied."""


class Cgroups:
    def __init__(self, parent: str | None, *, fs: Path = CGROUP_FS) -> None:
        """`parent` None: use no cgroup at all (as where none is writable)."""
        if parent is not None:
            parts = Path(parent).parts
            if not parts or Path(parent).is_absolute() or ".." in parts:
                raise CgroupError(f"cgroup parent must be a relative path without '..': {parent!r}")
        self._v2 = (fs / "cgroup.controllers").exists()
        self._memory = False
        hierarchy: Path | None = None
        if self._v2:
            hierarchy = fs
            self._memory = "memory" in _read(fs / "cgroup.controllers").split()
        else:
            for name in ("memory", "pids"):
                if os.access(fs / name / "cgroup.procs", os.W_OK):
                    hierarchy, self._memory = fs / name, name == "memory"
                    break
        self.parent: Path | None = None
        if parent is not None and hierarchy is not None and os.access(hierarchy, os.W_OK):
            self.parent = hierarchy / parent
        self._hierarchy = hierarchy

    @property
    def available(self) -> bool:
        return self.parent is not None

    @property
    def limits_memory(self) -> bool:
        return self.parent is not None and self._memory

    def path(self, uid: str, name: str, attempt: int) -> Path | None:
        return None if self.parent is None else self.parent / uid / name / str(attempt)

    def create(self, uid: str, name: str, attempt: int, *, memory_limit: int | None) -> Path | None:
        """The attempt's cgroup, made and limited; None (and a log line) when none is writable."""
        path = self.path(uid, name, attempt)
        if path is None:
            if memory_limit is not None:
                log.warning("memory_limit_not_applied", uid=uid, container=name, why="no cgroup")
            return None
        # Another pod's remove() may drop the empty parent between our mkdirs: just make it again.
        for _ in range(5):
            try:
                self._make(path)
                break
            except FileNotFoundError:
                continue
        else:
            raise CgroupError(f"cannot create cgroup {path}: its parent keeps disappearing")
        if memory_limit is not None:
            if self._memory:
                limit_file = "memory.max" if self._v2 else "memory.limit_in_bytes"
                _write(path / limit_file, str(memory_limit))
            else:
                log.warning(
                    "memory_limit_not_applied", uid=uid, container=name, why="no memory cgroup"
                )
        return path

    def _make(self, path: Path) -> None:
        assert self._hierarchy is not None
        missing = []
        p = path
        while p != self._hierarchy and not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            if self._v2 and self._memory:
                # v2 hands a controller to children only when each ancestor enables it.
                _enable_memory(d.parent)
            with contextlib.suppress(FileExistsError):
                d.mkdir()

    def memory_limit(self, path: Path) -> int | None:
        """The limit read back from the cgroup (None when unlimited or not a memory cgroup)."""
        if not self._memory:
            return None
        raw = _read(path / ("memory.max" if self._v2 else "memory.limit_in_bytes")).strip()
        if raw == "max" or int(raw) >= 2**62:
            return None
        return int(raw)

    def oom_killed(self, path: Path) -> bool:
        """Whether the kernel's OOM killer killed a process in this cgroup."""
        if not self._memory:
            return False
        try:
            text = _read(path / ("memory.events" if self._v2 else "memory.oom_control"))
        except FileNotFoundError:
            return False
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value) > 0
        return False

    @staticmethod
    def pids(path: Path) -> list[int]:
        try:
            return [int(p) for p in _read(path / "cgroup.procs").split()]
        except FileNotFoundError:
            return []

    def kill(self, path: Path, *, timeout: float = 10.0) -> None:
        """SIGKILL every process in the cgroup until it is empty."""
        if self._v2 and (path / "cgroup.kill").exists():
            _write(path / "cgroup.kill", "1")
        # A process forking while we kill lands in the cgroup too: repeat until none is left.
        try:
            sandbox.kill_until_gone(lambda: self.pids(path), timeout=timeout)
        except TimeoutError as exc:
            raise CgroupError(f"{exc} in {path}") from None

    def remove(self, path: Path, *, timeout: float = 10.0) -> None:
        """Kill what is left in `path` and every cgroup below it, then remove them, leaves first.

        Empty ancestors up to and including the parent go too, so nothing stays on the host.
        """
        if not path.exists():
            return
        for d, subdirs, _ in os.walk(path, topdown=False):
            for sub in subdirs:
                self._rmdir(Path(d) / sub, timeout=timeout)
        self._rmdir(path, timeout=timeout)
        assert self.parent is not None
        p = path.parent
        while p.is_relative_to(self.parent):
            try:
                p.rmdir()
            except OSError:  # another pod's cgroup still lives there, or it is gone already
                break
            p = p.parent

    def _rmdir(self, d: Path, *, timeout: float) -> None:
        self.kill(d, timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                d.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                # A killed task can linger as a member for a moment after it died.
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove cgroup {d}: {exc}") from exc
            time.sleep(0.005)


def _enable_memory(d: Path) -> None:
    control = d / "cgroup.subtree_control"
    if "memory" not in _read(control).split():
        _write(control, "+memory")


def _read(path: Path) -> str:
    with open(path) as f:
        return f.read()


def _write(path: Path, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise CgroupError(f"writing {value!r} to {path} failed: {exc.strerror}") from exc
