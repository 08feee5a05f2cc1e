"""Who a user is to RBAC: service-account usernames, the groups every authenticated user has,
and whether a binding's subject names a user.

Kubernetes spells a service account as the user `system:serviceaccount:NS:NAME` in the groups
`system:serviceaccounts` and `system:serviceaccounts:NS`; every authenticated user is also in
`system:authenticated`. Authentication (bearer tokens, service-account tokens) and
impersonation both finish a user with `authenticated_groups`, so RBAC sees the same groups
whichever way the user came in.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from kvd.local.apiserver.kinds import fields
from kvd.local.apiserver.schema.values import go_quote

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SERVICE_ACCOUNTS = "system:serviceaccounts"


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def service_account_groups(namespace: str) -> tuple[str, str]:
    return (SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}")


@functools.lru_cache(maxsize=1024)  # asked on every impersonated request
def service_account(username: str) -> tuple[str, str] | None:
    """(namespace, name) of a service account's username, or None for any other user (kube's
    `serviceaccount.SplitUsername`: both parts must be valid names)."""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        return None
    parts = username[len(SERVICE_ACCOUNT_PREFIX) :].split(":")
    if len(parts) != 2:
        return None
    namespace, name = parts
    if fields.dns1123_label(namespace) or fields.dns1123_subdomain(name):
        return None
    return namespace, name


def authenticated_groups(username: str, groups: Sequence[str] = ()) -> tuple[str, ...]:
    """The groups of an authenticated (or impersonated) user: those given, or a service
    account's own when none are, and `system:authenticated` unless the user is already
    marked authenticated or unauthenticated (kube's impersonation filter)."""
    out = list(groups)
    if not out and (account := service_account(username)) is not None:
        out.extend(service_account_groups(account[0]))
    if AUTHENTICATED not in out and UNAUTHENTICATED not in out:
        out.append(AUTHENTICATED)
    return tuple(out)


# A subject as the index keys it: ("User", name), ("Group", name), or
# ("ServiceAccount", "namespace:name").
SubjectKey = tuple[str, str]


def subject_key(subject: dict[str, Any], binding_namespace: str) -> SubjectKey | None:
    """The key a binding's subject is found under; None for one that can never apply (an
    unknown kind, a service account with no namespace in a ClusterRoleBinding). A service
    account named without a namespace in a RoleBinding is the binding's namespace's."""
    kind, name = subject.get("kind"), str(subject.get("name", ""))
    if kind in ("User", "Group"):
        return (kind, name)
    if kind == "ServiceAccount":
        namespace = str(subject.get("namespace") or binding_namespace)
        return ("ServiceAccount", f"{namespace}:{name}") if namespace else None
    return None


def user_keys(username: str, groups: Sequence[str]) -> list[SubjectKey]:
    """Every subject key under which a binding may name this user."""
    keys: list[SubjectKey] = [("User", username)]
    keys.extend(("Group", group) for group in groups)
    if username.startswith(SERVICE_ACCOUNT_PREFIX):
        # kube's MatchesUsername compares the text: no validation of the parts here
        keys.append(("ServiceAccount", username[len(SERVICE_ACCOUNT_PREFIX) :]))
    return keys


def describe(subject: dict[str, Any], binding_namespace: str) -> str:
    """A subject as kube's RBAC authorizer names it in a reason: `User "alice"`,
    `ServiceAccount "name/namespace"`."""
    kind, name = str(subject.get("kind", "")), str(subject.get("name", ""))
    if kind == "ServiceAccount":
        name = f"{name}/{subject.get('namespace') or binding_namespace}"
    return f"{kind} {go_quote(name)}"
