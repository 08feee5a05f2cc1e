"""The server side of RFC 6455: the handshake and the frames, against hand-built client frames.
(The same code against a real client, websocket-client, is in test_subresources.py.)"""

from __future__ import annotations

import io
import os
import struct

import pytest

from kvd.controller import websocket

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's own example
UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "keep-alive, Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": KEY,
}


def test_the_handshake_answers_the_rfc_example_and_picks_the_subprotocol() -> None:
    answer = websocket.handshake(
        {**UPGRADE, "Sec-WebSocket-Protocol": "other, plain.kubevirt.io"}, ("plain.kubevirt.io",)
    )
    assert answer["Sec-WebSocket-Accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert answer["Sec-WebSocket-Protocol"] == "plain.kubevirt.io"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"Upgrade": "h2c"}, "Upgrade: websocket", id="not-websocket"),
        pytest.param({"Sec-WebSocket-Version": "8"}, "version 13", id="old-version"),
        pytest.param({"Sec-WebSocket-Key": "short"}, "16 bytes", id="bad-key"),
        pytest.param(
            {"Sec-WebSocket-Protocol": "v4.channel.k8s.io"}, "plain.kubevirt.io", id="protocol"
        ),
    ],
)
def test_the_handshake_refuses_naming_what_is_wrong(change: dict[str, str], message: str) -> None:
    with pytest.raises(websocket.HandshakeError, match=message.replace(".", r"\.")):
        websocket.handshake({**UPGRADE, **change}, ("plain.kubevirt.io",))


def client(*frames: bytes) -> tuple[websocket.Connection, io.BytesIO]:
    out = io.BytesIO()
    return websocket.Connection(io.BytesIO(b"".join(frames)), out), out


def masked(opcode: int, payload: bytes, *, final: bool = True) -> bytes:
    data = websocket.frame(opcode, payload, mask=os.urandom(4))
    return data if final else bytes([data[0] & 0x7F]) + data[1:]


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 200_000])
def test_messages_of_every_length_encoding_arrive_whole(size: int) -> None:
    payload = os.urandom(size)
    conn, _ = client(masked(websocket.BINARY, payload))
    assert conn.receive() == payload


def test_fragments_are_joined_and_pings_answered_between_them() -> None:
    conn, out = client(
        masked(websocket.TEXT, b"hel", final=False),
        masked(websocket.PING, b"p"),
        masked(websocket.CONTINUATION, b"lo"),
        masked(websocket.CLOSE, struct.pack("!H", 1000)),
    )
    assert conn.receive() == b"hello"
    assert conn.receive() is None  # closed
    sent = out.getvalue()
    assert sent.startswith(websocket.frame(websocket.PONG, b"p"))
    assert sent.endswith(websocket.frame(websocket.CLOSE, struct.pack("!H", 1000)))
    assert not conn.send(b"after close")


def test_unmasked_client_frames_are_a_protocol_error() -> None:
    conn, _ = client(websocket.frame(websocket.BINARY, b"x"))
    with pytest.raises(websocket.ProtocolError, match="masked"):
        conn.receive()


def test_a_dropped_connection_reads_as_closed() -> None:
    conn, _ = client(masked(websocket.BINARY, b"abcdef")[:5])
    assert conn.receive() is None


def test_the_server_sends_unmasked_binary_frames() -> None:
    conn, out = client()
    assert conn.send(b"\x00\x01" * 100)
    sent = out.getvalue()
    assert sent[:4] == bytes([0x82, 126]) + struct.pack("!H", 200)
    assert sent[4:] == b"\x00\x01" * 100
