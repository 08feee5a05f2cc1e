"""API errors as kube-apiserver reports them: an HTTP code and a `Status` object.

Every failure a client can see goes through `APIError`, so the code, the `reason` and the
`details` (name, group, kind, causes with field paths) are what kubectl and client-go expect:
kubectl prints `message`, `kubectl apply` decides on `reason` (AlreadyExists, Conflict,
NotFound), and `kubernetes` raises `ApiException` with `status` = the code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# The patch types kube-apiserver reads for a built-in kind without server-side apply, in its order.
DEFAULT_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


@dataclass(frozen=True)
class Cause:
    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, …
    message: str
    field: str


@dataclass
class APIError(Exception):
    code: int
    reason: str
    message: str
    name: str | None = None
    group: str | None = None
    kind: str | None = None
    causes: list[Cause] = field(default_factory=list)
    retry_after_seconds: int | None = None

    def __str__(self) -> str:
        return self.message

    def status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group is not None:
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [
                {"reason": c.reason, "message": c.message, "field": c.field} for c in self.causes
            ]
        if self.retry_after_seconds is not None:
            details["retryAfterSeconds"] = self.retry_after_seconds
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            out["details"] = details
        return out


def _resource(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> APIError:
    return APIError(
        404,
        "NotFound",
        f'{_resource(group, plural)} "{name}" not found',
        name=name,
        group=group,
        kind=plural,
    )


def already_exists(group: str, plural: str, name: str) -> APIError:
    return APIError(
        409,
        "AlreadyExists",
        f'{_resource(group, plural)} "{name}" already exists',
        name=name,
        group=group,
        kind=plural,
    )


def conflict(group: str, plural: str, name: str, why: str) -> APIError:
    return APIError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {_resource(group, plural)} "{name}": {why}',
        name=name,
        group=group,
        kind=plural,
    )


def invalid(group: str, kind: str, name: str, causes: list[Cause]) -> APIError:
    what = ", ".join(f"{c.field}: {c.message}" if c.field else c.message for c in causes)
    label = f"{kind}.{group}" if group else kind
    return APIError(
        422,
        "Invalid",
        f'{label} "{name}" is invalid: [{what}]'
        if len(causes) > 1
        else f'{label} "{name}" is invalid: {what}',
        name=name,
        group=group,
        kind=kind,
        causes=causes,
    )


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def method_not_allowed(message: str) -> APIError:
    return APIError(405, "MethodNotAllowed", message)


def gone(message: str) -> APIError:
    return APIError(410, "Expired", message)


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


def unsupported_media_type(
    content_type: str, accepted: Iterable[str] = DEFAULT_PATCH_TYPES
) -> APIError:
    """415 for a body in `content_type`, listing what the target reads as kube-apiserver does
    (its message does not repeat the type it refused)."""
    return APIError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


def too_large(detail: str) -> APIError:
    return APIError(413, "RequestEntityTooLarge", f"Request entity too large: {detail}")


def too_many_requests() -> APIError:
    return APIError(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        retry_after_seconds=1,
    )


def internal_error(audit_id: str) -> APIError:
    """A 500 that says no more than that: what went wrong is in the server's log, under the
    request's id (the `Audit-Id` response header)."""
    return APIError(
        500,
        "InternalError",
        f"Internal error occurred: the server failed to handle the request (request id {audit_id})",
    )
