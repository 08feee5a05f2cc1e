"""Writing a response: JSON, or Kubernetes' protobuf when the client prefers it.

The `Accept` header is negotiated as kube-apiserver does: media ranges in order of their `q`
(ties keep their order), the first one the server can produce wins. Protobuf is possible only
for an object whose apiVersion and kind have a message (`protobuf.kinds`): built-in kinds, their
lists, Status. A custom resource, a Table or a discovery document falls through to JSON, which
kubectl always accepts as well; a client that accepts protobuf only gets 406 for those.
Accept headers the server has never honoured (YAML, say) keep getting JSON, as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from kvd import logs
from kvd.local.apiserver import errors
from kvd.local.apiserver.protobuf import convert, envelope, kinds

log = logs.get_logger(__name__)

Encoding = Literal["json", "protobuf"]
# Set on a request whose target has no protobuf form (a custom resource): everything it is
# answered, its errors included, is JSON, as kube-apiserver's CRD handler answers.
JSON_ONLY = web.RequestKey("kvd.json_only", bool)
JSON_RANGES = frozenset({"application/json", "application/*", "*/*"})


@dataclass(frozen=True)
class MediaRange:
    media_type: str
    q: float


def media_ranges(accept: str) -> list[MediaRange]:
    """The ranges of an Accept header, most preferred first (q=0 ones left out)."""
    ranges = []
    for part in accept.split(","):
        media_type, *params = (piece.strip() for piece in part.split(";"))
        if not media_type:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            ranges.append(MediaRange(media_type.lower(), q))
    return sorted(ranges, key=lambda r: -r.q)


def negotiate(accept: str, *, protobuf: bool) -> Encoding | None:
    """The encoding to answer in; None when the client accepts only protobuf and `protobuf`
    (whether the body has a protobuf form) is False."""
    if "protobuf" not in accept:
        return "json"  # the common case, decided without parsing
    asked_protobuf = False
    for media in media_ranges(accept):
        if media.media_type == envelope.MEDIA_TYPE:
            if protobuf:
                return "protobuf"
            asked_protobuf = True
        elif media.media_type in JSON_RANGES:
            return "json"
    return None if asked_protobuf else "json"


def not_acceptable() -> errors.APIError:
    return errors.APIError(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json",
    )


def has_protobuf(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and isinstance(body.get("apiVersion"), str)
        and isinstance(body.get("kind"), str)
        and kinds.message_class(body["apiVersion"], body["kind"]) is not None
    )


def respond(
    request: web.Request,
    body: Any,
    *,
    status: int = 200,
    headers: list[tuple[str, str]] | None = None,
    strict: bool = True,
) -> web.Response:
    """`body` in the encoding the request's Accept prefers. `strict=False` (for errors) answers
    JSON where kube would refuse with 406, so that a refusal is never itself refused."""
    accept = request.headers.get("Accept", "")
    protobuf = not request.get(JSON_ONLY, False) and has_protobuf(body)
    encoding = negotiate(accept, protobuf=protobuf)
    if encoding is None:
        if strict:
            raise not_acceptable()
        encoding = "json"
    if encoding == "protobuf":
        try:
            data = envelope.encode(body)
        except convert.ConversionError as exc:
            # A stored object kube could never have held: JSON still carries it.
            log.warning("protobuf_encoding_failed", kind=body.get("kind"), error=str(exc))
            if negotiate(accept, protobuf=False) is None:
                raise errors.APIError(
                    500, "InternalError", f"the object cannot be encoded as protobuf: {exc}"
                ) from None
        else:
            assert data is not None  # has_protobuf said so
            return web.Response(
                body=data, status=status, headers=headers, content_type=envelope.MEDIA_TYPE
            )
    return web.Response(
        text=json.dumps(body), status=status, headers=headers, content_type="application/json"
    )
