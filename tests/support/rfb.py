"""A minimal RFB (VNC) client for tests, over any kvd `Vnc` stream or a socket.

Enough of RFB 3.8 to prove a display is really there: the server's banner, the version
answer, security type None, ClientInit (shared) and ServerInit, whose framebuffer width and
height the tests compare with what QEMU reports. `GrpcVnc` wraps the bidirectional Vnc RPC of
any kvd service (LauncherService, HandlerService, ControllerService: an optional `open` first,
then bytes as `data` both ways) as a byte pipe with deadlines.
"""

from __future__ import annotations

import queue
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

BANNER = b"RFB 003.008\n"
TIMEOUT = 30.0


@dataclass(frozen=True)
class ServerInit:
    width: int
    height: int
    name: str


class GrpcVnc:
    """One Vnc stream: `send` bytes, `read` exactly n bytes, then `half_close` or `cancel`."""

    def __init__(
        self,
        open_stream: Callable[..., Iterator[Any]],
        request: Callable[[bytes], Any],
        *,
        first: Any = None,
        metadata: list[tuple[str, str]] | None = None,
    ) -> None:
        self._request = request
        self._input: queue.Queue[Any] = queue.Queue()
        if first is not None:
            self._input.put(first)
        self._call: Any = open_stream(iter(self._input.get, None), metadata=metadata)
        self._buffer = bytearray()
        self._cond = threading.Condition()
        self.ended = threading.Event()
        self.error: grpc.RpcError | None = None
        self._reader = threading.Thread(target=self._read, name="test-vnc-read", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for message in self._call:
                with self._cond:
                    self._buffer += message.data
                    self._cond.notify_all()
        except grpc.RpcError as exc:
            self.error = exc
        finally:
            self._input.put(None)
            self.ended.set()
            with self._cond:
                self._cond.notify_all()

    def send(self, data: bytes) -> None:
        self._input.put(self._request(data))

    def read(self, n: int, timeout: float = TIMEOUT) -> bytes:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._buffer) < n:
                left = deadline - time.monotonic()
                if self.ended.is_set() or left <= 0:
                    raise AssertionError(
                        f"wanted {n} bytes of RFB, got {bytes(self._buffer)!r} "
                        f"(ended={self.ended.is_set()}, error={self.error!r})"
                    )
                self._cond.wait(left)
            data = bytes(self._buffer[:n])
            del self._buffer[:n]
            return data

    def half_close(self) -> None:
        self._input.put(None)

    def cancel(self) -> None:
        self._input.put(None)
        self._call.cancel()

    def wait_ended(self, timeout: float = TIMEOUT) -> grpc.RpcError | None:
        """Wait for the end of the stream: None when it ended OK, else its error."""
        assert self.ended.wait(timeout), f"the Vnc stream is still open after {timeout}s"
        self._reader.join(timeout)
        return self.error


def handshake(pipe: GrpcVnc, *, shared: bool = True) -> ServerInit:
    """From the server's banner to ServerInit, with no authentication (as QEMU's socket is)."""
    assert pipe.read(len(BANNER)) == BANNER
    pipe.send(BANNER)
    (count,) = pipe.read(1)
    assert count > 0, f"the server refused the connection: {pipe.read(4)!r}"
    types = pipe.read(count)
    assert 1 in types, f"security type None not offered: {list(types)}"
    pipe.send(b"\x01")
    assert pipe.read(4) == b"\x00\x00\x00\x00", "security handshake failed"
    pipe.send(b"\x01" if shared else b"\x00")
    width, height = struct.unpack(">HH", pipe.read(4))
    pipe.read(16)  # pixel format
    (name_length,) = struct.unpack(">I", pipe.read(4))
    return ServerInit(width, height, pipe.read(name_length).decode(errors="replace"))
