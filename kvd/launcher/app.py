"""The launcher process: wire the parts, serve, and end when the domain ends.

Life of a launcher: start the private libvirtd, serve LauncherService, wait for DefineDomain
(bounded), run the domain, exit after it is gone — with a code that tells the pod's phase:

  0  the guest shut down (by itself, or after a requested shutdown)
  1  the domain crashed, failed to start, or vanished
  2  the domain was killed: the grace period ran out after SIGTERM, or KillDomain
  3  no DefineDomain arrived in time, or SIGTERM came before the domain ever ran
  4  the launcher could not start (libvirtd, socket)

On SIGTERM it records the shutdown request (domain metadata and an event on the stream),
presses the ACPI power button, re-sends it every few seconds, and kills the domain when the
grace period has passed.

QEMU, the process that runs guest code, runs as the unprivileged `libvirt-qemu` with no
capabilities (qemu_user.py: how its files are prepared). What in the launcher pod still runs as
root, and why:

- this process: it creates the bridge and the tap (owned by QEMU's user), moves eth0 onto the
  bridge, changes MACs and the pod netns's sysctls and loads the masquerade nftables table
  (CAP_NET_ADMIN), runs udhcpd on port 67 (CAP_NET_BIND_SERVICE), gives files to QEMU's user
  (CAP_CHOWN, CAP_FOWNER), makes QEMU's own node of a block PVC (CAP_MKNOD), reads the pod's
  inputs whoever owns them (CAP_DAC_OVERRIDE), installs qemu.conf in /etc/libvirt, and ends a
  dead launcher's root libvirtd;
- libvirtd: the privileged QEMU driver (`qemu:///system`) is what starts QEMU as another user
  (CAP_SETUID, CAP_SETGID), opens the tap (CAP_NET_ADMIN) and the log, pid and console socket
  and hands QEMU the descriptors, and makes the per-domain directories under
  /var/lib/libvirt/qemu (each launcher's own tmpfs) QEMU's user's. Debian 12 ships only the
  monolithic libvirtd; a session daemon run as QEMU's user (as KubeVirt's non-root launcher
  runs virtqemud) is the next step;
- udhcpd and nft: children of this process, with its privileges, in the pod's netns only;
- the pod's `guest-console-log` container, which reads the console log (QEMU's user's, 0600).
"""

from __future__ import annotations

import contextlib
import enum
import json
import queue
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from kvd import logs
from kvd.launcher import emulation, orphans, ovmf, qemu_user, storage
from kvd.launcher.console import ConsoleRelay
from kvd.launcher.errors import LauncherError
from kvd.launcher.events import Dispatcher
from kvd.launcher.model import Event, Identity
from kvd.launcher.network import PodNetwork, links
from kvd.launcher.qemu_user import QemuUser, QemuUserError
from kvd.launcher.server import create_server
from kvd.launcher.service import LauncherServicer
from kvd.launcher.virt.connection import Connection, Notice, start_event_loop
from kvd.launcher.virt.libvirtd import Libvirtd
from kvd.launcher.virt.manager import DomainManager, Emulation, Paths
from kvd.rpc.launcher.v1 import domain_pb2 as pb

log = logs.get_logger(__name__)
SOCKET_NAME = "launcher.sock"
# How the domain ended, left in the run dir (the handler's: kvd/handler/agent.py reads it) for a
# handler whose watch missed the last event: restarted, or reconnecting as the launcher exited.
ENDED_NAME = "ended.json"
SHUTDOWN_RESEND_SECONDS = 5.0


class ExitCode(enum.IntEnum):
    SHUT_DOWN = 0
    CRASHED = 1
    KILLED = 2
    NEVER_RAN = 3
    STARTUP_FAILED = 4


@dataclass(frozen=True, kw_only=True)
class Settings:
    identity: Identity
    run_dir: Path
    container_disk_dir: Path
    pvc_dir: Path
    host_disk_dir: Path
    pvc_capacities: Mapping[str, int] = field(default_factory=dict)  # claim → bytes
    kernel_boot_dir: Path
    grace_period_seconds: int
    allow_emulation: bool
    define_timeout_seconds: float = 300.0
    pod_network: bool = False  # in a pod's own netns, whose eth0 the guest may take over


