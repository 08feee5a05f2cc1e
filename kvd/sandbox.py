"""Run a process the way a container would see libvirt's directories: private to it.

A launcher assumes `/run/libvirt`, `/var/lib/libvirt`, `/var/cache/libvirt`, `/var/log/libvirt` and
`/etc/libvirt` are its own, as they are in its pod. On one host (tests, the local node) that holds
only inside a new mount namespace where those paths are fresh tmpfs mounts or binds of given host
directories; then two launchers never see each other's sockets, pid files or domain state.

Mechanism: util-linux's `unshare --mount --propagation private` execs a tiny `sh` script that mounts
the tmpfs and binds, then `exec "$@"`s the program, so the returned `Popen` *is* the program (its
pid, signals and exit code) and nothing runs between fork and exec in our own process (Python 3.11
has no `os.unshare`, and `preexec_fn` is unsafe once threads exist). Propagation private is
recursive, so nothing mounted inside ever shows on the host. Only the mount namespace is new: the
network, pid and user namespaces are the caller's. A failed mount ends the script with status 125
(as `env` and container runtimes do) and a message on stderr. Needs root (CAP_SYS_ADMIN).

Shared layer: stdlib only, no daemon imports.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvd import procfs

SETUP_FAILED = 125
"""Exit status of a sandbox whose mounts failed before the program started."""

LIBVIRT_DIRS: tuple[Path, ...] = (
    Path("/run/libvirt"),
    Path("/var/run/libvirt"),  # a symlink into /run on Debian: deduplicated, mounted once
    Path("/var/lib/libvirt"),
    Path("/var/cache/libvirt"),
    Path("/var/log/libvirt"),
    # libvirtd reads qemu.conf only from here (no flag moves it); the launcher writes its own, as
    # KubeVirt's virt-launcher does in its container, so this must not be the host's directory.
    Path("/etc/libvirt"),
)


class SandboxError(ValueError):
    """A sandbox that cannot be set up as specified."""


@dataclass(frozen=True, kw_only=True)
class SandboxSpec:
    """What the sandboxed process sees differently from the host.

    `tmpfs`: paths that get a fresh, empty tmpfs. `binds`: sandbox path → host path to bind there
    (a directory, or a file onto an existing file). Binds are mounted after the tmpfs mounts, so a
    bind may sit inside a tmpfs. A missing mountpoint directory is created first, on the host's
    filesystem unless a tmpfs holds it (an empty directory, such as /var/lib/libvirt, stays behind).
    Add `/tmp` or a run directory to `tmpfs`, or bind a host directory there, as the pod needs.
    """

    tmpfs: tuple[Path, ...] = LIBVIRT_DIRS
    binds: Mapping[Path, Path] = field(default_factory=dict)


def command(argv: Sequence[str], spec: SandboxSpec) -> list[str]:
    """The argv that runs `argv` inside a sandbox built from `spec`."""
    if not argv:
        raise SandboxError("empty command")
    unshare = shutil.which("unshare")
    if unshare is None:
        raise SandboxError("unshare(1) not found: install util-linux")
    return [
        unshare,
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        _script(spec),
        "kvd-sandbox",  # $0 of the script, shown in its error messages
        *argv,
    ]


def popen(argv: Sequence[str], spec: SandboxSpec, **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """Start `argv` in a sandbox; the `Popen` is the program itself once the mounts are done."""
    if os.geteuid() != 0:
        raise SandboxError("a sandbox needs root (it mounts in a new mount namespace)")
    return subprocess.Popen(command(argv, spec), **popen_kwargs)


def _script(spec: SandboxSpec) -> str:
    lines = ['fail() { echo "$0: $1" >&2; exit ' + str(SETUP_FAILED) + "; }"]
    for target in _ordered(_canonical(p) for p in spec.tmpfs):
        t = shlex.quote(str(target))
        lines.append(
            f"mkdir -p -- {t} && mount -t tmpfs -o mode=0755,nosuid,nodev kvd-sandbox {t}"
            f" || fail {shlex.quote(f'tmpfs on {target} failed')}"
        )
    binds = {_canonical(t): Path(s) for t, s in spec.binds.items()}
    for target in _ordered(binds):
        source = binds[target]
        if not source.is_absolute() or not source.exists():
            raise SandboxError(f"bind source {source} does not exist (for {target})")
        t, s = shlex.quote(str(target)), shlex.quote(str(source))
        # A directory target may be created; a file target must exist (creating it would leave
        # an empty file on the host when its parent is not a tmpfs).
        prepare = f"mkdir -p -- {t}" if source.is_dir() else f"test -f {t}"
        lines.append(
            f"{prepare} && mount --bind -- {s} {t}"
            f" || fail {shlex.quote(f'bind {source} on {target} failed')}"
        )
    lines.append('exec "$@"')
    return "\n".join(lines)


def _canonical(path: Path) -> Path:
    """The path the kernel will mount on: /var/run/libvirt is /run/libvirt on Debian."""
    if not path.is_absolute() or path == Path("/"):
        raise SandboxError(f"sandbox path must be absolute and not /: {path}")
    return Path(os.path.realpath(path))


def _ordered(paths: Iterable[Path]) -> list[Path]:
    """Unique paths, parents first, so a mount never hides one made just before it."""
    return sorted(set(paths), key=lambda p: (len(p.parts), str(p)))


# --- finding and ending everything a sandbox started ---------------------------------------------


def mount_namespace(pid: int) -> str:
    """The mount namespace of `pid`, e.g. 'mnt:[4026532301]'."""
    return os.readlink(f"/proc/{pid}/ns/mnt")


def wait_for_namespace(process: subprocess.Popen[Any], *, timeout: float = 5.0) -> str:
    """The sandbox's namespace, once the process has left ours (right after `popen` it may not)."""
    ours = mount_namespace(os.getpid())
    deadline = time.monotonic() + timeout
    while True:
        try:
            namespace = mount_namespace(process.pid)
        except FileNotFoundError:
            namespace = ours
        if namespace != ours:
            return namespace
        if process.poll() is not None:
            raise SandboxError(f"sandbox exited with {process.returncode} before it was set up")
        if time.monotonic() > deadline:
            raise SandboxError(f"pid {process.pid} not in a new mount namespace after {timeout}s")
        time.sleep(0.005)


