"""kvd's bearer tokens on gRPC: the caller's side (a token file that rotates, a channel that
attaches the token, seen by a real gRPC server over TCP: what reaches the server is what it can
check) and reading the token back from a call's metadata."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from kvd import rpc_auth

TIMEOUT = 10.0


def _received(request: bytes, context: Any) -> str:
    """Echo the call's metadata, one `key=value` per line, in order."""
    lines = [f"{key}={value}" for key, value in context.invocation_metadata()]
    return "\n".join(line for line in lines if not line.startswith(("user-agent=", ":")))


def _received_stream(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
    for request in requests:
        yield _received(request, context).encode()


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    identity: dict[str, Any] = {"request_deserializer": None, "response_serializer": None}
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(
            lambda r, c: _received(r, c).encode(), **identity
        ),
        "Stream": grpc.stream_stream_rpc_method_handler(_received_stream, **identity),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.Echo", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None).wait(5)


def test_every_call_through_the_channel_carries_the_token(address: str) -> None:
    with rpc_auth.authorized_channel(grpc.insecure_channel(address), "s3cret") as channel:
        unary = channel.unary_unary("/t.Echo/Unary")
        assert unary(b"", timeout=TIMEOUT).decode() == "authorization=Bearer s3cret"
        # the call's own authorization gives way; its other metadata stays
        mixed = unary(b"", metadata=[("authorization", "Bearer old"), ("x-k", "v")], timeout=10)
        assert mixed.decode().splitlines() == ["x-k=v", "authorization=Bearer s3cret"]
        stream = channel.stream_stream("/t.Echo/Stream")
        assert [m.decode() for m in stream(iter([b"a"]), timeout=TIMEOUT)] == [
            "authorization=Bearer s3cret"
        ]


def test_call_metadata_is_the_same_header(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        unary = channel.unary_unary("/t.Echo/Unary")
        answer = unary(b"", metadata=rpc_auth.call_metadata("tok"), timeout=TIMEOUT)
    assert answer.decode() == "authorization=Bearer tok"


def test_the_channel_sends_the_token_its_source_gives_at_each_call(address: str) -> None:
    tokens = iter(["first", "second"])
    with rpc_auth.authorized_channel(grpc.insecure_channel(address), lambda: next(tokens)) as ch:
        unary = ch.unary_unary("/t.Echo/Unary")
        assert unary(b"", timeout=TIMEOUT).decode() == "authorization=Bearer first"
        assert unary(b"", timeout=TIMEOUT).decode() == "authorization=Bearer second"


def test_load_token(tmp_path: Path) -> None:
    path = tmp_path / "token"
    with pytest.raises(rpc_auth.TokenError, match="does not exist"):
        rpc_auth.load_token(path)
    path.write_text(" \n")
    with pytest.raises(rpc_auth.TokenError, match="is empty"):
        rpc_auth.load_token(path)
    path.write_text("s3cret\n")
    assert rpc_auth.load_token(path) == "s3cret"


def test_a_token_file_is_read_again_once_it_is_replaced(tmp_path: Path) -> None:
    """As the kubelet rotates a projected token: a new file is swapped in."""
    path = tmp_path / "token"
    token = rpc_auth.TokenFile(path)
    with pytest.raises(rpc_auth.TokenError, match="does not exist"):
        token()
    path.write_text("one\n")
    assert token() == "one"
    new = tmp_path / "token.new"
    new.write_text("two-rotated\n")
    new.replace(path)
    assert token() == "two-rotated"
    path.write_text("")
    with pytest.raises(rpc_auth.TokenError, match="is empty"):
        token()


@pytest.mark.parametrize(
    ("metadata", "token", "problem"),
    [
        pytest.param([("authorization", "Bearer abc")], "abc", None, id="bearer"),
        pytest.param([("authorization", "bearer  abc ")], "abc", None, id="scheme-any-case"),
        pytest.param([("authorization", b"Bearer abc")], "abc", None, id="bytes"),
        pytest.param([], None, "missing credentials", id="none"),
        pytest.param([("x-other", "Bearer abc")], None, "missing credentials", id="other-key"),
        pytest.param(
            [("authorization", "Bearer a"), ("authorization", "Bearer b")],
            None,
            "malformed credentials: the call has 2",
            id="two",
        ),
        pytest.param([("authorization", "Basic abc")], None, "must be `Bearer", id="basic"),
        pytest.param([("authorization", "Bearer ")], None, "must be `Bearer", id="empty"),
    ],
)
def test_bearer_token(
    metadata: list[tuple[str, Any]], token: str | None, problem: str | None
) -> None:
    if problem is None:
        assert rpc_auth.bearer_token(metadata) == token
    else:
        with pytest.raises(rpc_auth.CredentialsError, match=problem) as raised:
            rpc_auth.bearer_token(metadata)
        assert "abc" not in str(raised.value)
