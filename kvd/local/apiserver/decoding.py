"""Reading a request: its body (JSON, YAML, or Kubernetes' protobuf for built-in kinds),
DeleteOptions, `fieldValidation`, whether it asks for a Table, and list continue tokens."""

from __future__ import annotations

import base64
import json
from typing import Any

import yaml
from aiohttp import web

from kvd.local.apiserver import errors
from kvd.local.apiserver.objects import FieldValidation, Target
from kvd.local.apiserver.protobuf import envelope, kinds

# Encodings kube-apiserver also accepts for bodies; answered 415, as a server that lacks them
# must (clients fall back from CBOR). Protobuf is read for the built-in kinds that have a
# message, and refused with 415 for the others (custom resources), as kube-apiserver does.
UNDECODED_TYPES = (envelope.MEDIA_TYPE, "application/cbor")


def speaks_protobuf(t: Target) -> bool:
    """Whether the target's kind is read and written in protobuf: built-in kinds only."""
    r = t.resource
    return r.crd_name is None and kinds.has_protobuf(r.group, t.version, r.kind)


async def body(request: web.Request, *, protobuf: bool = False) -> Any:
    """The request's object; `protobuf`: whether the target accepts a protobuf body."""
    raw = await request.read()
    if not raw:
        raise errors.bad_request("the body of the request is empty")
    if protobuf and request.content_type == envelope.MEDIA_TYPE:
        return _protobuf(raw)
    if request.content_type in UNDECODED_TYPES:
        raise errors.unsupported_media_type(request.content_type)
    try:
        if request.content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"the body of the request could not be decoded: {exc}") from None


def _protobuf(raw: bytes) -> dict[str, Any]:
    try:
        return envelope.decode(raw)
    except envelope.EnvelopeError as exc:
        raise errors.bad_request(f"the body of the request could not be decoded: {exc}") from None


async def options(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    options: dict[str, Any] = {}
    if raw:
        try:
            # client-go's typed clients send DeleteOptions in protobuf
            if request.content_type == envelope.MEDIA_TYPE:
                decoded = _protobuf(raw)
            else:
                decoded = json.loads(raw)
        except ValueError as exc:
            raise errors.bad_request(f"DeleteOptions could not be decoded: {exc}") from None
        if not isinstance(decoded, dict):
            raise errors.bad_request("DeleteOptions must be an object")
        options.update(decoded)
    q = request.query
    if "gracePeriodSeconds" in q:
        options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
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


def field_validation(value: str | None) -> FieldValidation:
    if value in (None, "", "Warn"):
        return "Warn"
    if value in ("Strict", "Ignore"):
        return value  # type: ignore[return-value]
    raise errors.bad_request(
        f'fieldValidation must be one of "Ignore", "Warn" or "Strict", got "{value}"'
    )


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