class Lifecycle:
    """What the process waits for: a stop request, and the end of a domain that ran."""

    def __init__(self) -> None:
        self.stop_requested = threading.Event()
        self.ended = threading.Event()
        self.ran = False
        self.end_state: pb.DomainState | None = None
        self.end_reason: pb.DomainStateReason | None = None
        self.wake = threading.Event()

    def on_event(self, event: Event) -> None:
        snap = event.snapshot
        if self.ended.is_set():
            return  # the first end decides the exit code, not the cleanup after it
        if snap.state in (pb.DOMAIN_STATE_RUNNING, pb.DOMAIN_STATE_PAUSED, pb.DOMAIN_STATE_BLOCKED):
            self.ran = True
        elif self.ran and (
            snap.state in (pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_CRASHED) or not snap.defined
        ):
            self.end_state, self.end_reason = snap.state, snap.reason
            self.ended.set()
        self.wake.set()

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal_received", signal=signal.Signals(signum).name)
        self.stop_requested.set()
        self.wake.set()

    def exit_code(self) -> ExitCode:
        if not self.ran:
            return ExitCode.NEVER_RAN
        if self.end_reason == pb.DOMAIN_STATE_REASON_SHUTDOWN:
            return ExitCode.SHUT_DOWN
        if self.end_reason == pb.DOMAIN_STATE_REASON_DESTROYED:
            return ExitCode.KILLED
        return ExitCode.CRASHED


def run(settings: Settings) -> int:
    identity = settings.identity
    with logs.bound(vmi=f"{identity.namespace}/{identity.name}", uid=identity.uid):
        return _run(settings)


def _run(settings: Settings) -> int:
    started = time.monotonic()
    paths = Paths(
        run_dir=settings.run_dir,
        container_disk_dir=settings.container_disk_dir,
        pvc_dir=settings.pvc_dir,
        pvc_capacities=settings.pvc_capacities,
        host_disk_dir=settings.host_disk_dir,
        kernel_boot_dir=settings.kernel_boot_dir,
    )
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        qemu = _qemu_user(paths.run_dir)
    except QemuUserError as exc:
        log.error("qemu_user_unusable", error=str(exc))
        return ExitCode.STARTUP_FAILED
    # A socket left by a killed launcher would be visible without answering.
    (paths.run_dir / SOCKET_NAME).unlink(missing_ok=True)
    (paths.run_dir / ENDED_NAME).unlink(missing_ok=True)  # and so would its end
    daemon = Libvirtd(run_dir=paths.run_dir)
    if orphans.reap(paths.run_dir, libvirtd_pid_file=daemon.pid_file):
        storage.cleanup(paths.run_dir)  # its disks belonged to the dead launcher's run
        ovmf.cleanup(paths.run_dir)  # and so did its NVRAM
    kvm = _kvm_for(qemu, emulation.check_kvm())
    log.info("kvm_checked", usable=kvm.usable, reason=kvm.reason)
    emulated = Emulation(
        emulated=not kvm.usable, reason=kvm.reason, allowed=settings.allow_emulation
    )
    lifecycle = Lifecycle()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lifecycle.on_signal)

    try:
        daemon.start()
    except Exception as exc:
        log.error("libvirtd_start_failed", error=str(exc))
        return ExitCode.STARTUP_FAILED
    notices: queue.Queue[Notice] = queue.Queue()
    start_event_loop()
    connection = Connection(daemon.uri, notices)
    console = ConsoleRelay(paths.console_socket)
    network = PodNetwork(
        paths.run_dir,
        enabled=settings.pod_network,
        tap_owner=links.TapOwner(uid=qemu.uid, gid=qemu.gid),
    )
    manager = DomainManager(
        connection,
        identity=settings.identity,
        paths=paths,
        emulation=emulated,
        network=network,
        firmware=ovmf.discover(),
        qemu=qemu,
        on_started=console.attach,
    )
    dispatcher = Dispatcher(notices, manager.snapshot, listeners=(lifecycle.on_event,))
    server = None
    try:
        daemon.supervise()
        dispatcher.start()
        servicer = LauncherServicer(manager, dispatcher, console)
        server = create_server(paths.run_dir / SOCKET_NAME, servicer)
        log.info(
            "launcher_ready",
            socket=str(server.socket_path),
            seconds=round(time.monotonic() - started, 3),
            emulated=emulated.emulated,
        )
        _wait(settings, lifecycle, manager, servicer, dispatcher)
        _record_end(paths.run_dir, lifecycle)
        console.detach()
        _cleanup(manager)
        code = lifecycle.exit_code()
        log.info("launcher_exiting", code=code.name, exit_code=int(code))
        return code
    finally:
        if server is not None:
            server.stop(grace=1.0)  # watchers get the final event before the socket goes
        dispatcher.stop()
        connection.close()
        daemon.stop()
        network.close()  # the DHCP server, the NAT rules; the links end with the pod's netns


