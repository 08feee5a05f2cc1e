"""The wire form of Kubernetes' protobuf encoding.

A body is the 4-byte magic `k8s\\0` followed by a `runtime.Unknown` message: its `typeMeta`
names the apiVersion and kind, `raw` holds the object's own message, and `contentEncoding` and
`contentType` stay empty. A watch is a stream of frames, each a 4-byte big-endian length and a
bare `meta.v1.WatchEvent` (no magic, no Unknown) whose `object.raw` is an object in the envelope
above (client-go's LengthDelimitedFramer, the raw serializer, and the embedded one).
"""

from __future__ import annotations

import struct
from typing import Any

from google.protobuf import message_factory
from google.protobuf.message import DecodeError, Message

from kvd.local.apiserver.protobuf import convert, kinds
from kvd.local.apiserver.protobuf.gen.k8s.io.apimachinery.pkg.runtime import generated_pb2

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
WATCH_MEDIA_TYPE = f"{MEDIA_TYPE};stream=watch"
# runtime.Unknown (the generated module's attributes are invisible to the type checker)
_UNKNOWN: Any = message_factory.GetMessageClass(
    generated_pb2.DESCRIPTOR.message_types_by_name["Unknown"]
)


class EnvelopeError(ValueError):
    """A body that is not an object in Kubernetes' protobuf encoding."""


class UnknownKind(EnvelopeError):
    """A well-formed body naming an apiVersion and kind with no protobuf form here."""


def decode(data: bytes) -> dict[str, Any]:
    """The JSON object a protobuf body holds, apiVersion and kind included."""
    if not data.startswith(MAGIC):
        raise EnvelopeError("the body does not start with the protobuf magic number")
    unknown = _UNKNOWN()
    try:
        unknown.ParseFromString(data[len(MAGIC) :])
    except DecodeError as exc:
        raise EnvelopeError(f"the envelope is not a runtime.Unknown message: {exc}") from None
    if unknown.contentEncoding or unknown.contentType not in ("", MEDIA_TYPE):
        raise EnvelopeError(
            f"unsupported content encoding {unknown.contentEncoding!r} "
            f"or type {unknown.contentType!r} inside the envelope"
        )
    api_version, kind = unknown.typeMeta.apiVersion, unknown.typeMeta.kind
    cls = kinds.message_class(api_version, kind)
    if cls is None:
        raise UnknownKind(f'no kind "{kind}" is registered for version "{api_version}"')
    msg = cls()
    try:
        msg.ParseFromString(unknown.raw)
        obj = convert.to_json(msg)
    except DecodeError as exc:
        raise EnvelopeError(f"the {kind} in the envelope could not be decoded: {exc}") from None
    except convert.ConversionError as exc:
        raise EnvelopeError(f"the {kind} in the envelope could not be decoded: {exc}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}


def encode(obj: dict[str, Any]) -> bytes | None:
    """`obj` in the envelope, or None when its kind has no protobuf form.

    Raises convert.ConversionError when the object holds a value its message cannot."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    cls = kinds.message_class(api_version, kind)
    if cls is None:
        return None
    msg = cls()
    convert.from_json(obj, msg)
    wrapped: bytes = _unknown(api_version, kind, msg).SerializeToString(deterministic=True)
    return MAGIC + wrapped


def _unknown(api_version: str, kind: str, msg: Message) -> Any:
    unknown = _UNKNOWN()
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    unknown.raw = msg.SerializeToString(deterministic=True)
    # Go writes every field, the empty ones too
    unknown.contentEncoding = ""
    unknown.contentType = ""
    return unknown


def watch_frame(event_type: str, obj: dict[str, Any]) -> bytes | None:
    """One watch event as a length-prefixed frame; None when the object has no protobuf form."""
    embedded = encode(obj)
    if embedded is None:
        return None
    event: Any = kinds.meta("WatchEvent")()
    event.type = event_type
    event.object.raw = embedded
    payload: bytes = event.SerializeToString(deterministic=True)
    return struct.pack(">I", len(payload)) + payload


def read_watch_frames(stream: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The events in a protobuf watch stream (for clients and tests; a partial frame at the end
    is an error)."""
    events = []
    offset = 0
    while offset < len(stream):
        if offset + 4 > len(stream):
            raise EnvelopeError("the stream ends inside a frame's length")
        (length,) = struct.unpack_from(">I", stream, offset)
        offset += 4
        if offset + length > len(stream):
            raise EnvelopeError("the stream ends inside a frame")
        event: Any = kinds.meta("WatchEvent")()
        try:
            event.ParseFromString(stream[offset : offset + length])
        except DecodeError as exc:
            raise EnvelopeError(f"a frame is not a WatchEvent: {exc}") from None
        offset += length
        events.append((str(event.type), decode(event.object.raw)))
    return events
