"""The launcher's own libvirtd: configured, started, watched and stopped by the launcher.

The launcher runs where `/run/libvirt`, `/var/lib/libvirt`, `/var/cache/libvirt`, `/var/log/libvirt`
and `/etc/libvirt` are its own: its container, or a `kvd.sandbox` on one host. `Libvirtd`

- writes `libvirtd.conf` and `qemu.conf` under `<run_dir>/libvirt/` (each setting says why) and
  installs `qemu.conf` into `/etc/libvirt`, the only place libvirtd reads it from;
- seeds the QEMU capability cache (`capcache`) and starts `libvirtd` in the foreground, pinned to
  one CPU until it is ready, because libvirt's cache is valid only for the CPU it was probed on;
- waits, bounded, until the daemon *answers a call*: `libvirt.open` succeeds at once, but the first
  call blocks until the QEMU driver has initialised (8-9 s cold, ~0.1 s seeded);
- restarts it with backoff when it dies (`supervise`). A domain keeps running meanwhile: QEMU
  daemonizes away from libvirtd, and the next libvirtd reattaches from `/run/libvirt/qemu/`;
- stops it: SIGTERM, then SIGKILL after a bound. Domains keep running: the launcher ends them.

Debian 12 ships only the monolithic `libvirtd` (no `virtqemud`), so that is what runs. QEMU logs go
straight to files (`stdio_handler = "file"`) rather than through a virtlogd per launcher.
"""

from __future__ import annotations

import fcntl
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

import libvirt

from kvd import priority
from kvd.launcher import qemu_user
from kvd.launcher.capcache import CapabilityCache, default_store
from kvd.launcher.qemu_user import QEMU_USER
from kvd.logs import get_logger

log = get_logger(__name__)

_MARKER = "# Written by the kvd launcher for its private libvirtd (kvd/launcher/virt/libvirtd.py)."
_SUN_PATH_MAX = 107  # sockaddr_un.sun_path is 108 bytes with the NUL
_POLL = 0.01
_MIN_BACKOFF, _MAX_BACKOFF, _STABLE_SECONDS = 0.1, 10.0, 60.0


class LibvirtdError(RuntimeError):
    """The private libvirtd could not be started, or stopped answering."""


def libvirtd_conf(sock_dir: Path) -> str:
    return f"""{_MARKER}
# Sockets in the launcher's own directory, named by the URI: no client reaches another daemon by
# accident, and only root (0600 sockets in a 0700 directory) reaches this one.
unix_sock_dir = "{sock_dir}"
unix_sock_rw_perms = "0600"
unix_sock_ro_perms = "0600"
unix_sock_admin_perms = "0600"
# No polkit in a container, and the socket permissions above already are the access control.
auth_unix_rw = "none"
auth_unix_ro = "none"
# Never on the network (libvirtd listens only with --listen, which kvd never passes; said twice).
listen_tcp = 0
listen_tls = 0
# Warnings and errors only, to stderr, which the launcher appends to libvirtd.log beside this file.
log_outputs = "3:stderr"
"""


def qemu_conf() -> str:
    return f"""{_MARKER}
# QEMU runs unprivileged (kvd/launcher/qemu_user.py); each domain's DAC <seclabel> says so too.
# By name, so that QEMU also gets the user's supplementary groups (the group of /dev/kvm, say).
user = "{QEMU_USER}"
group = "{QEMU_USER}"
# The launcher, not libvirt, gives QEMU's user what it opens (qemu_user.py says why): libvirt
# would chown shared files such as the image store's backing files and the host's device node
# behind a block PVC, and chown them to root again when the domain stops. libvirt still owns
# its own per-domain directories (monitor socket, channels) to QEMU's user. No xattrs either.
dynamic_ownership = 0
remember_owner = 0
# No AppArmor/SELinux profiles exist for the launcher's paths (no virt-aa-helper profiles, and
# AppArmor is not enabled on kvd's hosts); the pod is the confinement.
security_driver = "none"
# QEMU writes its log file itself: a virtlogd per launcher would be another daemon to start,
# supervise and pay memory for, for log rotation a short-lived VM log does not need.
stdio_handler = "file"
# No per-domain mount namespace with its own /dev: the launcher's namespace is already private, it
# costs time at every start, and keeping QEMU in the pod's namespace lets the node find and end it.
namespaces = []
# cgroups belong to the pod (kubelet or the local node); libvirt's own machine cgroups would fight
# the runtime inside a container.
cgroup_controllers = []
"""


