"""The wire form: bodies kubectl 1.37 sent (captured with `kubectl -v=8`), and watch frames."""

from __future__ import annotations

import struct

import pytest

from kvd.local.apiserver.protobuf import envelope

# `kubectl create namespace x`
CREATE_NAMESPACE = bytes.fromhex(
    "6b3873000a0f0a02763112094e616d6573706163651219"
    "0a110a017812001a0022002a0032003800420012001a020a001a002200"
)
# `kubectl auth can-i get pods`
CAN_I_GET_PODS = bytes.fromhex(
    "6b3873000a320a17617574686f72697a6174696f6e2e6b38732e696f2f763112175365"
    "6c665375626a656374416363657373526576696577123c0a100a0012001a0022002a00320038004200"
    "121e0a1c0a0764656661756c7412036765741a0022002a04706f647332003a001a0808001200"
    "1a0020001a002200"
)


def test_kubectls_bodies_read_as_the_json_it_would_have_sent() -> None:
    # the JSON is `kubectl create namespace x --dry-run=client -o json`
    assert envelope.decode(CREATE_NAMESPACE) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "x"},
        "spec": {},
        "status": {},
    }
    assert envelope.decode(CAN_I_GET_PODS) == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}},
        "status": {"allowed": False},
    }


def test_encoding_writes_what_go_writes_for_the_envelope() -> None:
    data = envelope.encode({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}})

    assert data == bytes.fromhex(
        "6b3873000a0f0a02763112094e616d657370616365 1205 0a030a0178 1a00 2200"
    )


def test_kinds_without_a_message_are_not_encoded() -> None:
    assert envelope.encode({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine"}) is None
    assert envelope.encode({"kind": "Status"}) is None


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param(b'{"kind": "Namespace"}', "magic number", id="json"),
        pytest.param(b"k8s\x00\x0a\xff", "not a runtime.Unknown", id="truncated"),
        pytest.param(
            b"k8s\x00" + bytes.fromhex("0a0f0a02763112094e616d657370616365") + b"\x1a\x04gzip",
            "unsupported content encoding",
            id="encoded",
        ),
        pytest.param(
            b"k8s\x00" + bytes.fromhex("0a0b0a0276311205426f677573"),
            'no kind "Bogus" is registered for version "v1"',
            id="unknown-kind",
        ),
        pytest.param(
            b"k8s\x00" + bytes.fromhex("0a0f0a02763112094e616d657370616365") + b"\x12\x02\x0a\xff",
            "could not be decoded",
            id="bad-object",
        ),
    ],
)
def test_what_is_not_an_object_is_refused(data: bytes, error: str) -> None:
    with pytest.raises(envelope.EnvelopeError, match=error):
        envelope.decode(data)


def test_watch_frames_are_length_prefixed_watch_events() -> None:
    added = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}
    gone = {"apiVersion": "v1", "kind": "Status", "status": "Failure", "code": 410}

    frames = [envelope.watch_frame("ADDED", added), envelope.watch_frame("ERROR", gone)]

    assert all(frame is not None for frame in frames)
    stream = b"".join(frame for frame in frames if frame is not None)
    (length,) = struct.unpack(">I", stream[:4])
    assert stream[4 : 4 + length].startswith(b"\x0a\x05ADDED")  # a bare WatchEvent, no magic
    assert envelope.read_watch_frames(stream) == [("ADDED", added), ("ERROR", gone)]
    with pytest.raises(envelope.EnvelopeError, match="ends inside a frame"):
        envelope.read_watch_frames(stream[:-1])
