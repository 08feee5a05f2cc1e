"""A local TCP port whose every connection is pumped into a bidirectional byte stream.

This is how a local program that speaks a TCP protocol (a VNC viewer: `kvdctl vnc
--proxy-only`) reaches a stream that exists only as an RPC (ControllerService.Vnc). The bridge
knows nothing of gRPC: it is given `open_stream`, a factory called once per accepted
connection with the iterator of bytes the local client sends; it returns the stream's
incoming bytes as an iterable with a `cancel()` (a gRPC stream-stream call is one, once its
requests and responses are mapped to and from bytes).

Each connection has two threads: one reads the socket into the stream's requests, the other
(the connection's own) writes the stream's bytes to the socket. Whichever side ends first ends
the other: the local client closing its side half-closes the stream's requests; the stream
ending (or failing: `on_error` hears why) shuts the socket down; a socket error cancels the
stream. `close()` stops accepting and ends every open connection; nothing outlives it.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from kvd import logs

log = logs.get_logger(__name__)
CHUNK = 64 * 1024


class Stream(Protocol):
    """The remote side of one connection: its bytes, and a way to end it early."""

    def __iter__(self) -> Iterator[bytes]: ...

    def cancel(self) -> object: ...


OpenStream = Callable[[Iterator[bytes]], Stream]


class Bridge:
    """Serves `host:port` (port 0: any free one, see `port`) until `close()`; started when
    constructed. `on_error` is told each stream's failure (say, PERMISSION_DENIED), once."""

    def __init__(
        self,
        open_stream: OpenStream,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_error: Callable[[BaseException], None] = lambda exc: None,
    ) -> None:
        self._open_stream = open_stream
        self._on_error = on_error
        try:
            self._listener = socket.create_server((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        self.host, self.port = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._closed = False
        self._connections: set[_Connection] = set()
        self._accepting = threading.Thread(target=self._accept, name="bridge-accept", daemon=True)
        self._accepting.start()
        log.info("bridge_listening", host=self.host, port=self.port)

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connections(self) -> int:
        """How many connections are open now."""
        with self._lock:
            return len(self._connections)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            open_now = list(self._connections)
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accepting.join()
        for connection in open_now:
            connection.close()
        for connection in open_now:
            connection.join()

    def _accept(self) -> None:
        while True:
            try:
                sock, peer = self._listener.accept()
            except OSError:
                return  # closed
            connection = _Connection(sock, self)
            with self._lock:
                if self._closed:
                    sock.close()
                    return
                self._connections.add(connection)
            log.info("bridge_connected", peer=f"{peer[0]}:{peer[1]}")
            connection.start()

    def _ended(self, connection: _Connection, error: BaseException | None) -> None:
        with self._lock:
            self._connections.discard(connection)
        if error is not None:
            self._on_error(error)


class _Connection:
    def __init__(self, sock: socket.socket, bridge: Bridge) -> None:
        self._sock = sock
        self._bridge = bridge
        self._outgoing: queue.Queue[bytes | None] = queue.Queue()
        self._stream: Stream | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._writer = threading.Thread(target=self._run, name="bridge-stream", daemon=True)
        self._reader = threading.Thread(target=self._read, name="bridge-socket", daemon=True)

    def start(self) -> None:
        self._writer.start()

    def join(self) -> None:
        self._writer.join()

    def close(self) -> None:
        """End this connection from any thread: cancel the stream, wake both threads."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            stream = self._stream
        self._outgoing.put(None)
        if stream is not None:
            stream.cancel()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def _requests(self) -> Iterator[bytes]:
        while (data := self._outgoing.get()) is not None:
            yield data

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            stream = self._bridge._open_stream(self._requests())
            with self._lock:
                self._stream = stream
                closed = self._closed
            if closed:
                stream.cancel()
            self._reader.start()
            self._pump(stream)
        except Exception as exc:  # the stream's failure (a gRPC status, say), for on_error
            error = None if self._closed else exc
        finally:
            self.close()
            if self._reader.ident is not None:  # it was started
                self._reader.join()
            self._sock.close()
            self._bridge._ended(self, error)

    def _pump(self, incoming: Iterable[bytes]) -> None:
        for data in incoming:
            try:
                self._sock.sendall(data)
            except OSError:
                return  # the local client went away; close() cancels the stream

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(CHUNK)
            except OSError:
                data = b""
            if not data:
                self._outgoing.put(None)  # the local client closed its side: half-close
                return
            self._outgoing.put(data)
