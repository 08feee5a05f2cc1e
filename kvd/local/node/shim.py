"""The two tiny `sh` scripts that run a container: a shim that outlives us, and the setup inside.

The argv `command()` builds is, exec by exec:

    sh -c SHIM kvd-shim <attempt dir>        our child, in a new session; stays the program's parent
      └ (forks) nsenter --net=<pod netns>    the pod's network namespace
          unshare --mount --propagation private
          sh -c SETUP kvd-container           joins the cgroup, mounts, cd, says "ready", then
          env --default-signal -u PWD …       signals default, the environment exactly the spec's
          <argv>                              the container's program: the shim's direct child

The shim holds no pipe to us and shares nothing with our lifetime: when the node is killed it
keeps waiting, forwards SIGTERM/SIGINT to the program, and writes the program's exit status to
`<attempt dir>/exit` (temp file + rename, so a reader never sees half of it). A shell reports a
program killed by signal n as 128+n, the kubelet's convention too. It is `dash`, about 1 MB per
container.

Readiness travels on fd 3, a pipe handed to the shim as its stdin (the shim moves it to fd 3 and
reads stdin from /dev/null): SETUP writes `ready <mount ns> <its /proc/self/stat>` after the
mounts and closes it, so `Containers.start` learns the program's pid and start time and that the
namespaces are in place, and gets EOF with no line when setup failed (status 125, the reason on
stderr, which is the container's log).

Inside the new mount namespace: the host's /run/netns bind mounts detached (a private copy would
keep other pods' network namespaces alive); every bind source bound onto a scratch tmpfs stacked
on /sys first (a source under /run or /tmp would be hidden once those get their tmpfs); tmpfs on
the private paths; the staged binds moved to their targets (parents first, read-only ones
remounted); the scratch tmpfs dropped and a fresh sysfs mounted (so /sys/class/net shows the
pod's interfaces, as `ip netns exec` does).
Mountpoints that do not exist are created: directories with `mkdir -p`, files and device nodes as
empty files — on the host's filesystem unless a tmpfs or bind holds them, so keep such paths
under a private path or a volume.
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import stat
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kvd import priority, sandbox

SETUP_FAILED = sandbox.SETUP_FAILED
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
WORLD_WRITABLE = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))

SHIM = """\
d=$1; shift
again= pending= child=
fwd() { again=1; if [ -n "$child" ]; then kill -"$1" "$child" 2>/dev/null; else pending=$1; fi; }
trap 'fwd TERM' TERM
trap 'fwd INT' INT
exec 3>&0 </dev/null
"$@" &
child=$!
exec 3>&-
[ -z "$pending" ] || kill -"$pending" "$child" 2>/dev/null
# 2>/dev/null: dash would print "Killed" into the container's log.
wait "$child" 2>/dev/null; s=$?
# A trapped signal interrupts wait (status 128+n) while the program runs on: wait again.
while [ -n "$again" ]; do again=; wait "$child" 2>/dev/null; t=$?; [ "$t" -eq 127 ] || s=$t; done
echo "$s" > "$d/exit.tmp" && {mv} -f -- "$d/exit.tmp" "$d/exit"
"""


class ShimError(ValueError):
    """A container whose mounts cannot be set up as specified."""


@dataclass(frozen=True)
class Bind:
    target: Path
    source: Path
    read_only: bool


@dataclass(frozen=True)
class Tools:
    """Absolute paths of what the scripts run: the container's PATH must not decide."""

    sh: str
    mv: str
    mkdir: str
    mount: str
    umount: str
    nsenter: str
    unshare: str
    env: str
    readlink: str
    setpriv: str
    nice: str

    @classmethod
    def find(cls) -> Tools:
        found = {}
        for name in (
            "sh",
            "mv",
            "mkdir",
            "mount",
            "umount",
            "nsenter",
            "unshare",
            "env",
            "readlink",
            "setpriv",
            "nice",
        ):
            path = shutil.which(name, path=SYSTEM_PATH)
            if path is None:
                raise ShimError(f"{name} not found on {SYSTEM_PATH}: install util-linux/coreutils")
            found[name] = path
        return cls(**found)


