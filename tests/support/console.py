"""Console clients for tests: text that another side produces, followed on a reader thread,
kept whole, and awaited with a deadline.

`Transcript` follows any stream of chunks (bytes or text) — a serial console file QEMU appends
to (`tail`), a pseudo-terminal (`pty_output`), a subprocess's stdout — and `wait_for` /
`wait_match` a marker in it; when the stream ends without it, the wait fails at once rather than
at its deadline, and every failure shows what arrived so far.

`GrpcConsole` is the bidirectional `Console` RPC every kvd service offers (LauncherService,
HandlerService, ControllerService): the same shape everywhere — an `open` request first, then
`input` bytes; an `opened` answer first, then `output` bytes — so one client serves them all.
It takes the stub's method and the first request: `GrpcConsole(stub.Console, first)`.
"""

from __future__ import annotations

import codecs
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import grpc

from tests.support import waiting

BOOT = 120.0  # seconds to a console marker under TCG, generous for a loaded CI machine
ENDED = 30.0  # seconds for a stream to end once it was told to
SHOWN = 3000  # characters of the transcript shown in a failure


class Transcript:
    """Everything `chunks` delivers, read on a daemon thread; `what` names it in failures."""

    def __init__(
        self,
        chunks: Iterable[bytes | str],
        *,
        what: str = "console",
        diagnose: Callable[[], object] | None = None,
    ) -> None:
        self.what = what
        self.text = ""
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self.arrivals: list[tuple[int, float]] = []  # (length of text, time.monotonic())
        self._diagnose = diagnose
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._reader = threading.Thread(
            target=self._read, args=(chunks,), name=f"read-{what}", daemon=True
        )
        self._reader.start()

    def _read(self, chunks: Iterable[bytes | str]) -> None:
        try:
            for chunk in chunks:
                self._add(self._decoder.decode(chunk) if isinstance(chunk, bytes) else chunk)
        except BaseException as exc:  # kept for the test to see: gRPC status, OSError, ...
            self.error = exc
        finally:
            self._add(self._decoder.decode(b"", final=True))
            self.ended.set()
            self._ended()

    def _add(self, text: str) -> None:
        if text:
            self.text += text
            self.arrivals.append((len(self.text), time.monotonic()))

    def _ended(self) -> None:
        """Called on the reader thread once the stream is over."""

    def wait_for(self, marker: str, timeout: float = BOOT) -> None:
        """Wait until `marker` appears in the text."""
        self.wait_match(re.escape(marker), timeout=timeout)

    def wait_match(self, pattern: str, *, timeout: float = BOOT) -> re.Match[str]:
        """Wait until the regex `pattern` (multi-line mode) matches the text; the match."""
        rx = re.compile(pattern, re.MULTILINE)

        def found() -> re.Match[str] | None:
            over = self.ended.is_set()  # before reading the text: nothing arrives after it
            match = rx.search(self.text)
            if match is None and over:
                raise AssertionError(f"{self.what} ended without {pattern!r} {self.diagnostics()}")
            return match

        return waiting.wait_for(
            f"{pattern!r} on {self.what}", found, timeout=timeout, diagnose=self.diagnostics
        )

    def wait_ended(self, timeout: float = ENDED) -> None:
        """Wait until the stream is over and its reader thread is gone."""
        assert self.ended.wait(timeout), f"{self.what} still open after {timeout}s"
        self._reader.join(timeout)  # moments: only the end of `_read` is left to run

    def arrived_at(self, index: int) -> float:
        """When (time.monotonic()) the character at `index` of the text was read."""
        return next(t for end, t in self.arrivals if end > index)

    def diagnostics(self) -> str:
        extra = f"\n{self._diagnose()}" if self._diagnose is not None else ""
        return (
            f"(ended={self.ended.is_set()}, error={self.error!r}); {self.what} so far:\n"
            f"{self.text[-SHOWN:]}{extra}"
        )


class GrpcConsole(Transcript):
    """A `Console` stream of a kvd service, from its first request (`open`, or anything the
    test wants the server to refuse) on."""

    def __init__(
        self,
        open_stream: Callable[..., Iterator[Any]],
        first: Any,
        *,
        metadata: list[tuple[str, str]] | None = None,
        what: str = "console",
    ) -> None:
        self.opened: Any = None  # the server's ConsoleOpened, once it came
        self._request = type(first)
        self._input: queue.Queue[Any] = queue.Queue()
        self._input.put(first)
        self._call = open_stream(iter(self._input.get, None), metadata=metadata)
        super().__init__(self._outputs(), what=what)

    def _outputs(self) -> Iterator[bytes]:
        for message in self._call:
            if message.WhichOneof("message") == "opened":
                self.opened = message.opened
            else:
                yield message.output

    def _ended(self) -> None:
        self._input.put(None)  # ends the request stream too

    def send(self, data: bytes) -> None:
        self._input.put(self._request(input=data))

    def wait_opened(self, timeout: float = ENDED) -> Any:
        def opened() -> Any:
            assert self.opened is not None or not self.ended.is_set(), (
                f"{self.what} ended before `opened`: {self.error!r}"
            )
            return self.opened

        return waiting.wait_for(f"{self.what} to be opened", opened, timeout=timeout)

    def wait_error(self, timeout: float = ENDED) -> grpc.RpcError:
        """The status the stream ended with; fails if it does not end, or ends without one."""
        self.wait_ended(timeout)
        error = self.error
        assert isinstance(error, grpc.RpcError), (
            f"{self.what} ended without an error status: {error!r}\n{self.text[-1000:]}"
        )
        return error

    def cancel(self) -> None:
        """End the stream from this side, and wait until it has ended."""
        self._input.put(None)
        self._call.cancel()
        self.wait_ended()


def tail(path: Path, *, running: Callable[[], bool], interval: float = 0.05) -> Iterator[bytes]:
    """What another process appends to `path` while `running()`, then whatever it wrote last.

    A file has no "more data" notification, so this reads it every `interval` seconds.
    """
    offset = 0
    while True:
        alive = running()  # before reading: what it wrote before it stopped is read below
        try:
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        if data:
            offset += len(data)
            yield data
        elif not alive:
            return
        else:
            time.sleep(interval)


def pty_output(fd: int) -> Iterator[bytes]:
    """What arrives on the master side of a pseudo-terminal, until the other side closes."""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: every process on the terminal's side has closed it
            return
        if not data:
            return
        yield data
