"""The handler: drives the launchers of the VMIs on its node and owns their running phases.

Level-triggered. An informer on the VMIs labelled `kubevirt.io/nodeName=<node>`, one follower
per launcher (`WatchDomain`) and a periodic resync all feed one work queue of VMI keys; a worker
reconciles a key by comparing the VMI (desired) with the domain (actual):

- a VMI whose `status.activePods` names a pod on this node: its launcher is at
  `<launcher dir>/<pod uid>/launcher.sock`; `GetInfo` first, then `DefineDomain` and
  `LaunchDomain` until the domain has run once; from then on the phase follows the domain
  (`kvd.handler.phase`), with interfaces, guest OS info and conditions, in one status patch per
  reconcile and only when something changed;
- a VMI with a deletionTimestamp, or one that is gone while a record of it remains:
  `ShutdownDomain`, re-sent at most every 5 s, `KillDomain` once the grace period (counted from
  the first request, which the record keeps across restarts) has passed, then `DeleteDomain`,
  and the record and the launcher's directory are removed once the launcher has exited.

A record per VMI (`<state dir>/vmis/<uid>.json`) is written before the first command to its
launcher, so a restarted handler finds every launcher it drove. Running VMs never depend on the
handler: it can be killed at any moment and picks up from the API and the records.

The heartbeat labels the node `kubevirt.io/schedulable=true` and annotates it with
`kubevirt.io/heartbeat=<RFC 3339>` at start and then every `heartbeat_seconds` (with jitter);
`stop()` sets `schedulable=false`.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import socket as socketlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvd import logs, metrics, timestamps
from kvd.api import keys, kinds, phases
from kvd.handler import phase
from kvd.handler import status as vmistatus
from kvd.handler.launchers import Launcher, LauncherRejected, LauncherUnavailable
from kvd.handler.records import VMIRecord, open_records
from kvd.kube import events, informer, ownwrites, workqueue
from kvd.kube.client import ApiError, Raw, connect, list_custom
from kvd.kube.workqueue import WorkQueue
from kvd.rpc.launcher.v1 import domain_pb2

log = logs.get_logger(__name__)

Json = dict[str, Any]

SHUTDOWN_RESEND = 5.0
# A launcher that does not answer is looked at again this often. Only a fallback: its follower
# (`Launcher.follow`, which looks for the socket ten times a second) queues the VMI as soon as
# the launcher answers. Polled here at 0.1 s, twenty starting launchers cost the handler two
# hundred reconciles a second.
UNREACHABLE_RECHECK = 1.0
CONFLICT_RETRY = 1.0  # seconds; the VMI changed under a status patch (see reconcile)
COMPONENT = "kvd-handler"


@dataclass(frozen=True, kw_only=True)
class HandlerSettings:
    node_name: str
    launcher_dir: Path
    state_dir: Path
    kubeconfig: Path | None = None
    heartbeat_seconds: float = 60.0
    resync_seconds: float = 30.0
    # A worker blocks on a launcher's DefineDomain + LaunchDomain (seconds under load): with
    # two, twenty VMIs created together started two at a time. Idle workers cost nothing.
    workers: int = 16


@dataclass
class _Live:
    """A launcher being followed."""

    launcher: Launcher
    stop: threading.Event
    domain: domain_pb2.Domain | None = None  # the last one read
    ended: domain_pb2.Domain | None = None  # the domain's end, as the watch reported it
    unreachable_since: float | None = None
    last_shutdown_sent: float = 0.0
    written: Json = field(default_factory=dict)


class Handler:
    def __init__(self, settings: HandlerSettings) -> None:
        self.settings = settings
        self.node_name = settings.node_name
        self.api = connect(settings.kubeconfig, agent="kvd-handler")
        self.raw = Raw(self.api)
        self.records = open_records(settings.state_dir / "vmis")
        self.queue: WorkQueue[str] = WorkQueue()
        self.vmis = informer.Informer(
            self.api,
            list_custom(self.api, kinds.GROUP, kinds.STORAGE_VERSION, kinds.VMI.plural),
            name="vmis",
            label_selector=f"{keys.NODE_NAME}={self.node_name}",
            resync_period=settings.resync_seconds,
        )
        self.recorder = events.Recorder(raw=self.raw, component=COMPONENT, host=self.node_name)
        self.metrics = metrics.DaemonMetrics("handler")
        self.metrics.track_queue(lambda: len(self.queue))
        self.metrics.track_phases(lambda: metrics.vmi_phases(self.vmis.items()))
        self._live: dict[str, _Live] = {}  # by VMI uid
        self._lock = threading.Lock()
        # the VMI status this handler last patched: the next reconcile starts from it while the
        # informer still shows the version it replaced (no 409, no second identical patch)
        self.own_writes = ownwrites.OwnWrites()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self, *, timeout: float = 30.0) -> None:
        self._heartbeat_once(schedulable=True)
        self.vmis.add_handler(lambda _kind, vmi: self.queue.add(informer.key_of(vmi)))
        self.vmis.start()
        if not self.vmis.wait_synced(timeout):
            raise TimeoutError(f"the VMI informer did not sync within {timeout}s")
        for record in self.records.all():  # launchers driven before a restart, VMIs gone or not
            self.queue.add(record.key)
        for _ in range(self.settings.workers):
            self._spawn(self._work, "worker")
        self._spawn(self._heartbeat, "heartbeat")
        self._spawn(self._resync, "resync")
        log.info("handler_ready", node=self.node_name, records=len(self.records.all()))

    def stop(self, *, unschedulable: bool = True) -> None:
        self._stop.set()
        self.queue.shutdown()
        self.vmis.stop()
        with self._lock:
            for live in self._live.values():
                live.stop.set()
                live.launcher.close()
        for t in self._threads:
            t.join(timeout=10)
        if unschedulable:
            with contextlib.suppress(ApiError):
                self._heartbeat_once(schedulable=False)

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _work(self) -> None:
        workqueue.work(self.queue, self.reconcile, metrics=self.metrics)

    def _resync(self) -> None:
        """GetDomain-level truth every `resync_seconds`, also for VMIs whose watch is quiet."""
        while not self._stop.wait(self.settings.resync_seconds):
            for record in self.records.all():
                self.queue.add(record.key)

    # --- reconcile ----------------------------------------------------------------------------

    def reconcile(self, key: str) -> float | None:
        """Make the launcher(s) of `key` match its VMI; returns when to look again."""
        vmi = self.own_writes.latest(key, self.vmis.get(key))
        uid = vmi["metadata"]["uid"] if vmi else None
        again: list[float] = []
        for record in self.records.all():
            if record.key == key and record.uid != uid:  # deleted (or deleted and recreated)
                wait = self._stop_domain(record, None)
                if wait is not None:
                    again.append(wait)
        if vmi is not None:
            try:
                wait = self._reconcile_vmi(vmi)
            except ApiError as exc:
                if not exc.conflict:
                    raise
                # Someone else wrote the VMI after the copy this reconcile started from (our own
                # writes are in own_writes): the watch brings that version and queues the key
                # again; looking again soon covers a watch that is slow to.
                log.info("vmi_changed_meanwhile", vmi=key)
                wait = CONFLICT_RETRY
            if wait is not None:
                again.append(wait)
        return min(again) if again else None

    def _reconcile_vmi(self, vmi: Json) -> float | None:
        meta, status = vmi["metadata"], vmi.get("status") or {}
        current = status.get("phase") or ""
        record = self.records.get(meta["uid"])
        if phases.is_final(current):
            if record is not None:
                return self._stop_domain(record, vmi)
            return None
        if record is None:
            pod_uid = self._pod_here(status)
            if pod_uid is None:
                return None  # the controller has not scheduled it here (yet)
            record = VMIRecord(
                uid=meta["uid"],
                namespace=meta["namespace"],
                name=meta["name"],
                pod_uid=pod_uid,
                socket=str(self.settings.launcher_dir / pod_uid / "launcher.sock"),
                grace_seconds=vmistatus.grace(vmi),
            )
            self.records.put(record)
        if meta.get("deletionTimestamp"):
            return self._stop_domain(record, vmi)
        live = self._follow(record)
        try:
            live.launcher.negotiate()
            domain = live.launcher.domain()  # the truth now; the watch only says when to look
            if not record.ever_ran and vmistatus.not_started(domain):
                domain = self._start(vmi, live)
            live.domain = domain
            live.unreachable_since = None
        except LauncherUnavailable:
            live.unreachable_since = live.unreachable_since or time.monotonic()
            domain = live.domain  # the last one seen
        except LauncherRejected as exc:
            self._event(vmi, "Warning", "SyncFailed", exc.message)
            self._write_status(vmi, live, record, synchronized=(False, "SyncFailed", exc.message))
            raise
        if domain is not None and domain.state in phase.ACTIVE_STATES and not record.ever_ran:
            record = record.ran()
            self.records.put(record)
        # A launcher exits soon after its domain ends, taking the domain with it: the end the
        # watch reported (kept in the record across restarts) is what the phase follows then.
        ended = self._ended(record, live)
        if ended is not None and (domain is None or live.unreachable_since is not None):
            domain = ended
        self._write_status(vmi, live, record, domain=domain)
        if live.unreachable_since is not None:
            return UNREACHABLE_RECHECK
        return None

    def _start(self, vmi: Json, live: _Live) -> domain_pb2.Domain:
        uid = vmi["metadata"]["uid"]
        live.launcher.define(json.dumps(vmi).encode())
        domain = live.launcher.launch(uid)
        self._event(vmi, "Normal", "Started", "VirtualMachineInstance started.")
        log.info("domain_started", vmi=informer.key_of(vmi), uid=uid)
        return domain

    def _stop_domain(self, record: VMIRecord, vmi: Json | None) -> float | None:
        """Shut down, kill after the grace period, delete; forget the VMI once its launcher has
        exited. Returns when to look again."""
        live = self._follow(record)
        launcher = live.launcher
        try:
            domain = launcher.domain()
            live.domain = domain
            if domain is not None and domain.state in phase.ACTIVE_STATES:
                return self._shut_down(record, vmi, live, domain)
            launcher.delete(record.uid)
            gone = not _listening(Path(record.socket))
        except LauncherUnavailable:
            gone = not _listening(Path(record.socket))
            if not gone:
                return 1.0  # it answers again soon, or it is found gone
        except LauncherRejected as exc:
            log.warning("stop_failed", vmi=record.key, error=exc.message)
            return 2.0
        if vmi is not None:
            self._write_status(vmi, live, record, domain=live.domain, deleting=True)
        if not gone:
            return 1.0  # the launcher exits after its domain is gone
        if vmi is None or vmi["metadata"].get("deletionTimestamp"):
            self._event(
                vmi or record, "Normal", "Stopped", "The VirtualMachineInstance was shut down."
            )
        self._forget(record)
        return None

    def _shut_down(
        self, record: VMIRecord, vmi: Json | None, live: _Live, domain: domain_pb2.Domain
    ) -> float:
        now = time.time()
        if record.shutdown_requested_at is None:
            record = record.with_shutdown(now)
            self.records.put(record)
            self._event(vmi or record, "Normal", "ShuttingDown", "Signaled Graceful Shutdown")
        started = record.shutdown_requested_at or now
        asked = domain.metadata.shutdown_request_time
        if asked.seconds:  # the launcher's own record of the first request, if earlier
            started = min(started, asked.seconds + asked.nanos / 1e9)
        grace = vmistatus.grace(vmi) if vmi is not None else record.grace_seconds
        left = started + grace - now
        if left <= 0:
            live.launcher.kill(record.uid)
            log.info("domain_killed", vmi=record.key, grace=grace)
            return 0.2
        if now - live.last_shutdown_sent >= SHUTDOWN_RESEND:
            live.launcher.shutdown(record.uid)
            live.last_shutdown_sent = now
        return min(left, SHUTDOWN_RESEND, 1.0)

    def _forget(self, record: VMIRecord) -> None:
        with self._lock:
            live = self._live.pop(record.uid, None)
        if live is not None:
            live.stop.set()
            live.launcher.close()
        run_dir = Path(record.socket).parent
        if run_dir.parent == self.settings.launcher_dir:
            shutil.rmtree(run_dir, ignore_errors=True)
        self.records.remove(record.uid)
        log.info("vmi_forgotten", vmi=record.key, uid=record.uid)

    def _follow(self, record: VMIRecord) -> _Live:
        with self._lock:
            live = self._live.get(record.uid)
            if live is None:
                live = _Live(Launcher(Path(record.socket)), threading.Event())
                self._live[record.uid] = live
                key = record.key

                def seen(domain: domain_pb2.Domain | None, live: _Live = live) -> None:
                    if domain is not None and vmistatus.ended(domain):
                        live.ended = domain
                    self.queue.add(key)  # level-triggered: reconcile reads the domain itself

                live.launcher.follow(seen, live.stop)
            return live

    def _ended(self, record: VMIRecord, live: _Live) -> domain_pb2.Domain | None:
        """How the domain ended, if it did: from the watch, or else from what the launcher left
        in its run dir when the watch missed it (this handler was restarted, or reconnecting);
        saved to the record once seen."""
        if record.ended_state is None:
            found = live.ended
            if found is None and live.unreachable_since is not None:
                found = _ended_file(Path(record.socket).parent)
            if found is not None:
                record = record.end(found.state, found.reason)
                self.records.put(record)
        if record.ended_state is None:
            return None
        return domain_pb2.Domain(
            state=domain_pb2.DomainState.Name(record.ended_state),
            reason=domain_pb2.DomainStateReason.Name(record.ended_reason),
        )

    def locate(self, namespace: str, name: str, uid: str) -> Path | None:
        """The launcher socket of a VMI this handler drives (HandlerService's lookup)."""
        record = self.records.get(uid)
        if record is None or (record.namespace, record.name) != (namespace, name):
            return None
        return Path(record.socket)

    def _pod_here(self, status: Json) -> str | None:
        for pod_uid, node in (status.get("activePods") or {}).items():
            if node == self.node_name:
                return str(pod_uid)
        return None

    # --- status -------------------------------------------------------------------------------

    def _write_status(
        self,
        vmi: Json,
        live: _Live,
        record: VMIRecord,
        *,
        domain: domain_pb2.Domain | None = None,
        deleting: bool = False,
        synchronized: tuple[bool, str, str] | None = None,
    ) -> None:
        status = vmi.get("status") or {}
        if domain is not None and vmistatus.not_started(domain):
            domain = None  # defined, not launched yet: no phase follows from it
        socket = Path(record.socket)
        unreachable = live.unreachable_since is not None
        observed = phase.Observed(
            domain_state=domain.state if domain is not None else None,
            domain_reason=domain.reason if domain is not None else 0,
            launcher_reachable=not unreachable,
            unreachable_for=time.monotonic() - live.unreachable_since if unreachable else 0.0,  # type: ignore[operator]
            launcher_gone=unreachable and record.ever_ran and not _listening(socket),
            acpi_enabled=vmistatus.acpi(vmi),
            deleting=deleting or bool(vmi["metadata"].get("deletionTimestamp")),
            ever_ran=record.ever_ran,
        )
        decision = phase.next_phase(status.get("phase") or "", observed)
        if (
            not record.ever_ran
            and synchronized is None
            and decision.phase == (status.get("phase") or "")
            and not phases.is_final(decision.phase)
        ):
            return  # still starting (the launcher may not answer yet): nothing to tell
        emulated = bool(live.launcher.info.emulated) if live.launcher.info else False
        changed = vmistatus.change(
            status,
            decision=decision,
            observed=observed,
            domain=domain,
            emulated=emulated,
            synchronized=synchronized,
            now=timestamps.now(),
        )
        if not changed:
            return
        path = kinds.VMI.path(record.namespace, record.name)
        patch: Json = {"metadata": {"resourceVersion": vmi["metadata"]["resourceVersion"]}}
        patch["status"] = changed
        written = self.raw.merge_patch(path, patch)
        self.own_writes.wrote(
            informer.key_of(vmi), replaced=vmi["metadata"]["resourceVersion"], result=written
        )
        if "phase" in changed:
            log.info("vmi_phase", vmi=record.key, phase=decision.phase, reason=decision.reason)

    # --- events and heartbeat -----------------------------------------------------------------

    def _event(self, vmi: Json | VMIRecord, kind: str, reason: str, message: str) -> None:
        """A core/v1 Event on the VMI (also on one already deleted: by its record)."""
        if isinstance(vmi, VMIRecord):
            vmi = {"metadata": {"namespace": vmi.namespace, "name": vmi.name, "uid": vmi.uid}}
        involved = {
            "apiVersion": f"{kinds.GROUP}/{kinds.STORAGE_VERSION}",
            **vmi,
            "kind": kinds.VMI.kind,
        }
        self.recorder.event(involved, kind, reason, message)

    def _heartbeat(self) -> None:
        period = self.settings.heartbeat_seconds
        while not self._stop.wait(period * random.uniform(0.9, 1.1)):
            try:
                self._heartbeat_once(schedulable=True)
            except ApiError as exc:
                log.warning("heartbeat_failed", error=exc.message)

    def _heartbeat_once(self, *, schedulable: bool) -> None:
        self.raw.merge_patch(
            f"/api/v1/nodes/{self.node_name}",
            {
                "metadata": {
                    "labels": {keys.SCHEDULABLE: "true" if schedulable else "false"},
                    "annotations": {keys.HEARTBEAT: timestamps.now()},
                }
            },
        )


# --- helpers ---------------------------------------------------------------------------------


# The launcher's record of how its domain ended, beside its socket (kvd/launcher/app.py).
ENDED_NAME = "ended.json"


def _ended_file(run_dir: Path) -> domain_pb2.Domain | None:
    """The domain's end as the launcher recorded it; None when it did not (still running, or it
    died without a word) or the file is not one it wrote."""
    try:
        ended = json.loads((run_dir / ENDED_NAME).read_text())
        # by name, as the launcher wrote them; an unknown name is a ValueError
        return domain_pb2.Domain(state=str(ended["state"]), reason=str(ended["reason"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("domain_end_unreadable", run_dir=str(run_dir), error=str(exc))
        return None


def _listening(socket: Path) -> bool:
    """Whether a process accepts connections on `socket` (a file left by a killed launcher
    refuses them)."""
    s = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(str(socket))
    except (FileNotFoundError, ConnectionRefusedError):
        return False
    except OSError:
        return True  # busy or slow, but there
    finally:
        s.close()
    return True
