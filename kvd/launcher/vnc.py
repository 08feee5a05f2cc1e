"""The guest's VNC display: one unix-socket connection to QEMU's VNC server per Vnc stream.

QEMU listens on a socket in a directory of its own in the run dir (`vnc/`, owned by QEMU's user,
mode 0700: QEMU creates the socket there, root — this launcher — connects, nobody else can even
look in), never on a TCP port. Unlike the serial console there is nothing to keep between
clients (RFB is a conversation, and QEMU renders the screen afresh for each connection), so each
stream is its own connection and bytes pass through unchanged both ways.

Several streams may be open at once: QEMU's `share` policy is left at its default,
`allow-exclusive`, as KubeVirt leaves it. A client that asks for shared access in its ClientInit
(as virtctl's and most viewers do) joins the others; one that asks for exclusive access
disconnects every other client, as RFB says.

A session ends cleanly from either side: the client's half-close is passed on as a half-close
of the socket (QEMU then closes, which ends the response stream with OK); QEMU closing (the
domain stopped, or an exclusive client took over) ends the response stream; a cancelled RPC
shuts the socket down, which wakes the reader at once. Each session holds one socket and one
input thread, both gone when the session is.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from pathlib import Path

from kvd import logs
from kvd.launcher.errors import Conflict

log = logs.get_logger(__name__)
CHUNK = 64 * 1024


def _connect(path: Path, timeout: float) -> socket.socket:
    """Connect to QEMU's socket. QEMU listens with a backlog of one and accepts from its main
    loop, so a busy QEMU (TCG) or a few clients at once find the backlog full: a non-blocking
    unix connect then fails with EAGAIN at once, which is retried until `timeout`."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.connect(str(path))
            sock.settimeout(None)
            return sock
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EAGAIN or time.monotonic() + delay > deadline:
                raise Conflict(f"the guest's VNC display at {path} does not answer: {exc}") from exc
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def vnc_socket_in(domain_xml: str) -> Path | None:
    """The unix socket of the domain's VNC display, or None when it has none."""
    root = ET.fromstring(domain_xml)
    for listen in root.iterfind("./devices/graphics[@type='vnc']/listen[@type='socket']"):
        if path := listen.get("socket"):
            return Path(path)
    return None


class VncSession:
    """One RFB connection to QEMU, fed by `start_input` and drained by `output`."""

    def __init__(self, socket_path: Path, *, timeout: float = 10.0) -> None:
        self._sock = _connect(socket_path, timeout)
        self._lock = threading.Lock()
        self._closed = False
        self._input: threading.Thread | None = None

    def start_input(self, chunks: Iterable[bytes]) -> None:
        """Forward the client's bytes to QEMU on a thread of this session's own."""
        self._input = threading.Thread(
            target=self._pump, args=(chunks,), name="vnc-input", daemon=True
        )
        self._input.start()

    def output(self) -> Iterator[bytes]:
        """QEMU's bytes as they come; ends when QEMU closes or the session is closed."""
        while True:
            try:
                data = self._sock.recv(CHUNK)
            except OSError:
                data = b""
            if not data:
                return
            yield data

    def close(self) -> None:
        """End the session from any thread: wakes the reader, closes the socket; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def _pump(self, chunks: Iterable[bytes]) -> None:
        try:
            for data in chunks:
                self._sock.sendall(data)
        except OSError:
            return  # QEMU went away, or the session was closed: the output side ends it
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)  # the client half-closed: so does the socket
