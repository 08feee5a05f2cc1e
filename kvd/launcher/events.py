"""Domain events: libvirt's notices in, ordered `Event`s out to every WatchDomain stream.

The dispatcher thread is level-triggered: whatever the notice, it takes a fresh snapshot of
the domain and publishes it when something a watcher cares about changed. So a missed or
coalesced libvirt event costs nothing, a reconnect after a libvirtd restart resynchronises by
itself, and a periodic resync catches anything else. A guest reboot keeps the domain running
(`on_reboot=restart`); libvirt reports it with its own REBOOT event, which becomes REBOOTED —
never a stop followed by a start.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from kvd import logs
from kvd.launcher.broadcast import Broadcaster, Subscription
from kvd.launcher.errors import LauncherError
from kvd.launcher.model import Event, Snapshot
from kvd.launcher.virt.connection import Notice
from kvd.rpc.launcher.v1 import domain_pb2 as pb

log = logs.get_logger(__name__)

# libvirt's virDomainEventType numbers (stable ABI)
_DEFINED, _UNDEFINED = 0, 1


class Dispatcher:
    def __init__(
        self,
        notices: queue.Queue[Notice],
        snapshot: Callable[[], Snapshot],
        *,
        resync_seconds: float = 10.0,
        listeners: tuple[Callable[[Event], None], ...] = (),
    ) -> None:
        self._notices = notices
        self._snapshot = snapshot
        self._resync = resync_seconds
        self._listeners = listeners
        self._broadcaster: Broadcaster[Event] = Broadcaster(capacity=256)
        self._current: Snapshot | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="domain-events", daemon=True)

    def start(self) -> None:
        self._current = self._take()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._notices.put(Notice("refresh"))
        self._thread.join(timeout=5)
        self._broadcaster.close()

    def refresh(self) -> None:
        """Re-read the domain soon: a command changed something libvirt sends no event for."""
        self._notices.put(Notice("refresh"))

    def subscribe(self) -> Subscription[Event]:
        """A stream whose first event is INITIAL with the current state, then every change."""

        def initial() -> list[Event]:
            current = self._current or self._take()
            return [Event(pb.DOMAIN_EVENT_TYPE_INITIAL, current, datetime.now(UTC))]

        return self._broadcaster.subscribe(initial)

    @property
    def current(self) -> Snapshot | None:
        return self._current

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                notice = self._notices.get(timeout=self._resync)
            except queue.Empty:
                notice = Notice("refresh")
            if self._stop.is_set():
                return
            try:
                self._handle(notice)
            except LauncherError as exc:
                # libvirtd is down or restarting: the reconnect notice will resync
                log.warning("domain_event_resync_failed", error=str(exc), notice=notice.kind)
            except Exception:
                log.exception("domain_event_dispatch_failed", notice=notice.kind)

    def _handle(self, notice: Notice) -> None:
        if notice.kind == "disconnected":
            log.warning("libvirt_disconnected")
            return
        snap = self._take()
        previous = self._current
        kind = _classify(notice, previous, snap)
        if kind is None:
            return
        event = Event(kind, snap, datetime.now(UTC))

        def remember() -> None:
            self._current = snap

        self._broadcaster.publish(event, before=remember)
        log.info(
            "domain_event",
            type=pb.DomainEventType.Name(kind),
            state=pb.DomainState.Name(snap.state),
            reason=pb.DomainStateReason.Name(snap.reason),
        )
        for listener in self._listeners:
            listener(event)

    def _take(self) -> Snapshot:
        return self._snapshot()


def _classify(
    notice: Notice, previous: Snapshot | None, snap: Snapshot
) -> pb.DomainEventType | None:
    if notice.kind == "reboot":
        return pb.DOMAIN_EVENT_TYPE_REBOOTED
    if previous is not None and previous.defined and not snap.defined:
        return pb.DOMAIN_EVENT_TYPE_DELETED
    if notice.kind == "lifecycle" and notice.event == _DEFINED and snap.defined:
        return pb.DOMAIN_EVENT_TYPE_DEFINED
    if previous is None or (previous.state, previous.reason) != (snap.state, snap.reason):
        if previous is not None and not previous.defined and snap.defined:
            return pb.DOMAIN_EVENT_TYPE_DEFINED
        return pb.DOMAIN_EVENT_TYPE_STATE_CHANGED
    if previous != snap:
        return pb.DOMAIN_EVENT_TYPE_UPDATED
    return None
