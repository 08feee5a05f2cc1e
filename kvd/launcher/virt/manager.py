"""The domain manager: the launcher's one domain, driven through libvirt.

Every operation is idempotent, as the contract promises, and serialised by one lock (the
gRPC server calls from a thread pool). The manager holds no state that libvirt does not: kvd's
own bookkeeping (VMI uid, grace period, first shutdown request) lives in the domain's
`<metadata>`, so a restarted launcher or a reconnect after a libvirtd restart loses nothing.
The converter and storage are pure or file-only; this module is where they meet libvirt.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import libvirt

from kvd import logs, priority
from kvd.api import kinds
from kvd.api import vmi as vmitypes
from kvd.api.defaults import DEFAULT_GRACE_PERIOD_SECONDS
from kvd.api.errors import ValidationError
from kvd.launcher import converter, kernel_boot, orphans, ovmf, states, storage
from kvd.launcher.converter.context import (
    ConverterContext,
    Firmware,
    InterfaceTarget,
    KernelBootFiles,
    QemuIds,
)
from kvd.launcher.errors import Conflict, InvalidSpec, LauncherError, NotDefined, Unavailable
from kvd.launcher.model import Identity, Snapshot, absent
from kvd.launcher.network import PodNetwork
from kvd.launcher.qemu_user import QemuUser, QemuUserError
from kvd.launcher.virt import describe
from kvd.launcher.virt.connection import Connection
from kvd.rpc.launcher.v1 import domain_pb2 as pb

log = logs.get_logger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
# libvirt's QEMU driver writes <domain>.pid here; private to this launcher, as in its pod.
QEMU_PID_DIR = "/run/libvirt/qemu"


def _libvirt_errors(method: F) -> F:
    """libvirt errors that escape a command become the launcher's INTERNAL error."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except libvirt.libvirtError as exc:
            raise LauncherError(f"libvirt: {exc}") from exc

    return wrapper  # type: ignore[return-value]  # same signature, by functools.wraps


@dataclass(frozen=True, kw_only=True)
class Paths:
    """Where this launcher keeps its files, and where the pod put its inputs."""

    run_dir: Path
    container_disk_dir: Path
    pvc_dir: Path
    host_disk_dir: Path  # where the pod mounts each hostDisk's directory
    kernel_boot_dir: Path  # where the pod mounts the kernelBoot container's image
    pvc_capacities: Mapping[str, int] = field(default_factory=dict)  # claim → bytes (its flag)

    @property
    def console_socket(self) -> Path:
        return self.run_dir / "console.sock"

    @property
    def console_log(self) -> Path:
        return self.run_dir / "console.log"

    @property
    def vnc_dir(self) -> Path:
        """QEMU's own directory for the VNC socket: only QEMU's user (and root) get in."""
        return self.run_dir / "vnc"

    @property
    def vnc_socket(self) -> Path:
        return self.vnc_dir / "vnc.sock"

    @property
    def converted_xml(self) -> Path:
        """The converter's last output, to tell an identical DefineDomain from a changed one."""
        return self.run_dir / "domain.xml"


@dataclass(frozen=True, kw_only=True)
class Emulation:
    """Whether domains run under TCG, why, and whether that is allowed."""

    emulated: bool
    reason: str
    allowed: bool


