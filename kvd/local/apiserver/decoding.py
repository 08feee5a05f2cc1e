"""Reading a request: its body (JSON, YAML, or Kubernetes' protobuf for built-in kinds),
DeleteOptions, the write options (`dryRun`, `fieldValidation`), whether it asks for a Table, and
list continue tokens.

A body is refused before it is parsed when its media type is not one the target reads (415, with
kube-apiserver's list), and parsed within `documents`' bounds (nesting depth, decoded size; long
parses off the event loop). Write options are validated as kube-apiserver validates its
CreateOptions/UpdateOptions/PatchOptions/DeleteOptions: 422 Invalid naming the field.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kvd.local.apiserver import documents, errors
from kvd.local.apiserver.errors import Cause
from kvd.local.apiserver.objects import FieldValidation, Target
from kvd.local.apiserver.protobuf import envelope, kinds

JSON = "application/json"
YAML = "application/yaml"
APPLY_YAML = "application/apply-patch+yaml"
JSON_PATCH_TYPES = frozenset(
    {
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    }
)
# What a create or update reads, in kube-apiserver's order (it lists these in its 415). CBOR is
# answered 415 too, as a server without it must (clients fall back to JSON).
BODY_TYPES = (JSON, YAML)
PROTOBUF_BODY_TYPES = (JSON, YAML, envelope.MEDIA_TYPE)
DRY_RUN_VALUES = ("All",)
FIELD_VALIDATION_VALUES = ("", "Ignore", "Strict", "Warn")
# Every request's parses share one worker thread (documents.Parser).
PARSER = documents.Parser()


def speaks_protobuf(t: Target) -> bool:
    """Whether the target's kind is read and written in protobuf: built-in kinds only."""
    r = t.resource
    return r.crd_name is None and kinds.has_protobuf(r.group, t.version, r.kind)


def content_type(request: web.Request) -> str:
    """The body's media type; none given means JSON, as kube-apiserver assumes."""
    if "Content-Type" not in request.headers:
        return JSON
    return request.content_type


async def body(request: web.Request, *, protobuf: bool = False) -> Any:
    """The request's object; `protobuf`: whether the target accepts a protobuf body."""
    media = content_type(request)
    accepted = PROTOBUF_BODY_TYPES if protobuf else BODY_TYPES
    if media not in accepted:
        raise errors.unsupported_media_type(media, accepted)
    raw = await request.read()
    if not raw:
        raise errors.bad_request("the body of the request is empty")
    return await parse(raw, media)


async def patch(request: web.Request, media: str) -> bytes:
    """A patch body, checked against the document bounds before the patch code reads it."""
    raw = await request.read()
    if raw:
        await parse(raw, YAML if media == APPLY_YAML else JSON, what="patch")
    return raw


async def parse(raw: bytes, media: str, *, what: str = "body of the request") -> Any:
    """A document of `media` (JSON, YAML or protobuf) within `documents`' bounds."""
    load: Callable[[bytes], Any]
    if media == envelope.MEDIA_TYPE:
        load, inline = _load_protobuf, documents.INLINE_JSON
    elif media == YAML:
        load, inline = documents.load_yaml, documents.INLINE_YAML
    else:
        load, inline = documents.load_json, documents.INLINE_JSON
    try:
        return await PARSER.parse(load, raw, inline=inline)
    except documents.TooLarge as exc:
        raise errors.too_large(str(exc)) from None
    except documents.Busy:
        raise errors.too_many_requests() from None
    except (documents.DocumentError, envelope.EnvelopeError) as exc:
        raise errors.bad_request(f"the {what} could not be decoded: {exc}") from None


def _load_protobuf(raw: bytes) -> dict[str, Any]:
    try:
        obj = envelope.decode(raw)
    except RecursionError:
        raise documents.TooDeep() from None
    documents.measure(obj)
    return obj


@dataclass(frozen=True)
class WriteOptions:
    dry_run: bool
    validation: FieldValidation


_OPTIONS_KIND = {
    "POST": "CreateOptions",
    "PUT": "UpdateOptions",
    "PATCH": "PatchOptions",
    "DELETE": "DeleteOptions",
}


def write_options(request: web.Request, *, body_dry_run: Any = ()) -> WriteOptions:
    """`dryRun` and `fieldValidation` of a write (ignored on reads, as kube ignores them);
    `body_dry_run`: a DeleteOptions body's dryRun, which counts with the query's."""
    kind = _OPTIONS_KIND.get(request.method)
    if kind is None:
        return WriteOptions(dry_run=False, validation="Warn")
    causes = []
    dry_run = [*request.query.getall("dryRun", []), *_strings(body_dry_run)]
    if any(value not in DRY_RUN_VALUES for value in dry_run):
        causes.append(_unsupported("dryRun", json.dumps(dry_run), DRY_RUN_VALUES))
    validation = request.query.get("fieldValidation", "")
    if kind != "DeleteOptions" and validation not in FIELD_VALIDATION_VALUES:
        causes.append(
            _unsupported("fieldValidation", json.dumps(validation), FIELD_VALIDATION_VALUES)
        )
    if causes:
        raise errors.invalid("meta.k8s.io", kind, "", causes)
    return WriteOptions(
        dry_run=bool(dry_run),
        validation="Warn" if validation in ("", "Warn") else validation,  # type: ignore[arg-type]
    )


def _strings(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _unsupported(field: str, shown: str, supported: Sequence[str]) -> Cause:
    listed = ", ".join(json.dumps(v) for v in supported)
    return Cause(
        "FieldValueNotSupported", f"Unsupported value: {shown}: supported values: {listed}", field
    )


async def options(request: web.Request) -> dict[str, Any]:
    """The DeleteOptions of a delete: its body (JSON or protobuf) and its query parameters."""
    raw = await request.read()
    options: dict[str, Any] = {}
    if raw:
        media = content_type(request)
        # client-go's typed clients send DeleteOptions in protobuf
        decoded = await parse(
            raw, envelope.MEDIA_TYPE if media == envelope.MEDIA_TYPE else JSON, what="DeleteOptions"
        )
        if not isinstance(decoded, dict):
            raise errors.bad_request("DeleteOptions must be an object")
        options.update(decoded)
    q = request.query
    if "gracePeriodSeconds" in q:
        options["gracePeriodSeconds"] = integer(q, "gracePeriodSeconds")
    if "propagationPolicy" in q:
        options["propagationPolicy"] = q["propagationPolicy"]
    if "orphanDependents" in q:
        options["orphanDependents"] = q["orphanDependents"] == "true"
    policy = options.get("propagationPolicy")
    if policy not in (None, "Background", "Foreground", "Orphan"):
        raise errors.bad_request(
            f'Unsupported value: "{policy}": supported values: "Foreground", "Background", "Orphan"'
        )
    return options


def integer(query: Any, name: str) -> int:
    """An integer query parameter (400 when it is not one, as kube's parameter codec answers)."""
    value = query[name]
    try:
        return int(value)
    except ValueError:
        raise errors.bad_request(
            f'invalid value "{value}" for query parameter {name}: not an integer'
        ) from None


def wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    first = accept.split(",")[0]
    return "as=Table" in first


def sort_key(obj: dict[str, Any]) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


def encode_continue(revision: int, after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"rv": revision, "start": after}).encode()).decode()


def decode_continue(token: str | None) -> tuple[int, str] | None:
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request("the provided continue parameter is invalid") from None
