"""One libvirt connection to the launcher's private daemon, kept alive, with its events.

libvirt delivers events only while someone runs its event loop, so one thread does nothing
else (nova's host.py and vdsm do the same). Callbacks run on that thread and must not block or
call back into libvirt: they only put immutable `Notice`s on a queue, which the event
dispatcher drains on its own thread. When the daemon dies (it is restarted by its supervisor),
the close callback says so; `get()` then reconnects with backoff and re-registers the
callbacks, and a `reconnected` notice tells the dispatcher to resynchronise.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import libvirt

from kvd import logs
from kvd.launcher.errors import Unavailable

log = logs.get_logger(__name__)

NoticeKind = Literal["lifecycle", "reboot", "disconnected", "reconnected", "refresh"]
_loop_lock = threading.Lock()
_loop_started = False


@dataclass(frozen=True)
class Notice:
    """Something libvirt told us; `event`/`detail` are libvirt's lifecycle numbers."""

    kind: NoticeKind
    event: int = -1
    detail: int = -1


def start_event_loop() -> None:
    """Register libvirt's default event implementation and run it on a daemon thread.

    Must happen before the first connection is opened; safe to call more than once.
    """
    global _loop_started  # noqa: PLW0603 - libvirt's event loop is process-wide by design
    with _loop_lock:
        if _loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()
        thread = threading.Thread(target=_run_loop, name="libvirt-events", daemon=True)
        thread.start()
        _loop_started = True


def _run_loop() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except libvirt.libvirtError:
            log.exception("libvirt_event_loop_error")
            time.sleep(0.1)


class Connection:
    """A live connection to `uri`, re-opened on demand after the daemon went away."""

    def __init__(
        self,
        uri: str,
        notices: queue.Queue[Notice],
        *,
        connect_timeout: float = 30.0,
        opener: Callable[[str], Any] = libvirt.open,
    ) -> None:
        self._uri = uri
        self._notices = notices
        self._timeout = connect_timeout
        self._open = opener
        self._lock = threading.Lock()
        self._conn: Any = None
        self._ever_connected = False

    def get(self) -> Any:
        """The live `virConnect`; reconnects within the timeout or raises `Unavailable`."""
        with self._lock:
            if self._conn is not None and self._alive(self._conn):
                return self._conn
            self._conn = None
            deadline = time.monotonic() + self._timeout
            delay = 0.05
            while True:
                try:
                    conn = self._open(self._uri)
                    break
                except libvirt.libvirtError as exc:
                    if time.monotonic() + delay > deadline:
                        raise Unavailable(
                            f"libvirt is not reachable at {self._uri}: {exc}"
                        ) from exc
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
            self._register(conn)
            self._conn = conn
            if self._ever_connected:
                log.info("libvirt_reconnected", uri=self._uri)
                self._notices.put(Notice("reconnected"))
            self._ever_connected = True
            return conn

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    @staticmethod
    def _alive(conn: Any) -> bool:
        try:
            return bool(conn.isAlive())
        except libvirt.libvirtError:
            return False

    def _register(self, conn: Any) -> None:
        put = self._notices.put
        conn.domainEventRegisterAny(
            None,
            libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
            lambda _c, _d, event, detail, _o: put(Notice("lifecycle", event, detail)),
            None,
        )
        conn.domainEventRegisterAny(
            None,
            libvirt.VIR_DOMAIN_EVENT_ID_REBOOT,
            lambda _c, _d, _o: put(Notice("reboot")),
            None,
        )
        conn.registerCloseCallback(lambda _c, _reason, _o: put(Notice("disconnected")), None)
        # keepalive makes a dead daemon visible within seconds even when nothing is called
        conn.setKeepAlive(2, 3)
