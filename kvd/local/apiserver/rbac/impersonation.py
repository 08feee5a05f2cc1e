"""Impersonation: `kubectl --as alice --as-group devs`, as kube-apiserver's filter does it.

A request may carry `Impersonate-User`, `Impersonate-Group` (repeatable), `Impersonate-Uid` and
`Impersonate-Extra-<key>` headers. Each thing asked for is authorized for the authenticated
user first, as the verb `impersonate` on `users`, `groups` or `serviceaccounts` (core group,
a service account in its namespace) or on `uids` and `userextras/<key>`
(authentication.k8s.io); any refusal is kube's 403 naming the requester. Groups, a uid or
extras without a user are a 400. Then the request runs as the impersonated user: with the
groups given, or a service account's own groups when none are, and always
`system:authenticated` (unless `system:unauthenticated` was asked for), so
`kubectl get pods --as alice` is alice's request, authorized by her bindings.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kvd.local.apiserver import errors, policy
from kvd.local.apiserver.auth import User
from kvd.local.apiserver.rbac import subjects

if TYPE_CHECKING:
    from multidict import CIMultiDictProxy  # aiohttp's request headers

USER_HEADER = "Impersonate-User"
GROUP_HEADER = "Impersonate-Group"
UID_HEADER = "Impersonate-Uid"
EXTRA_PREFIX = "impersonate-extra-"
ANONYMOUS = "system:anonymous"
_AUTHENTICATION = "authentication.k8s.io"
_RESOURCES = {
    "User": "users",
    "ServiceAccount": "serviceaccounts",
    "Group": "groups",
    "UserExtra": "userextras",  # the extra's key is the subresource
    "UID": "uids",
}


@dataclass(frozen=True)
class _Asked:
    """One thing to impersonate, as kube's filter records it (a core ObjectReference)."""

    kind: str  # User, ServiceAccount, Group, UserExtra, UID
    name: str
    namespace: str = ""
    api_version: str = ""
    field_path: str = ""  # an extra's key

    def attributes(self) -> policy.Attributes:
        return policy.Attributes(
            "impersonate",
            resource_request=True,
            api_group=_AUTHENTICATION if self.api_version else "",
            resource=_RESOURCES[self.kind],
            subresource=self.field_path,
            namespace=self.namespace,
            name=self.name,
        )

    def go(self) -> str:
        """Go's `%v` of the ObjectReference (kube's 400 prints them so)."""
        fields = (self.kind, self.namespace, self.name, "", self.api_version, "", self.field_path)
        return "{" + " ".join(fields) + "}"


def requested(headers: CIMultiDictProxy[str]) -> list[_Asked]:
    """What the request asks to impersonate, in kube's order (user, groups, extras, uid)."""
    if not any(h[:12].lower() == "impersonate-" for h in headers):
        return []  # the common case, decided in a microsecond
    asked: list[_Asked] = []
    username = headers.get(USER_HEADER, "")
    if username:
        account = subjects.service_account(username)
        if account is not None:
            asked.append(_Asked("ServiceAccount", account[1], namespace=account[0]))
        else:
            asked.append(_Asked("User", username))
    asked += [_Asked("Group", group) for group in headers.getall(GROUP_HEADER, [])]
    extra_headers = sorted({h for h in headers if h.lower().startswith(EXTRA_PREFIX)})
    for header in extra_headers:
        key = urllib.parse.unquote(header[len(EXTRA_PREFIX) :].lower())
        asked += [
            _Asked("UserExtra", value, api_version=f"{_AUTHENTICATION}/v1", field_path=key)
            for value in headers.getall(header)
        ]
    uid = headers.get(UID_HEADER, "")
    if uid:
        asked.append(_Asked("UID", uid, api_version=f"{_AUTHENTICATION}/v1"))
    if asked and not username:
        listed = " ".join(a.go() for a in asked)
        raise errors.bad_request(f"requested [{listed}] without impersonating a user")
    return asked


def impersonate(
    headers: CIMultiDictProxy[str], requester: User, authorizer: policy.Authorizer
) -> User | None:
    """The user the request runs as, if it asks to impersonate one (None: it does not); a 403
    when the requester may not, a 400 for headers kube refuses."""
    asked = requested(headers)
    if not asked:
        return None
    username, uid = "", ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    for thing in asked:
        attributes = thing.attributes()
        decision = authorizer.decide(requester, attributes)
        if not decision.allowed:
            raise policy.forbidden(requester, attributes, decision.reason)
        if thing.kind == "ServiceAccount":
            username = subjects.service_account_username(thing.namespace, thing.name)
        elif thing.kind == "User":
            username = thing.name
        elif thing.kind == "Group":
            groups.append(thing.name)
        elif thing.kind == "UserExtra":
            extra.setdefault(thing.field_path, []).append(thing.name)
        else:
            uid = thing.name
    if username == ANONYMOUS:
        if subjects.UNAUTHENTICATED not in groups:
            groups.append(subjects.UNAUTHENTICATED)
        final = tuple(groups)
    else:
        final = subjects.authenticated_groups(username, groups)
    return User(
        username,
        final,
        uid=uid,
        extra=tuple((key, tuple(values)) for key, values in extra.items()),
    )