def command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    attempt_dir: Path,
    netns_path: Path,
    private: Iterable[Path],
    binds: Iterable[Bind],
    working_dir: Path | None,
    cgroup: Path | None,
    tag: str,
    tools: Tools,
    user: int | None = None,
    group: int | None = None,
    read_only_root: bool = False,
) -> list[str]:
    """The argv that runs `argv` as a container (see the module docstring); with `user`, the
    program runs as that uid (and `group`, default the same number) with no supplementary
    groups and no capabilities, through setpriv, after the mounts are made as root."""
    if not argv:
        raise ShimError("empty command")
    # dash exports PWD (and OLDPWD after cd); the program gets them only if the spec has them.
    cleanup: list[str] = []
    for var in ("PWD", "OLDPWD"):
        cleanup += [f"{var}={env[var]}"] if var in env else ["-u", var]
    as_user: list[str] = []
    if user is not None or group is not None:
        uid = 0 if user is None else user
        gid = uid if group is None else group
        as_user = [tools.setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
    # A node raised over the guests (kvd/priority.py) gives its containers the usual weight:
    # threads inherit nice, and a container's program is not the node's control path.
    renice = priority.as_usual(tools.nice)
    return [
        tools.sh, "-c", SHIM.replace("{mv}", shlex.quote(tools.mv)), "kvd-shim", str(attempt_dir),
        tools.nsenter, f"--net={netns_path}", "--",
        tools.unshare, "--mount", "--propagation", "private", "--",
        tools.sh, "-c", setup_script(
            private=private, binds=binds, working_dir=working_dir, cgroup=cgroup, tag=tag,
            tools=tools, read_only_root=read_only_root,
        ), "kvd-container",
        # The shim's `&` left SIGINT/SIGQUIT ignored, and a shell cannot undo that: env can.
        *renice, tools.env, "--default-signal", *cleanup, "--", *as_user, *argv,
    ]  # fmt: skip


def spawn(
    argv: list[str], *, env: Mapping[str, str], log: Path, timeout: float
) -> tuple[subprocess.Popen[bytes], str | None]:
    """Start the shim (stdout+stderr appended to `log`) and wait for SETUP's ready line, without
    its `ready ` prefix; None when setup ended without one (`setup_failure` says why)."""
    log_fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    r, w = os.pipe()
    try:
        process = subprocess.Popen(
            argv, stdin=w, stdout=log_fd, stderr=log_fd, env=dict(env), cwd="/",
            start_new_session=True, close_fds=True,
        )  # fmt: skip
    finally:
        os.close(w)
        os.close(log_fd)
    data = b""
    try:
        deadline = time.monotonic() + timeout
        while chunk := _read(r, deadline - time.monotonic()):
            data += chunk
    except BaseException:
        process.kill()  # our own child: the pid cannot have been reused
        process.wait()
        raise
    finally:
        os.close(r)
    line = data.decode(errors="replace").strip()
    return process, (line.removeprefix("ready ") if line.startswith("ready ") else None)


def _read(fd: int, left: float) -> bytes:
    if left <= 0 or not select.select([fd], [], [], left)[0]:
        raise ShimError("container setup did not finish in time")
    return os.read(fd, 4096)


def setup_failure(process: subprocess.Popen[bytes], log: Path, *, timeout: float = 10.0) -> str:
    """Why setup failed: its status and the end of the log (its stderr)."""
    try:
        code: int | None = process.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
    text = log.read_text(errors="replace").strip()[-2000:]
    return f"setup status {code}: {text or 'no output'}"


def setup_script(
    *,
    private: Iterable[Path],
    binds: Iterable[Bind],
    working_dir: Path | None,
    cgroup: Path | None,
    tag: str,
    tools: Tools,
    read_only_root: bool = False,
) -> str:
    """`tag` names the sysfs and tmpfs mounts: it marks the namespace as this attempt's."""
    q = shlex.quote
    mkdir, mount = q(tools.mkdir), q(tools.mount)
    lines = ['fail() { echo "kvd-container: $1" >&2; exit ' + str(SETUP_FAILED) + "; }"]
    if cgroup is not None:
        # First, before anything forks: every process of the container starts inside.
        procs = cgroup / "cgroup.procs"
        lines.append(f"echo $$ > {q(str(procs))} || fail {q(f'cannot join cgroup {cgroup}')}")
    # Our private copy of the host's /run/netns mounts would keep other pods' netns alive (and
    # /run's tmpfs would only hide them).
    lines.append(f"{q(tools.umount)} -l /run/netns 2>/dev/null")
    by_target = {b.target: b for b in binds}
    ordered = _ordered(by_target)
    # Sources first, while none is hidden yet (one under /run or /tmp would be, once those get
    # their tmpfs): each onto a scratch tmpfs stacked on /sys, moved into place afterwards.
    lines.append(
        f"{mount} -t tmpfs -o mode=0700 kvd-stage /sys || fail 'staging tmpfs on /sys failed'"
    )
    for i, target in enumerate(ordered):
        b = by_target[target]
        s = q(str(b.source))
        if b.source.is_dir():
            step = f"{mkdir} /sys/{i} && {mount} --rbind -- {s} /sys/{i}"
        else:
            step = f": > /sys/{i} && {mount} --bind -- {s} /sys/{i}"
        lines.append(f"{{ {step}; }} || fail {q(f'bind of {b.source} failed')}")
    for target in _ordered(canonical(p) for p in private):
        t = q(str(target))
        mode = "1777" if target in WORLD_WRITABLE else "0755"
        lines.append(
            f"{mkdir} -p -- {t} && {mount} -t tmpfs -o mode={mode},nosuid,nodev {q(tag)} {t}"
            f" || fail {q(f'tmpfs on {target} failed')}"
        )
    for i, target in enumerate(ordered):
        b = by_target[target]
        t = q(str(target))
        if b.source.is_dir():
            step = f"{mkdir} -p -- {t}"
        else:
            step = f"{{ [ -e {t} ] || {{ {mkdir} -p -- {q(str(target.parent))} && : > {t}; }}; }}"
        step += f" && {mount} --move /sys/{i} {t}"
        if b.read_only:
            step += f" && {mount} -o remount,bind,ro -- {t}"
        lines.append(f"{{ {step}; }} || fail {q(f'mounting {b.source} on {target} failed')}")
    lines += [
        f"{q(tools.umount)} /sys || fail 'removing the staging tmpfs failed'",
        # A sysfs mounted from inside the pod's netns lists the pod's interfaces in /sys/class/net.
        f"{mount} -t sysfs -o nosuid,nodev,noexec {q(tag)} /sys || fail 'sysfs on /sys failed'",
    ]
    if read_only_root:
        # Only this namespace's view of /: the mounts on top of it keep their own flags.
        lines.append(
            f"{mount} -o remount,bind,ro / || fail 'making the root filesystem read-only failed'"
        )
    if working_dir is not None:
        wd = str(working_dir)
        lines.append(f"cd -- {q(wd)} || fail {q(f'working directory {wd} is not there')}")
    ns = "-" if cgroup is not None else f"$({q(tools.readlink)} /proc/self/ns/mnt)"
    lines += [
        "read -r stat < /proc/self/stat",
        f'echo "ready {ns} $stat" >&3',
        "exec 3>&-",
        'exec "$@"',
    ]
    return "\n".join(lines)


def binds(mounts: Iterable[tuple[Path, Path, bool]]) -> list[Bind]:
    """Binds for (container path, host source, read only), checked: one per target, sources real."""
    found: dict[Path, Bind] = {}
    for path, source, read_only in mounts:
        target = canonical(path)
        if not source.is_absolute():
            raise ShimError(f"mount source must be an absolute host path: {source} (for {path})")
        try:
            mode = source.stat().st_mode
        except OSError as exc:
            raise ShimError(f"mount source {source} for {path}: {exc.strerror}") from None
        if not (
            stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISBLK(mode) or stat.S_ISCHR(mode)
        ):
            raise ShimError(f"mount source {source} for {path} is not a directory, file or device")
        if target in found:
            raise ShimError(f"two mounts at {path}")
        found[target] = Bind(target=target, source=source, read_only=read_only)
    return list(found.values())


def canonical(path: Path) -> Path:
    """The path the kernel mounts on: /var/run/libvirt is /run/libvirt on Debian."""
    if not path.is_absolute() or path == Path("/"):
        raise ShimError(f"container path must be absolute and not /: {path}")
    return Path(os.path.realpath(path))


def _ordered(paths: Iterable[Path]) -> list[Path]:
    """Unique paths, parents first, so a mount never hides one made just before it."""
    return sorted(set(paths), key=lambda p: (len(p.parts), str(p)))