def pids_in(namespace: str) -> list[int]:
    """Every live process in `namespace`: the sandboxed program and whatever it left behind
    (a daemonized QEMU is reparented to init but stays in the namespace)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/mnt") == namespace:
                found.append(int(entry))
        except OSError:  # gone meanwhile, or a kernel thread
            continue
    return found


def kill_all(namespace: str, *, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process in `namespace` until none is left; returns the pids it killed.

    The namespace must not be the caller's own (that would kill the caller and the whole host).
    """
    if namespace == mount_namespace(os.getpid()):
        raise SandboxError("refusing to kill every process in the caller's own mount namespace")
    try:
        return kill_until_gone(lambda: pids_in(namespace), timeout=timeout)
    except TimeoutError as exc:
        raise SandboxError(f"{exc} in {namespace}") from None


def kill_until_gone(find: Callable[[], list[int]], *, timeout: float) -> list[int]:
    """SIGKILL whatever `find()` returns until it returns nothing (a process forking meanwhile
    is found next time); returns every pid signalled. TimeoutError names the survivors."""
    killed: dict[int, int | None] = {}  # pid → its start time, so a reused pid is not waited on
    deadline = time.monotonic() + timeout
    while pids := find():
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes {pids} survive SIGKILL after {timeout}s")
        for pid in pids:
            started = procfs.start_time(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            killed.setdefault(pid, started)
        # A zombie has no namespace link any more, so it drops out of `pids_in` without being
        # reaped here (reaping would steal a `Popen`'s exit status from its owner).
        time.sleep(0.005)
    # A process that is exiting loses its namespace links before it has exited (it is still
    # tearing down its memory and files), so `find()` stops seeing it a moment early: wait
    # until each one is a zombie or gone, as the caller was promised.
    while survivors := [p for p, s in killed.items() if s is not None and procfs.running(p, s)]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes {survivors} survive SIGKILL after {timeout}s")
        time.sleep(0.005)
    return list(killed)
