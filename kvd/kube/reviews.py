"""Asking the API server who a caller is (TokenReview) and what it may do (SubjectAccessReview).

A kvd daemon that serves an API of its own (the handler's HandlerService, the controller's
ControllerService) does not judge credentials itself: like KubeVirt's virt-api and kube's
webhook authenticator and authorizer, it sends the caller's bearer token to the API server in a
TokenReview, which answers with the user (name, uid, groups, extra), and asks with a
SubjectAccessReview whether that user may do a verb on a resource. So users, ServiceAccounts,
bound tokens, audiences and RBAC all mean here exactly what they mean to the API server.

A review that could not be made (the API server unreachable, or refusing the reviewer itself)
raises `ApiError`; a review that was made and said no is an answer, not an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kvd.kube.client import Raw

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated user, as a TokenReview states it and a SubjectAccessReview takes it."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenReviewed:
    """A TokenReview's answer: `user` when the token is valid (for one of `audiences`)."""

    user: UserInfo | None
    audiences: tuple[str, ...] = ()
    error: str = ""

    @property
    def authenticated(self) -> bool:
        return self.user is not None


@dataclass(frozen=True, kw_only=True)
class ResourceAttributes:
    """What a SubjectAccessReview asks about (`spec.resourceAttributes`)."""

    verb: str
    resource: str
    group: str = ""
    version: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    def describe(self) -> str:
        """kube-apiserver's wording of a forbidden request, after `User "x" cannot`."""
        what = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        where = (
            f' in the namespace "{self.namespace}"' if self.namespace else " at the cluster scope"
        )
        return f'{self.verb} {what} in API group "{self.group}"{where}'


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    denied: bool = False  # an authorizer said no outright (not merely "no opinion")
    reason: str = ""
    evaluation_error: str = ""


def token_review(raw: Raw, token: str, audiences: Sequence[str] = ()) -> TokenReviewed:
    """Who `token` belongs to, for a service that accepts only `audiences` (empty: the API
    server's own)."""
    spec: dict[str, Any] = {"token": token}
    if audiences:
        spec["audiences"] = list(audiences)
    answer = raw.create(
        TOKEN_REVIEWS,
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec},
    )
    status = answer.get("status") or {}
    got = tuple(str(a) for a in status.get("audiences") or ())
    if not status.get("authenticated"):
        return TokenReviewed(None, got, str(status.get("error") or ""))
    user = status.get("user") or {}
    if audiences and not set(got) & set(audiences):
        # The TokenReview API's rule for a reviewer that asks for audiences: an answer naming
        # none of them is about the API server's own audience, not this service's.
        return TokenReviewed(
            None, got, f"the token is not for {_either(audiences)} (it is for {_either(got)})"
        )
    return TokenReviewed(
        UserInfo(
            username=str(user.get("username") or ""),
            uid=str(user.get("uid") or ""),
            groups=tuple(str(g) for g in user.get("groups") or ()),
            extra={
                str(k): tuple(str(v) for v in values or ())
                for k, values in (user.get("extra") or {}).items()
            },
        ),
        got,
    )


def _either(audiences: Sequence[str]) -> str:
    if not audiences:
        return "the API server's audience"
    return "audience " + " or ".join(f'"{a}"' for a in audiences)


def access_review(raw: Raw, user: UserInfo, attributes: ResourceAttributes) -> AccessDecision:
    """Whether `user` may do what `attributes` say, by the API server's authorizers."""
    resource = {
        "verb": attributes.verb,
        "group": attributes.group,
        "version": attributes.version,
        "resource": attributes.resource,
        "subresource": attributes.subresource,
        "namespace": attributes.namespace,
        "name": attributes.name,
    }
    spec: dict[str, Any] = {
        "user": user.username,
        "groups": list(user.groups),
        "resourceAttributes": {k: v for k, v in resource.items() if v},
    }
    if user.uid:
        spec["uid"] = user.uid
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra.items()}
    answer = raw.create(
        ACCESS_REVIEWS,
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
    )
    status = answer.get("status") or {}
    return AccessDecision(
        allowed=bool(status.get("allowed")),
        denied=bool(status.get("denied")),
        reason=str(status.get("reason") or ""),
        evaluation_error=str(status.get("evaluationError") or ""),
    )
