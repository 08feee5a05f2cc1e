"""Containers as process trees: started through a shim, tracked on disk, adopted after a restart.

`Containers(root)` keeps everything per pod under `root/<pod uid>/`: `volumes/<name>/` (emptyDirs)
and `containers/<name>/<attempt>/` holding `log` (stdout+stderr, appended), `record.json` (the
shim's and the program's pid + start time, the cgroup, the mount namespace) and `exit` (the exit
status, written by the shim). Nothing else is kept in memory, so a new `Containers` over the same
root — a restarted node — sees exactly what the old one did: running programs stay running and
their exit codes appear when they end. The process chain and mounts are in `shim`, cgroups in
`cgroups` (with what works on which machine).

Without a writable cgroup hierarchy a container's processes are found by its mount namespace,
recorded at start, which finds daemonized children too; because the kernel reuses a dead
namespace's id, a process counts only if its mounts carry the attempt's random tag (the source
name of its sysfs and tmpfs mounts). A process that unmounts all of those escapes; cgroups are
the dependable path, and memory limits need them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kvd import logs, sandbox
from kvd.local.node import cgroups, proc, shim
from kvd.local.node.proc import ProcessId

log = logs.get_logger(__name__)

DEFAULT_PRIVATE: tuple[Path, ...] = (
    Path("/run"),
    *sandbox.LIBVIRT_DIRS,
    Path("/tmp"),
    Path("/dev/shm"),  # POSIX shared memory is per pod in a cluster too
)
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_LOST = "lost"


class ContainerError(RuntimeError):
    """A container that could not be started (or found); the message says why."""


@dataclass(frozen=True, kw_only=True)
class Mount:
    path: Path
    """Inside the container."""
    source: Path
    """On the host: a directory, a file, or a device node (a volumeDevice)."""
    read_only: bool = False


@dataclass(frozen=True, kw_only=True)
class ContainerSpec:
    name: str
    argv: tuple[str, ...]
    """Already resolved: command + args; argv[0] is looked up on the PATH in `env`."""
    env: Mapping[str, str]
    """The program's whole environment: nothing of the node's own is added."""
    working_dir: Path | None = None
    mounts: tuple[Mount, ...] = ()
    private: tuple[Path, ...] = DEFAULT_PRIVATE
    """Paths that get a fresh, empty tmpfs."""
    memory_limit: int | None = None
    """Bytes; applied through the container's cgroup where there is one."""
    user: int | None = None
    """The uid the program runs as (securityContext.runAsUser); None: root, as the node runs."""
    group: int | None = None
    """Its gid (runAsGroup); None: the uid's own number when `user` is set, else root."""
    read_only_root: bool = False
    """securityContext.readOnlyRootFilesystem: / is remounted read-only in the container's
    mount namespace (volumes and the private tmpfs stay writable)."""


@dataclass(frozen=True, kw_only=True)
class ContainerStatus:
    name: str
    attempt: int
    pid: int | None
    started_at: datetime
    finished_at: datetime | None
    exit_code: int | None
    """None once finished: the container was lost (its shim died without writing a status)."""
    signal: int | None
    """Killed by signal n: exit_code is 128+n, as a shell and the kubelet report it."""
    reason: str | None = None
    """"OOMKilled", "ContainerStatusUnknown" (lost), or None (the caller says Completed/Error)."""

    @property
    def running(self) -> bool:
        return self.finished_at is None