def _record_end(run_dir: Path, lifecycle: Lifecycle) -> None:
    """Leave how the domain ended beside the socket, written whole (rename), before the socket
    goes: the handler's watch may have missed the event that said it."""
    state, reason = lifecycle.end_state, lifecycle.end_reason
    if state not in (pb.DOMAIN_STATE_SHUTOFF, pb.DOMAIN_STATE_CRASHED) or reason is None:
        return  # it never ran, or it was undefined: nothing a phase could follow from
    ended = {"state": pb.DomainState.Name(state), "reason": pb.DomainStateReason.Name(reason)}
    partial = run_dir / f".{ENDED_NAME}.tmp"
    try:
        partial.write_text(json.dumps(ended))
        partial.replace(run_dir / ENDED_NAME)
    except OSError as exc:  # the watch is still the first way the handler learns it
        log.warning("domain_end_not_recorded", error=str(exc))


def _qemu_user(run_dir: Path) -> QemuUser:
    """QEMU's user, once the run dir is a place it can pass through and nobody else can: owned
    root:<QEMU's group>, 0710, and every directory above it searchable by that user."""
    qemu = qemu_user.lookup()
    qemu.own_directory(run_dir)
    blocked = qemu.blocking_directory(run_dir / SOCKET_NAME)
    if blocked is not None:
        raise QemuUserError(
            f"QEMU runs as {qemu} and must reach its files in the run dir {run_dir}, but "
            f"cannot pass through {blocked} (mode {blocked.stat().st_mode & 0o7777:o}); "
            "give the run dir a path every user may search"
        )
    log.info("qemu_user", name=qemu.name, uid=qemu.uid, gid=qemu.gid)
    return qemu


def _kvm_for(
    qemu: QemuUser, kvm: emulation.KvmCheck, device: Path = emulation.KVM
) -> emulation.KvmCheck:
    """KVM as QEMU will find it: usable by the launcher (root) is not enough, QEMU's user must
    be able to open the device too (its group, usually `kvm`, among that user's groups)."""
    if not kvm.usable:
        return kvm
    st = device.stat()
    if qemu.allows(st, write=True):
        return kvm
    return emulation.KvmCheck(
        False,
        f"{device} works, but QEMU runs as {qemu}, which may not open it (mode "
        f"{st.st_mode & 0o777:o}, uid {st.st_uid}, gid {st.st_gid}): add that user to the "
        "device's group",
    )


def _wait(
    settings: Settings,
    lifecycle: Lifecycle,
    manager: DomainManager,
    servicer: LauncherServicer,
    dispatcher: Dispatcher,
) -> None:
    define_deadline = time.monotonic() + settings.define_timeout_seconds
    kill_at: float | None = None
    next_acpi = 0.0
    while not lifecycle.ended.is_set():
        lifecycle.wake.wait(timeout=0.5)
        lifecycle.wake.clear()
        now = time.monotonic()
        if not servicer.define_received.is_set() and now > define_deadline:
            log.error("define_timeout", seconds=settings.define_timeout_seconds)
            return
        if not lifecycle.stop_requested.is_set():
            continue
        if not lifecycle.ran:
            log.info("stopped_before_domain_ran")
            return
        if kill_at is None:
            grace = _grace(manager, settings.grace_period_seconds)
            kill_at = now + grace
            log.info("graceful_shutdown_started", grace_seconds=round(grace, 1))
        try:
            if now >= kill_at:
                log.warning("grace_period_over_killing_domain")
                manager.kill()
            elif now >= next_acpi:
                manager.shutdown()  # records the request in the domain's metadata …
                dispatcher.refresh()  # … which watchers see as an UPDATED event
                next_acpi = now + SHUTDOWN_RESEND_SECONDS
        except LauncherError as exc:
            log.warning("shutdown_step_failed", error=str(exc))


def _grace(manager: DomainManager, default: int) -> float:
    """Seconds left of the grace period, counted from the first shutdown request.

    The handler may have asked for a shutdown before this SIGTERM, and a restarted launcher
    finds the first request in the domain's metadata: either way the guest gets its grace
    period once, not again from now.
    """
    meta = manager.snapshot().metadata
    if meta is None:
        return float(default)
    if meta.shutdown_requested_at is None:
        return float(meta.grace_period_seconds)
    elapsed = (datetime.now(UTC) - meta.shutdown_requested_at).total_seconds()
    return max(0.0, meta.grace_period_seconds - elapsed)


def _cleanup(manager: DomainManager) -> None:
    """The domain is gone: undefine it and remove its files, so nothing outlives the pod."""
    with contextlib.suppress(LauncherError):  # not defined, or already stopped
        manager.kill()
    try:
        manager.delete()
    except LauncherError as exc:
        log.error("cleanup_failed", error=str(exc))
    orphans.forget(manager.paths.run_dir)
