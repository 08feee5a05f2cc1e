"""The server side of RFC 6455 websockets, as much as the console and VNC streams need.

The handshake answers an HTTP/1.1 upgrade (`Sec-WebSocket-Key` → `Sec-WebSocket-Accept`) and
picks a subprotocol the client offers (`plain.kubevirt.io`: every binary message carries raw
bytes, as virt-api's). After it, `Connection` reads the client's frames (masked, as RFC 6455
requires of clients; fragments joined; pings answered; a close answered and ended) and writes
unmasked binary frames. Reading and writing may happen on two threads at once: writes are
serialized by a lock, reads belong to one reader thread.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
from collections.abc import Mapping
from typing import BinaryIO, Final

GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
NORMAL, GOING_AWAY, PROTOCOL_ERROR, TOO_BIG, INTERNAL_ERROR = 1000, 1001, 1002, 1009, 1011
MAX_MESSAGE: Final = 16 << 20  # far more than a burst of keys or RFB input


class HandshakeError(Exception):
    """The request is no websocket upgrade this server takes; the message says why."""


class ProtocolError(Exception):
    """The peer broke RFC 6455; `code` is the close code to answer with."""

    def __init__(self, message: str, code: int = PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def handshake(headers: Mapping[str, str], protocols: tuple[str, ...]) -> dict[str, str]:
    """The `101 Switching Protocols` headers for an upgrade request with `headers` (names in
    any case), choosing the first of the client's subprotocols that is in `protocols`."""
    lower = {k.lower(): v for k, v in headers.items()}
    if lower.get("upgrade", "").lower() != "websocket":
        raise HandshakeError("this path is a websocket: send `Upgrade: websocket`")
    if "upgrade" not in {t.strip().lower() for t in lower.get("connection", "").split(",")}:
        raise HandshakeError("a websocket upgrade needs `Connection: Upgrade`")
    if lower.get("sec-websocket-version", "") != "13":
        raise HandshakeError("only websocket version 13 is supported")
    key = lower.get("sec-websocket-key", "")
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        valid = False
    if not valid:
        raise HandshakeError("Sec-WebSocket-Key is missing or not 16 bytes in base64")
    answer = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": accept_key(key),
    }
    offered = [p.strip() for p in lower.get("sec-websocket-protocol", "").split(",") if p.strip()]
    if offered:
        chosen = next((p for p in offered if p in protocols), None)
        if chosen is None:
            raise HandshakeError(
                f"none of the subprotocols {', '.join(offered)} is served here: "
                f"use {', '.join(protocols)}"
            )
        answer["Sec-WebSocket-Protocol"] = chosen
    return answer


def frame(opcode: int, payload: bytes = b"", *, mask: bytes | None = None) -> bytes:
    """One final frame; `mask` (4 bytes) for a client's."""
    head = bytearray([0x80 | opcode])
    bit = 0x80 if mask else 0
    size = len(payload)
    if size < 126:
        head.append(bit | size)
    elif size < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if mask:
        return bytes(head) + mask + _masked(payload, mask)
    return bytes(head) + payload


def _masked(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return b""
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


class Connection:
    """An upgraded connection: `receive()` a message's bytes (None once closed), `send()`
    binary messages, `close()`."""

    def __init__(self, reader: BinaryIO, writer: BinaryIO) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = threading.Lock()
        self._closed = False

    def receive(self) -> bytes | None:
        """The next data message (text or binary, as bytes); None when the peer closed or the
        connection dropped. Control frames are handled on the way."""
        parts: list[bytes] = []
        size = 0
        while True:
            read = self._frame()
            if read is None:
                return None
            final, opcode, payload = read
            if opcode == CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else NORMAL
                self.close(code if code in (NORMAL, GOING_AWAY) else NORMAL)
                return None
            if opcode == PING:
                self._write(frame(PONG, payload))
                continue
            if opcode == PONG:
                continue
            if opcode not in (CONTINUATION, TEXT, BINARY):
                raise ProtocolError(f"unknown opcode {opcode:#x}")
            if (opcode == CONTINUATION) != bool(parts):
                raise ProtocolError("a continuation frame must follow an unfinished message")
            size += len(payload)
            if size > MAX_MESSAGE:
                raise ProtocolError("message too big", TOO_BIG)
            parts.append(payload)
            if final:
                return b"".join(parts)

    def _frame(self) -> tuple[bool, int, bytes] | None:
        head = self._exactly(2)
        if head is None:
            return None
        final, opcode = bool(head[0] & 0x80), head[0] & 0x0F
        if head[0] & 0x70:
            raise ProtocolError("reserved bits set: no extension was negotiated")
        if not head[1] & 0x80:
            raise ProtocolError("client frames must be masked")
        size = head[1] & 0x7F
        if opcode >= CLOSE and (size > 125 or not final):
            raise ProtocolError("control frames are final and at most 125 bytes")
        if size in (126, 127):
            extended = self._exactly(2 if size == 126 else 8)
            if extended is None:
                return None
            size = int.from_bytes(extended, "big")
        if size > MAX_MESSAGE:
            raise ProtocolError("message too big", TOO_BIG)
        mask = self._exactly(4)
        payload = self._exactly(size) if size else b""
        if mask is None or payload is None:
            return None
        return final, opcode, _masked(payload, mask)

    def _exactly(self, count: int) -> bytes | None:
        data = b""
        while len(data) < count:
            try:
                chunk = self._reader.read(count - len(data))
            except (OSError, ValueError):
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def send(self, data: bytes) -> bool:
        """Send one binary message; False when the connection is gone."""
        return self._write(frame(BINARY, data))

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Send a close frame (once); the caller closes the socket."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        payload = struct.pack("!H", code) + reason.encode()[:120]
        self._write(frame(CLOSE, payload), closing=True)

    def _write(self, data: bytes, *, closing: bool = False) -> bool:
        with self._lock:
            if self._closed and not closing:
                return False
            try:
                self._writer.write(data)
                self._writer.flush()
            except (OSError, ValueError):
                self._closed = True
                return False
            return True
