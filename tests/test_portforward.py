"""kvd.portforward: real TCP connections on loopback, pumped into streams given as factories.

The streams here are plain Python iterables (the bridge's contract is bytes in, bytes out, and
`cancel`); tests/controller/test_service.py runs the bridge over the real ControllerService.Vnc
with a real VNC client.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from kvd import portforward
from tests.support.waiting import wait_for

TIMEOUT = 10.0


class Echo:
    """Answers each chunk in upper case; ends when the requests end, or after `limit` chunks,
    or fails with `fail` after the first chunk."""

    def __init__(
        self, requests: Iterator[bytes], *, limit: int | None = None, fail: Exception | None = None
    ) -> None:
        self.requests = requests
        self.limit = limit
        self.fail = fail
        self.cancelled = threading.Event()
        self.half_closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        for count, data in enumerate(self.requests, start=1):
            yield data.upper()
            if self.fail is not None:
                raise self.fail
            if self.limit is not None and count >= self.limit:
                return
        self.half_closed.set()

    def cancel(self) -> bool:
        self.cancelled.set()
        return True


class Streams:
    def __init__(self, **options: object) -> None:
        self.made: list[Echo] = []
        self.options = options

    def __call__(self, requests: Iterator[bytes]) -> Echo:
        stream = Echo(requests, **self.options)  # type: ignore[arg-type]
        self.made.append(stream)
        return stream


def _connect(bridge: portforward.Bridge) -> socket.socket:
    sock = socket.create_connection((bridge.host, bridge.port), timeout=TIMEOUT)
    return sock


def _read_to_end(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


@pytest.fixture
def threads_before() -> Iterator[int]:
    before = threading.active_count()
    yield before
    wait_for(
        f"the bridge's threads gone (back to {before})",
        lambda: threading.active_count() <= before,
        timeout=TIMEOUT,
        diagnose=lambda: sorted(t.name for t in threading.enumerate()),
    )


def test_bytes_flow_both_ways_and_a_local_close_half_closes_the_stream(
    threads_before: int,
) -> None:
    streams = Streams()
    with portforward.Bridge(streams) as bridge:
        assert bridge.port > 0
        first, second = _connect(bridge), _connect(bridge)
        first.sendall(b"hello")
        second.sendall(b"other")
        assert first.recv(5) == b"HELLO"
        assert second.recv(5) == b"OTHER"
        assert bridge.connections == 2
        first.shutdown(socket.SHUT_WR)  # the local client is done sending
        assert _read_to_end(first) == b""  # … so the stream ended, and so did the connection
        assert streams.made[0].half_closed.is_set()
        wait_for("one connection left", lambda: bridge.connections == 1, timeout=TIMEOUT)
        second.sendall(b"still")
        assert second.recv(5) == b"STILL"
        first.close()
    # close() ended the other connection and cancelled its stream
    assert _read_to_end(second) == b""
    assert streams.made[1].cancelled.is_set()
    second.close()


def test_the_stream_ending_closes_the_connection(threads_before: int) -> None:
    with portforward.Bridge(Streams(limit=1)) as bridge, _connect(bridge) as sock:
        sock.sendall(b"bye")
        assert _read_to_end(sock) == b"BYE"
        wait_for("no connection left", lambda: bridge.connections == 0, timeout=TIMEOUT)


def test_a_failing_stream_is_reported_once_and_closes_the_connection(
    threads_before: int,
) -> None:
    errors: list[BaseException] = []
    failure = RuntimeError("PERMISSION_DENIED: no vnc for you")
    with (
        portforward.Bridge(Streams(fail=failure), on_error=errors.append) as bridge,
        _connect(bridge) as sock,
    ):
        sock.sendall(b"x")
        assert _read_to_end(sock) == b"X"
        wait_for("the failure reported", lambda: errors, timeout=TIMEOUT)
    assert errors == [failure]


def test_a_factory_that_raises_is_reported_and_the_bridge_keeps_serving(
    threads_before: int,
) -> None:
    errors: list[BaseException] = []
    calls = 0

    def flaky(requests: Iterator[bytes]) -> Echo:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("controller unreachable")
        return Echo(requests)

    with portforward.Bridge(flaky, on_error=errors.append) as bridge:
        with _connect(bridge) as sock:
            assert _read_to_end(sock) == b""
        with _connect(bridge) as sock:
            sock.sendall(b"again")
            assert sock.recv(5) == b"AGAIN"
    assert [str(e) for e in errors] == ["controller unreachable"]


def test_a_port_in_use_is_an_error_naming_it() -> None:
    with portforward.Bridge(Streams()) as bridge:
        taken = f"cannot listen on 127.0.0.1:{bridge.port}: "
        with pytest.raises(OSError, match=taken):
            portforward.Bridge(Streams(), port=bridge.port)