class Libvirtd:
    """One private libvirtd, for one launcher. Not reentrant: one owner calls start/stop."""

    def __init__(
        self,
        run_dir: Path,
        *,
        caps_store: Path | None = None,
        binary: Path | None = None,
        etc_dir: Path = Path("/etc/libvirt"),
        cache_dir: Path = Path("/var/cache/libvirt"),
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.dir = run_dir / "libvirt"
        self.socket = self.dir / "sock" / "libvirt-sock"
        self.uri = f"qemu:///system?socket={self.socket}"
        self.binary = binary or Path(shutil.which("libvirtd") or "/usr/sbin/libvirtd")
        self._etc_dir = etc_dir
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        # The lowest CPU we may use: stable for this pod, so the seeded cache matches it.
        self._cpu = min(os.sched_getaffinity(0))
        self._caps = CapabilityCache(
            caps_store or default_store(), cache_dir=cache_dir, libvirtd=self.binary, cpu=self._cpu
        )
        self._lock = threading.Lock()  # one start, restart or stop at a time
        self._proc: subprocess.Popen[bytes] | None = None
        self._launched_at = 0.0
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restarts = 0
        self.seeded = False  # the last start used a seeded capability cache that libvirt accepted
        self.caps_key: str | None = None  # the capability store entry the last start used or made
        self.start_seconds: float | None = None

    @property
    def pid_file(self) -> Path:
        return self.dir / "libvirtd.pid"

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def ready(self) -> bool:
        """Started and answering; False while a restart is under way and after `stop`."""
        return self._ready.is_set()

    def start(self) -> None:
        """Write the configuration, start the daemon and wait until it answers."""
        try:
            qemu_user.lookup()
        except qemu_user.QemuUserError as e:
            raise LibvirtdError(str(e)) from None
        self._write_config()
        self._stopping.clear()
        with self._lock:
            self._launch()

    def connect(self) -> libvirt.virConnect:
        """A new connection to this daemon (each owner closes its own)."""
        return libvirt.open(self.uri)

    def supervise(self) -> None:
        """Restart the daemon whenever it dies, until `stop`; returns at once."""
        if self._proc is None:
            raise LibvirtdError("supervise() needs a started daemon: call start() first")
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="libvirtd-watch", daemon=True)
            self._watcher.start()

    def wait_ready(self, timeout: float) -> None:
        if not self._ready.wait(timeout):
            raise LibvirtdError(f"libvirtd not ready after {timeout}s (restarts: {self.restarts})")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_timeout`. Running domains are left alone."""
        self._stopping.set()
        with self._lock:  # a restart in progress notices `_stopping` within a poll interval
            proc = self._proc
            if proc is not None and proc.poll() is None:
                self._end(proc)
        self._ready.clear()
        if self._watcher is not None:
            self._watcher.join(timeout=self._stop_timeout)
            if self._watcher.is_alive():
                log.warning("libvirtd_watch_not_stopped", waited=self._stop_timeout)
            self._watcher = None

    def __enter__(self) -> Libvirtd:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- internals -------------------------------------------------------------------------------

    def _write_config(self) -> None:
        sock_dir = self.socket.parent
        longest = sock_dir / "libvirt-admin-sock"
        if len(os.fsencode(longest)) > _SUN_PATH_MAX:
            raise LibvirtdError(f"socket path {longest} is longer than {_SUN_PATH_MAX} bytes")
        if '"' in str(sock_dir):
            raise LibvirtdError(f'run directory {sock_dir} contains a " character')
        sock_dir.mkdir(parents=True, exist_ok=True)
        sock_dir.chmod(0o700)
        # Root's alone: QEMU's user may pass through the run dir above, not read the daemon's log.
        self.dir.chmod(0o700)
        (self.dir / "libvirtd.conf").write_text(libvirtd_conf(sock_dir))
        (self.dir / "qemu.conf").write_text(qemu_conf())
        installed = self._etc_dir / "qemu.conf"
        if installed.exists() and not installed.read_text().startswith(_MARKER):
            # Outside its sandbox the launcher would overwrite the host's libvirt configuration.
            raise LibvirtdError(
                f"{installed} exists and was not written by kvd: is the launcher running outside "
                "its container or kvd sandbox (private /etc/libvirt)?"
            )
        self._etc_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.dir / "qemu.conf", installed)

    def _launch(self) -> None:
        """Start a daemon and wait for it; the caller holds `_lock`."""
        self._clear_stale_sockets()
        seeding = self._caps.seed()
        taskset = shutil.which("taskset") or "/usr/bin/taskset"
        argv = [taskset, "--cpu-list", str(self._cpu), str(self.binary)]
        argv += ["--config", str(self.dir / "libvirtd.conf")]
        # The default pid file, /run/libvirtd.pid, is outside the private directories.
        argv += ["--pid-file", str(self.pid_file)]
        started = time.monotonic()
        with open(self.dir / "libvirtd.log", "ab") as output:
            try:
                # Own session: a Ctrl-C meant for the launcher must not reach libvirtd behind its
                # back; the launcher stops it.
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    start_new_session=True,
                )
            except OSError as e:
                raise LibvirtdError(f"cannot run {' '.join(argv)}: {e}") from e
        self._proc, self._launched_at = proc, started
        # its session's group weighs as much as the launcher's (priority.py)
        raised = priority.set_group(proc.pid, os.getpriority(os.PRIO_PROCESS, 0))
        log.info(
            "libvirtd_starting",
            pid=proc.pid,
            cpu=self._cpu,
            seeded=seeding.seeded,
            autogroup_raised=raised,
        )
        try:
            self._wait_answering(proc, started)
        except BaseException:
            self._end(proc)
            raise
        _unpin(proc.pid)
        probed = self._caps.probed(seeding)
        if probed:
            self._caps.store_back(seeding)
        self.seeded = seeding.seeded and not probed
        self.caps_key = seeding.key
        self.start_seconds = time.monotonic() - started
        self._ready.set()
        log.info(
            "libvirtd_ready",
            pid=proc.pid,
            seconds=round(self.start_seconds, 3),
            seeded=self.seeded,
            probed_qemu=probed,
            restarts=self.restarts,
        )

    def _clear_stale_sockets(self) -> None:
        """Remove a dead daemon's sockets, so that the socket existing means the new one bound it
        (connecting to a stale one fails, and libvirt prints every failure on stderr). Refuse if
        a live libvirtd holds the pid file: its sockets are not stale, and it is not ours."""
        pid_file = self.pid_file
        if pid_file.exists():
            with open(pid_file, "rb+") as f:
                try:  # libvirtd holds a write lock on the pid file's first byte while it lives
                    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
                except OSError:
                    holder = f.read().decode(errors="replace").strip()
                    raise LibvirtdError(
                        f"another libvirtd (pid {holder}) already serves {self.dir}"
                    ) from None
                fcntl.lockf(f, fcntl.LOCK_UN, 1, 0)
        for name in ("libvirt-sock", "libvirt-sock-ro", "libvirt-admin-sock"):
            (self.socket.parent / name).unlink(missing_ok=True)

    def _wait_answering(self, proc: subprocess.Popen[bytes], started: float) -> None:
        deadline = started + self._start_timeout
        last_error = "its socket never appeared"
        while True:
            if self._stopping.is_set():
                raise LibvirtdError("stopped while starting")
            status = proc.poll()
            if status is not None:
                raise LibvirtdError(
                    f"libvirtd exited with status {status} while starting: {self._log_tail()}"
                )
            if time.monotonic() > deadline:
                raise LibvirtdError(
                    f"libvirtd did not answer within {self._start_timeout}s ({last_error}): "
                    f"{self._log_tail()}"
                )
            if self.socket.exists():
                error = self._answers(deadline)
                if error is None:
                    return
                last_error = error
            time.sleep(_POLL)

    def _answers(self, deadline: float) -> str | None:
        """None when the daemon answered getVersion, else why not. The call runs in a thread so
        that a daemon which accepts but never answers cannot block us past the deadline."""
        result: queue.Queue[str | None] = queue.Queue()

        def call() -> None:
            try:
                conn = libvirt.open(self.uri)
                try:
                    conn.getVersion()
                finally:
                    conn.close()
                result.put(None)
            except libvirt.libvirtError as e:
                result.put(str(e))

        threading.Thread(target=call, name="libvirtd-probe", daemon=True).start()
        while time.monotonic() < deadline and not self._stopping.is_set():
            try:
                return result.get(timeout=0.05)
            except queue.Empty:
                continue
        return "no answer to getVersion"  # the thread ends when the daemon is killed

    def _end(self, proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        try:
            proc.wait(self._stop_timeout)
        except subprocess.TimeoutExpired:
            log.warning("libvirtd_kill", pid=proc.pid, after=self._stop_timeout)
            proc.kill()
            proc.wait(self._stop_timeout)
        log.info("libvirtd_stopped", pid=proc.pid, status=proc.returncode)

    def _watch(self) -> None:
        delay = _MIN_BACKOFF
        while not self._stopping.is_set():
            proc = self._proc
            if proc is None:
                return
            status = proc.wait()
            if self._stopping.is_set():
                return
            self._ready.clear()
            ran = time.monotonic() - self._launched_at
            if ran > _STABLE_SECONDS:
                delay = _MIN_BACKOFF
            log.warning(
                "libvirtd_exited", pid=proc.pid, status=status, ran=round(ran, 1), restart_in=delay
            )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, _MAX_BACKOFF)
            with self._lock:
                if self._stopping.is_set():
                    return
                self.restarts += 1
                try:
                    self._launch()
                except LibvirtdError as e:  # self._proc is dead: the next wait returns at once
                    log.error("libvirtd_restart_failed", error=str(e), restarts=self.restarts)

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = (self.dir / "libvirtd.log").read_text(errors="replace")
        except OSError:
            return "(no libvirtd.log)"
        return " | ".join(text.strip().splitlines()[-lines:])


def _unpin(pid: int) -> None:
    """Give every libvirtd thread the launcher's CPUs back once the cache has been validated.

    Threads started meanwhile inherit the pin from their creator, so repeat until none is pinned.
    """
    allowed = os.sched_getaffinity(0)
    for _ in range(5):
        pinned = 0
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except FileNotFoundError:
            return
        for tid in tids:
            try:
                if os.sched_getaffinity(tid) != allowed:
                    os.sched_setaffinity(tid, allowed)
                    pinned += 1
            except ProcessLookupError:
                continue
        if not pinned:
            return
