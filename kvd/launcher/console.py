"""The guest's serial console: one reader of QEMU's socket, many followers, one writer.

QEMU listens on a unix socket for the serial port and logs everything to the console log
itself. The launcher keeps exactly one connection to that socket while the domain runs and
reads it continuously, so the guest never blocks on a slow client; output fans out to every
Console stream through a bounded `Broadcaster`, and the last `tail_bytes` are kept for
replay. Input comes from at most one writer at a time (a `WriterLease`); a new writer may take
the console over, and the displaced one learns so on its next write.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kvd import logs
from kvd.launcher.broadcast import Broadcaster, Subscription
from kvd.launcher.errors import Conflict

log = logs.get_logger(__name__)


class Displaced(Exception):
    """This writer was displaced by another one that took the console over."""


class WriterLease:
    def __init__(self, relay: ConsoleRelay) -> None:
        self._relay = relay
        self.displaced = False
        self.on_displaced: Callable[[], None] = lambda: None  # e.g. end the writer's stream

    def write(self, data: bytes) -> None:
        if self.displaced:
            raise Displaced("another client took over the console")
        self._relay._send(data)

    def release(self) -> None:
        self._relay._release(self)


class ConsoleRelay:
    def __init__(self, socket_path: Path, *, tail_bytes: int = 64 * 1024) -> None:
        self._path = socket_path
        self._tail_limit = tail_bytes
        self._tail = bytearray()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._writer: WriterLease | None = None
        self._broadcaster: Broadcaster[bytes] = Broadcaster(capacity=4096)

    @property
    def attached(self) -> bool:
        return self._sock is not None

    def attach(self, *, timeout: float = 10.0) -> None:
        """Connect to QEMU's console socket (it appears when QEMU starts) and start reading."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(self._path))
                break
            except OSError as exc:
                sock.close()
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"console socket {self._path} did not answer: {exc}"
                    ) from exc
                time.sleep(0.02)
        with self._lock:
            self._sock = sock
        threading.Thread(target=self._read, args=(sock,), name="console", daemon=True).start()
        log.info("console_attached", socket=str(self._path))

    def detach(self) -> None:
        """End every follower's stream; the next `attach` starts a fresh broadcast."""
        with self._lock:
            sock, self._sock = self._sock, None
            old, self._broadcaster = self._broadcaster, Broadcaster(capacity=4096)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        old.close()

    def follow(self, replay_bytes: int) -> tuple[int, Subscription[bytes]]:
        """(bytes replayed, subscription): the tail first, then live output, with no gap."""
        replayed = 0

        def initial() -> list[bytes]:
            nonlocal replayed
            chunk = bytes(self._tail[-replay_bytes:]) if replay_bytes else b""
            replayed = len(chunk)
            return [chunk] if chunk else []

        with self._lock:
            broadcaster = self._broadcaster
        sub = broadcaster.subscribe(initial)
        return replayed, sub

    def lease_writer(self, *, take_over: bool) -> WriterLease:
        with self._lock:
            if self._writer is not None and not take_over:
                raise Conflict(
                    "another client is writing to this console; open it read-only, or take it "
                    "over (kvdctl console --take-over)"
                )
            displaced = self._writer
            self._writer = WriterLease(self)
            lease = self._writer
        if displaced is not None:
            displaced.displaced = True
            displaced.on_displaced()
        return lease

    def _release(self, lease: WriterLease) -> None:
        with self._lock:
            if self._writer is lease:
                self._writer = None

    def _send(self, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise Conflict("the guest's console is not connected: the domain does not run")
        sock.sendall(data)

    def _read(self, sock: socket.socket) -> None:
        broadcaster = self._broadcaster
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                break

            def keep(data: bytes = data) -> None:
                self._tail += data
                del self._tail[: max(0, len(self._tail) - self._tail_limit)]

            broadcaster.publish(data, before=keep)
        log.info("console_closed", socket=str(self._path))
        with self._lock:
            if self._sock is sock:
                self._sock = None
        broadcaster.close()