class Containers:
    def __init__(self, root: Path, *, cgroup_parent: str | None = "kvd") -> None:
        """`cgroup_parent`: the cgroup all pods go under (None: no cgroups, see the docstring)."""
        self.root = root
        self.cgroups = cgroups.Cgroups(cgroup_parent)
        self._tools = shim.Tools.find()
        self._lock = threading.Lock()
        self._children: dict[int, tuple[str, subprocess.Popen[bytes]]] = {}
        self._starting: set[Path] = set()  # attempt dirs whose record is not written yet
        root.mkdir(parents=True, exist_ok=True)

    # --- starting ----------------------------------------------------------------------------

    def start(
        self, uid: str, spec: ContainerSpec, *, netns_path: Path, resolv_conf: Path, attempt: int
    ) -> ContainerStatus:
        """Start `spec` in the pod's network namespace; returns once it runs in its namespaces.

        Raises ContainerError (leaving nothing behind) when it cannot; an attempt number is
        used once, so a retried start after a node restart never runs a container twice.
        """
        _check_name("pod uid", uid)
        _check_name("container name", spec.name)
        if attempt < 0:
            raise ContainerError(f"attempt must be >= 0, not {attempt}")
        adir = self._attempt_dir(uid, spec.name, attempt)
        adir.parent.mkdir(parents=True, exist_ok=True)
        # Starting before the directory exists: a status read in between would otherwise find
        # an attempt with no record that nobody is starting, and write it down as lost.
        with self._lock:
            if adir in self._starting:
                raise ContainerError(f"container {spec.name} attempt {attempt} is starting")
            self._starting.add(adir)
        try:
            adir.mkdir()
        except FileExistsError:
            with self._lock:
                self._starting.discard(adir)
            raise ContainerError(
                f"container {spec.name} attempt {attempt} was started before"
            ) from None
        cgroup: Path | None = None
        process: subprocess.Popen[bytes] | None = None
        try:
            binds = shim.binds(
                [(Path("/etc/resolv.conf"), resolv_conf, False)]
                + [(m.path, m.source, m.read_only) for m in spec.mounts]
            )
            cgroup = self.cgroups.create(uid, spec.name, attempt, memory_limit=spec.memory_limit)
            tag = f"kvd-{secrets.token_hex(8)}"
            argv = shim.command(
                spec.argv, env=spec.env, attempt_dir=adir, netns_path=netns_path,
                private=spec.private, binds=binds, working_dir=spec.working_dir, cgroup=cgroup,
                tag=tag, tools=self._tools, user=spec.user, group=spec.group,
                read_only_root=spec.read_only_root,
            )  # fmt: skip
            started_at = datetime.now(UTC)
            process, ready = shim.spawn(argv, env=spec.env, log=adir / "log", timeout=START_TIMEOUT)
            if ready is None:
                why = shim.setup_failure(process, adir / "log")
                raise ContainerError(f"container {spec.name} did not start: {why}")
            ns, _, stat = ready.partition(" ")
            main = ProcessId.parse(stat)
            shim_id = ProcessId.of(process.pid)
            _write_json(adir / "record.json", {
                "attempt": attempt,
                "started_at": started_at.isoformat(),
                "shim": [process.pid, shim_id.start if shim_id else 0],
                "main": [main.pid, main.start],
                "cgroup": str(cgroup) if cgroup else None,
                "mount_namespace": None if ns == "-" else ns,
                "tag": tag,
            })  # fmt: skip
        except BaseException as exc:
            self._undo(adir, process, cgroup)
            if isinstance(exc, (shim.ShimError, cgroups.CgroupError, OSError)):
                raise ContainerError(f"container {spec.name}: {exc}") from exc
            raise
        finally:
            with self._lock:
                self._starting.discard(adir)
        with self._lock:
            self._children[process.pid] = (uid, process)
        log.info("container_started", uid=uid, container=spec.name, attempt=attempt, pid=main.pid)
        status = self.status_of_attempt(uid, spec.name, attempt)
        assert status is not None
        return status

    def _undo(
        self, adir: Path, process: subprocess.Popen[bytes] | None, cgroup: Path | None
    ) -> None:
        """Remove every trace of a start that failed."""
        if cgroup is not None:
            with contextlib.suppress(cgroups.CgroupError):
                self.cgroups.kill(cgroup)
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT)
        if cgroup is not None:
            with contextlib.suppress(cgroups.CgroupError):
                self.cgroups.remove(cgroup)
        shutil.rmtree(adir, ignore_errors=True)

    # --- observing ---------------------------------------------------------------------------

    def attempts(self, uid: str, name: str) -> list[int]:
        try:
            entries = os.listdir(self._container_dir(uid, name))
        except FileNotFoundError:
            return []
        return sorted(int(e) for e in entries if e.isdigit())

    def status(self, uid: str, name: str) -> ContainerStatus | None:
        """The latest attempt's status; None when the container never started."""
        attempts = self.attempts(uid, name)
        return self.status_of_attempt(uid, name, attempts[-1]) if attempts else None

    def status_of_attempt(self, uid: str, name: str, attempt: int) -> ContainerStatus | None:
        adir = self._attempt_dir(uid, name, attempt)
        record = _read_json(adir / "record.json")
        if record is None:
            if not adir.is_dir():
                return None
            if adir in self._starting:
                return ContainerStatus(
                    name=name, attempt=attempt, pid=None, started_at=datetime.now(UTC),
                    finished_at=None, exit_code=None, signal=None,
                )  # fmt: skip
            # Our process died between creating the attempt and recording its start.
            started = datetime.fromtimestamp(adir.stat().st_mtime, UTC)
            return self._finished(name, attempt, started, adir, record=None)
        started = datetime.fromisoformat(record["started_at"])
        if not (adir / "exit").exists():
            main = ProcessId(*record["main"])
            if ProcessId(*record["shim"]).alive() or main.alive():
                pid = main.pid if main.alive() else None
                return ContainerStatus(
                    name=name, attempt=attempt, pid=pid, started_at=started, finished_at=None,
                    exit_code=None, signal=None,
                )  # fmt: skip
        return self._finished(name, attempt, started, adir, record=record)

    def _finished(
        self,
        name: str,
        attempt: int,
        started: datetime,
        adir: Path,
        *,
        record: dict[str, Any] | None,
    ) -> ContainerStatus:
        exit_file = adir / "exit"
        if not exit_file.exists():
            # Neither the shim nor the program runs and no status was written: lost. Written
            # down once, so its time stays the same on every call.
            with contextlib.suppress(FileExistsError):
                _write_new(exit_file, _LOST)
        text = exit_file.read_text().strip()
        finished = datetime.fromtimestamp(exit_file.stat().st_mtime, UTC)
        if text == _LOST:
            return ContainerStatus(
                name=name, attempt=attempt, pid=None, started_at=started, finished_at=finished,
                exit_code=None, signal=None, reason="ContainerStatusUnknown",
            )  # fmt: skip
        code = int(text)
        signum = code - 128 if 128 < code < 128 + signal.NSIG else None
        reason = None
        cgroup = record.get("cgroup") if record else None
        if signum == signal.SIGKILL and cgroup and self.cgroups.oom_killed(Path(cgroup)):
            reason = "OOMKilled"
        return ContainerStatus(
            name=name, attempt=attempt, pid=None, started_at=started, finished_at=finished,
            exit_code=code, signal=signum, reason=reason,
        )  # fmt: skip

    def log_path(self, uid: str, name: str, attempt: int) -> Path:
        return self._attempt_dir(uid, name, attempt) / "log"

    def main_pid(self, uid: str, name: str) -> int | None:
        """The running program's pid (for nsenter -t and signals), None when it is not running."""
        main = self._main(uid, name)
        return main.pid if main is not None else None

    def memory_limit(self, uid: str, name: str) -> int | None:
        """The latest attempt's memory limit, read from its cgroup (None: unlimited, no cgroup)."""
        attempts = self.attempts(uid, name)
        record = (
            _read_json(self._attempt_dir(uid, name, attempts[-1]) / "record.json")
            if attempts
            else None
        )
        if record is None or not record.get("cgroup"):
            return None
        return self.cgroups.memory_limit(Path(record["cgroup"]))

    def pods(self) -> list[str]:
        return sorted(e.name for e in self.root.iterdir() if e.is_dir())

    def volume_dir(self, uid: str, volume: str) -> Path:
        """The emptyDir backing directory for `volume` (created)."""
        _check_name("pod uid", uid)
        _check_name("volume name", volume)
        path = self.root / uid / "volumes" / volume
        path.mkdir(parents=True, exist_ok=True)
        return path

    # --- stopping ----------------------------------------------------------------------------

    def terminate(self, uid: str, name: str) -> None:
        """SIGTERM to the container's main process, as a runtime's stop does."""
        main = self._main(uid, name)
        if main is not None:
            main.signal(signal.SIGTERM)

    def kill(self, uid: str, name: str | None = None) -> None:
        """SIGKILL every process of the container (or of every container of the pod), including
        those that left its session; returns once they are gone and their exit is recorded."""
        names = [name] if name is not None else self._names(uid)
        shims: list[tuple[Path, ProcessId]] = []
        for n in names:
            for attempt in self.attempts(uid, n):
                adir = self._attempt_dir(uid, n, attempt)
                record = _read_json(adir / "record.json")
                if record is None:
                    cgroup = self.cgroups.path(uid, n, attempt)
                    if cgroup is not None and cgroup.exists():
                        self.cgroups.kill(cgroup)
                    continue
                self._kill_record(record)
                shims.append((adir, ProcessId(*record["shim"])))
        # The shim writes the exit status as soon as its program is gone: wait for that, so a
        # status read right after kill() is final.
        deadline = time.monotonic() + STOP_TIMEOUT
        for adir, shim_id in shims:
            while not (adir / "exit").exists() and shim_id.alive() and time.monotonic() < deadline:
                time.sleep(0.005)
        self.reap()

    def _kill_record(self, record: dict[str, Any]) -> None:
        if record.get("cgroup"):
            self.cgroups.kill(Path(record["cgroup"]))
        elif record.get("mount_namespace"):
            proc.kill_tagged(record["mount_namespace"], record["tag"], timeout=STOP_TIMEOUT)
        ProcessId(*record["main"]).signal(signal.SIGKILL)

    def remove(self, uid: str) -> None:
        """Kill what is left of the pod, wait for its shims, remove its cgroups and files."""
        _check_name("pod uid", uid)
        pod_dir = self.root / uid
        self.kill(uid)
        for name in self._names(uid):
            for attempt in self.attempts(uid, name):
                record = _read_json(self._attempt_dir(uid, name, attempt) / "record.json") or {}
                if "shim" in record:
                    shim_id = ProcessId(*record["shim"])
                    if shim_id.alive():  # it lost its program: nothing else will end it
                        shim_id.signal(signal.SIGKILL)
                if record.get("cgroup"):
                    self.cgroups.remove(Path(record["cgroup"]))
        with self._lock:
            mine = [p for p, (u, _) in self._children.items() if u == uid]
            children = [self._children.pop(p)[1] for p in mine]
        for child in children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(STOP_TIMEOUT)
        pod_cgroup = self.cgroups.parent / uid if self.cgroups.parent else None
        if pod_cgroup is not None:
            self.cgroups.remove(pod_cgroup)
        shutil.rmtree(pod_dir, ignore_errors=True)
        log.info("pod_removed", uid=uid)

    def reap(self) -> set[str]:
        """Collect the exit of our own shims, so none stays a zombie (call it periodically);
        returns the uids of the pods one of whose shims has just exited — a shim exits when its
        container has, so this is how an exit is noticed without reading every status.

        Only the shims we started are waited for: a waitpid(-1) would steal the status of
        another thread's subprocess.
        """
        with self._lock:
            done = [pid for pid, (_, p) in self._children.items() if p.poll() is not None]
            return {self._children.pop(pid)[0] for pid in done}

    def names(self, uid: str) -> list[str]:
        """The names of the pod's containers that were ever started."""
        return self._names(uid)

    # --- paths -------------------------------------------------------------------------------

    def _main(self, uid: str, name: str) -> ProcessId | None:
        attempts = self.attempts(uid, name)
        if not attempts:
            return None
        record = _read_json(self._attempt_dir(uid, name, attempts[-1]) / "record.json")
        if record is None or (self._attempt_dir(uid, name, attempts[-1]) / "exit").exists():
            return None
        main = ProcessId(*record["main"])
        return main if main.alive() else None

    def _names(self, uid: str) -> list[str]:
        try:
            return sorted(os.listdir(self.root / uid / "containers"))
        except FileNotFoundError:
            return []

    def _container_dir(self, uid: str, name: str) -> Path:
        return self.root / uid / "containers" / name

    def _attempt_dir(self, uid: str, name: str, attempt: int) -> Path:
        return self._container_dir(uid, name) / str(attempt)


def _check_name(what: str, value: str) -> None:
    if not _NAME.match(value):
        raise ContainerError(
            f"{what} {value!r} is not a valid name (letters, digits, '.', '_', '-')"
        )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _write_new(path: Path, text: str) -> None:
    """Write `path` whole, unless it exists (FileExistsError): a rename would replace it."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(text)
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink()