class DomainManager:
    def __init__(
        self,
        connection: Connection,
        *,
        identity: Identity,
        paths: Paths,
        emulation: Emulation,
        network: PodNetwork,
        firmware: Firmware,
        qemu: QemuUser,
        on_started: Callable[[], None] = lambda: None,
    ) -> None:
        self._connection = connection
        self._qemu = qemu  # who QEMU runs as: every file it opens is prepared for that user
        self._network = network
        self._firmware = firmware  # the OVMF builds found at start; no VMI's NVRAM
        self.identity = identity
        self.paths = paths
        self.emulation = emulation
        self.name = converter.domain_name(identity.namespace, identity.name)
        self._on_started = on_started
        self._lock = threading.RLock()
        # Launch starts the domain paused and resumes it once the console is attached, so
        # libvirt says "unpaused"; to everyone else that start is a boot.
        self._started_paused = False

    # --- reading ---------------------------------------------------------------------------

    @_libvirt_errors
    def snapshot(self) -> Snapshot:
        """The domain as it is now; the `absent` snapshot when none is defined."""
        with self._lock:  # never observe the half-way state of a command
            dom = self._lookup()
            if dom is None:
                return absent(self.name, emulated=self.emulation.emulated)
            snap = describe.snapshot(dom, emulated=self.emulation.emulated)
        snap = _with_addresses(snap, self._network.addresses())
        if self._started_paused and snap.reason == pb.DOMAIN_STATE_REASON_UNPAUSED:
            return replace(snap, reason=pb.DOMAIN_STATE_REASON_BOOTED)
        return snap

    @_libvirt_errors
    def versions(self) -> tuple[str, str]:
        """(libvirt, QEMU) versions as dotted strings, from the private daemon."""
        conn = self._conn()
        return _dotted(conn.getLibVersion()), _dotted(conn.getVersion())

    @_libvirt_errors
    def xml(self) -> str:
        dom = self._require()
        return str(_call(dom.XMLDesc, 0))

    # --- commands ----------------------------------------------------------------------------

    @_libvirt_errors
    def define(self, vmi_json: bytes) -> tuple[str, Snapshot]:
        vmi = self._parse(vmi_json)
        if self.emulation.emulated and not self.emulation.allowed:
            raise Conflict(
                f"KVM is not usable ({self.emulation.reason}) and software emulation is not "
                "allowed for this launcher (start it with --allow-emulation, the cluster's "
                "useEmulation setting)"
            )
        with self._lock:
            existing = self._lookup()
            if existing is not None:
                self._check_owner(existing)
            fresh = not self.paths.converted_xml.exists() and existing is None
            # Before storage: a spec the pod's files or the network refuse costs no disk work.
            try:
                kernel = kernel_boot.files(
                    vmi.spec, kernel_boot_dir=self.paths.kernel_boot_dir, qemu=self._qemu
                )
            except kernel_boot.KernelBootError as exc:
                raise Conflict(str(exc)) from exc
            interfaces = self._network.prepare(vmi)
            try:
                disks = storage.prepare(
                    vmi,
                    run_dir=self.paths.run_dir,
                    container_disk_dir=self.paths.container_disk_dir,
                    pvc_dir=self.paths.pvc_dir,
                    pvc_capacities=self.paths.pvc_capacities,
                    host_disk_dir=self.paths.host_disk_dir,
                    qemu=self._qemu,
                )
                firmware = ovmf.prepare(
                    vmi.spec, self._firmware, run_dir=self.paths.run_dir, qemu=self._qemu
                )
                self._console_log()
                self._qemu.own_private_directory(self.paths.vnc_dir)
                context = self._context(vmi, disks, interfaces, kernel=kernel, firmware=firmware)
                xml = converter.convert(vmi, context)
            except storage.StorageError as exc:
                self._undo(fresh)
                raise Conflict(str(exc)) from exc
            except storage.TemporaryStorageError as exc:
                self._undo(fresh)
                raise Unavailable(str(exc)) from exc
            except QemuUserError as exc:  # the OVMF build: the node's, not the spec
                self._undo(fresh)
                raise Conflict(str(exc)) from exc
            except OSError as exc:  # the NVRAM copy or the console log: the node's disk
                self._undo(fresh)
                raise Unavailable(f"cannot create the VMI's files in the run dir: {exc}") from exc
            except converter.ConversionError as exc:
                self._undo(fresh)
                raise InvalidSpec(str(exc)) from exc
            previous = _read(self.paths.converted_xml)
            if existing is not None and previous == xml:
                return str(_call(existing.XMLDesc, 0)), self.snapshot()
            if existing is not None and states.is_active(existing.state()[0]):
                raise Conflict(
                    "the domain runs and the VMI spec changed in a way that needs a restart; "
                    "stop the VMI first"
                )
            try:
                dom = _call(self._conn().defineXML, xml)
            except LauncherError:
                self._undo(fresh)
                raise
            _write(self.paths.converted_xml, xml)
            log.info("domain_defined", domain=self.name, uid=self.identity.uid)
            return str(_call(dom.XMLDesc, 0)), self.snapshot()

    @_libvirt_errors
    def launch(self) -> Snapshot:
        with self._lock:
            dom = self._require()
            if not dom.isActive():
                self._set_metadata(dom, shutdown_requested_at=None)
                # Start paused so the console is attached before the first byte is printed.
                _call(dom.createWithFlags, libvirt.VIR_DOMAIN_START_PAUSED)
                qemu = self._qemu_pid()
                if qemu is not None:  # before the vCPUs run: see priority.py
                    threads = priority.set_threads(qemu, priority.GUEST_NICE)
                    log.info("guest_priority_set", pid=qemu, threads=threads)
                try:
                    self._on_started()
                finally:
                    _call(dom.resume)
                    self._started_paused = True
                self._record_qemu()
                log.info("domain_started", domain=self.name)
            return self.snapshot()

    @_libvirt_errors
    def shutdown(self) -> Snapshot:
        with self._lock:
            dom = self._require()
            meta = describe.metadata(dom)
            if meta is not None and meta.shutdown_requested_at is None and dom.isActive():
                self._set_metadata(dom, shutdown_requested_at=datetime.now(UTC))
            state = dom.state()[0]
            if state in (states.RUNNING, states.BLOCKED, states.SHUTDOWN):
                _call(dom.shutdownFlags, libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
                log.info("domain_shutdown_requested", domain=self.name)
            return self.snapshot()

    @_libvirt_errors
    def kill(self) -> Snapshot:
        with self._lock:
            dom = self._require()
            if dom.isActive():
                try:
                    dom.destroy()
                except libvirt.libvirtError as exc:
                    if dom.isActive():  # not merely a race with the guest's own stop
                        raise LauncherError(f"could not kill the domain: {exc}") from exc
                log.info("domain_killed", domain=self.name)
            return self.snapshot()

    @_libvirt_errors
    def delete(self) -> None:
        with self._lock:
            dom = self._lookup()
            if dom is not None:
                self._check_owner(dom)
                if dom.isActive():
                    raise Conflict("the domain still runs; shut it down or kill it first")
                _call(dom.undefineFlags, libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
                log.info("domain_undefined", domain=self.name)
            storage.cleanup(self.paths.run_dir)
            ovmf.cleanup(self.paths.run_dir)  # libvirt removed the NVRAM it knew of, not others
            self._network.release()
            self.paths.converted_xml.unlink(missing_ok=True)

    @_libvirt_errors
    def pause(self) -> Snapshot:
        with self._lock:
            dom = self._require()
            state = dom.state()[0]
            if state == states.PAUSED:
                return self.snapshot()
            if state not in (states.RUNNING, states.BLOCKED):
                raise Conflict("the domain is not running, so it cannot be paused")
            _call(dom.suspend)
            self._started_paused = False
            return self.snapshot()

    @_libvirt_errors
    def unpause(self) -> Snapshot:
        with self._lock:
            dom = self._require()
            state = dom.state()[0]
            if state == states.PAUSED:
                _call(dom.resume)
            elif state not in (states.RUNNING, states.BLOCKED):
                raise Conflict("the domain is neither paused nor running")
            return self.snapshot()

    def check_uid(self, uid: str) -> None:
        """The contract's identity guard: an empty uid means "whichever VMI this is"."""
        if uid and uid != self.identity.uid:
            raise Conflict(
                f"this launcher serves VMI uid {self.identity.uid}, not {uid}; nothing was done"
            )

    # --- internals ---------------------------------------------------------------------------

    def _parse(self, vmi_json: bytes) -> vmitypes.VirtualMachineInstance:
        try:
            data = json.loads(vmi_json)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidSpec(f"vmi_json is not valid JSON: {exc}") from exc
        try:
            vmi = kinds.load(data)
        except ValidationError as exc:
            raise InvalidSpec(f"invalid VirtualMachineInstance: {exc}") from exc
        if not isinstance(vmi, vmitypes.VirtualMachineInstance):
            raise InvalidSpec(f"vmi_json is a {type(vmi).__name__}, not a VirtualMachineInstance")
        meta = vmi.metadata
        got = Identity(namespace=meta.namespace or "", name=meta.name or "", uid=meta.uid or "")
        if got != self.identity:
            raise Conflict(
                f"this launcher serves {self.identity.namespace}/{self.identity.name} uid "
                f"{self.identity.uid}, not {got.namespace}/{got.name} uid {got.uid or '(none)'}"
            )
        return vmi

    def _context(
        self,
        vmi: vmitypes.VirtualMachineInstance,
        disks: dict[str, Any],
        interfaces: dict[str, InterfaceTarget],
        *,
        kernel: KernelBootFiles | None,
        firmware: Firmware,
    ) -> ConverterContext:
        grace = vmi.spec.termination_grace_period_seconds
        return ConverterContext(
            domain_type="qemu" if self.emulation.emulated else "kvm",
            qemu_ids=QemuIds(uid=self._qemu.uid, gid=self._qemu.gid),
            disks=disks,
            console_socket=self.paths.console_socket,
            console_log=self.paths.console_log,
            vnc_socket=self.paths.vnc_socket,
            vmi_uid=self.identity.uid,
            grace_period_seconds=DEFAULT_GRACE_PERIOD_SECONDS if grace is None else grace,
            interfaces=interfaces,
            kernel_boot=kernel,
            firmware=firmware,
        )

    def _console_log(self) -> None:
        """QEMU appends the serial output to this file itself, and may not create files in the
        run dir: the file is made beforehand, its user's (and kept: earlier boots stay in it)."""
        log_path = self.paths.console_log
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        os.close(fd)
        self._qemu.own(log_path)

    def _undo(self, fresh: bool) -> None:
        """A failed first define leaves no file behind; a failed redefine keeps the old one."""
        if fresh:
            storage.cleanup(self.paths.run_dir)
            ovmf.cleanup(self.paths.run_dir)

    def _check_owner(self, dom: Any) -> None:
        meta = describe.metadata(dom)
        if meta is not None and meta.uid != self.identity.uid:
            raise Conflict(
                f"the defined domain belongs to VMI uid {meta.uid}, not {self.identity.uid}"
            )

    def _set_metadata(self, dom: Any, *, shutdown_requested_at: datetime | None) -> None:
        meta = describe.metadata(dom)
        if meta is None:
            return
        updated = replace(meta, shutdown_requested_at=shutdown_requested_at)
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        _call(
            dom.setMetadata,
            libvirt.VIR_DOMAIN_METADATA_ELEMENT,
            converter.render_metadata(updated),
            converter.METADATA_PREFIX,
            converter.METADATA_NAMESPACE,
            flags,
        )

    def _record_qemu(self) -> None:
        """Note QEMU's pid in the run dir, for the next launcher if this one is killed."""
        pid = self._qemu_pid()
        if pid is not None:
            orphans.record(self.paths.run_dir, pid)

    def _qemu_pid(self) -> int | None:
        try:
            return int(Path(QEMU_PID_DIR, f"{self.name}.pid").read_text().strip())
        except (OSError, ValueError) as exc:
            log.warning("qemu_pid_unknown", error=str(exc))
            return None

    def _conn(self) -> Any:
        return self._connection.get()

    def _lookup(self) -> Any:
        try:
            return self._conn().lookupByName(self.name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise LauncherError(f"libvirt: {exc}") from exc

    def _require(self) -> Any:
        dom = self._lookup()
        if dom is None:
            raise NotDefined("no domain is defined; call DefineDomain first")
        return dom


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call libvirt, turning its errors into the launcher's INTERNAL error with libvirt's text."""
    try:
        return fn(*args)
    except libvirt.libvirtError as exc:
        raise LauncherError(f"libvirt: {exc}") from exc


def _with_addresses(snap: Snapshot, addresses: dict[str, tuple[str, ...]]) -> Snapshot:
    """The guest's IPs the network code knows (the pod IP it leased), per interface."""
    if not addresses:
        return snap
    interfaces = tuple(
        replace(i, ip_addresses=addresses[i.name]) if i.name in addresses else i
        for i in snap.interfaces
    )
    return replace(snap, interfaces=interfaces)


def _dotted(number: int) -> str:
    """libvirt's version numbers are major * 1,000,000 + minor * 1,000 + release."""
    return f"{number // 1_000_000}.{number // 1000 % 1000}.{number % 1000}"


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
