"""Escalation prevention: nobody grants through RBAC what they do not hold themselves.

As kube-apiserver's RBAC storage guards: a user may create or update a Role or ClusterRole
only with rules they hold in that namespace (or cluster-wide), unless they may `escalate` it;
only a user with every permission (`*` on everything) may give a ClusterRole an
aggregationRule, since it can gather anything. A user may create or update a binding only
if they may `bind` its role, or hold every rule of the role. `system:masters` skips all of it,
and so do the server's own writes (the defaults, the aggregation controller), which carry no
requester. An update that only changes what garbage collection needs (owner references,
finalizers) is not checked. The 403 is kube's: `user "alice" (groups=["system:authenticated"])
is attempting to grant RBAC permissions not currently held:` and the missing rules.

`RBACEscalation` is an admission plugin (`objects.AdmissionPlugin`); it learns who is asking
from `REQUEST`, which the server sets around each request not made by system:masters
(`acting_as`); unset, the write is the server's own or a master's, and is not checked. A
roleRef may not change on update either (a 422, as kube's validation says it).
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kvd.local.apiserver import errors
from kvd.local.apiserver.auth import User
from kvd.local.apiserver.kinds import fields
from kvd.local.apiserver.kinds import rbac as rbackinds
from kvd.local.apiserver.policy import (
    Attributes,
    Authorizer,
    NonResourceRule,
    ResourceRule,
    aggregate,
)
from kvd.local.apiserver.rbac import rules as rbacrules
from kvd.local.apiserver.rbac.index import RBACIndex
from kvd.local.apiserver.rbac.rules import PolicyRule
from kvd.local.apiserver.registry import RBAC_GROUP, ResourceDef
from kvd.local.apiserver.schema.values import go_quote

FULL_AUTHORITY = (PolicyRule(("*",), ("*",), ("*",)), PolicyRule(("*",), non_resource_urls=("*",)))
_GC_FIELDS = ("ownerReferences", "finalizers", "managedFields", "resourceVersion")


@dataclass(frozen=True)
class Requester:
    user: User
    attributes: Attributes | None  # the request's, as authorized (None: not parsed)


REQUEST: contextvars.ContextVar[Requester | None] = contextvars.ContextVar(
    "kvd_rbac_requester", default=None
)


class acting_as:  # noqa: N801 - used as a function: `with acting_as(user, asked):`
    """Who makes the writes inside the block (the server wraps each request in it). A class,
    not a generator: it runs on every request, and this costs a fraction of a microsecond."""

    __slots__ = ("_requester", "_token")

    def __init__(self, user: User, attributes: Attributes | None) -> None:
        self._requester = Requester(user, attributes)

    def __enter__(self) -> None:
        self._token = REQUEST.set(self._requester)

    def __exit__(self, *_exc: object) -> None:
        REQUEST.reset(self._token)


class RBACEscalation:
    def __init__(self, index: RBACIndex, authorizer: Authorizer) -> None:
        self.index = index
        self.authorizer = authorizer

    def on_create(self, resource: ResourceDef, obj: dict[str, Any]) -> Sequence[str]:
        if resource.group == RBAC_GROUP:
            self._check(resource, obj, None)
        return []

    def on_update(
        self, resource: ResourceDef, old: dict[str, Any], new: dict[str, Any]
    ) -> Sequence[str]:
        if resource.group != RBAC_GROUP:
            return []
        if not _only_gc_fields(old, new):
            self._check(resource, new, old)
        causes = rbackinds.immutable_causes(old, new) if "Binding" in resource.kind else []
        if causes:
            errs = fields.Errors()
            rbackinds.validate(resource.kind, new, errs)
            name = str((new.get("metadata") or {}).get("name", ""))
            raise errors.invalid(RBAC_GROUP, resource.kind, name, errs.causes + causes)
        return []

    def _check(
        self, resource: ResourceDef, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        requester = REQUEST.get()
        if requester is None or Authorizer.privileged(requester.user):
            return
        if resource.plural in ("roles", "clusterroles"):
            self._check_role(requester, resource, obj, old)
        else:
            self._check_binding(requester.user, resource, obj)

    def _check_role(
        self,
        requester: Requester,
        resource: ResourceDef,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> None:
        user, asked = requester.user, requester.attributes
        if asked is not None and self._may(
            user, "escalate", asked.resource, asked.name, asked.namespace
        ):
            return
        namespace, name = _namespace_name(obj)
        self._confirm(user, namespace, rbacrules.parse_all(obj.get("rules")), resource, name)
        aggregates = resource.plural == "clusterroles" and (_aggregates(obj) or _aggregates(old))
        if aggregates and rbacrules.uncovered(self._held(user, namespace), FULL_AUTHORITY):
            why = "must have cluster-admin privileges to use the aggregationRule"
            raise _forbidden(resource, name, why)

    def _check_binding(self, user: User, resource: ResourceDef, obj: dict[str, Any]) -> None:
        namespace, name = _namespace_name(obj)
        ref = obj.get("roleRef") or {}
        kind, role = str(ref.get("kind", "")), str(ref.get("name", ""))
        plural = {"ClusterRole": "clusterroles", "Role": "roles"}.get(kind)
        if plural is None:
            return  # validation refuses it
        if self._may(user, "bind", plural, role, namespace, group=str(ref.get("apiGroup", ""))):
            return
        found = self.index.role_rules(kind, role, namespace)
        if isinstance(found, str):
            raise errors.not_found(RBAC_GROUP, plural, role)
        self._confirm(user, namespace, found, resource, name)

    def _may(
        self,
        user: User,
        verb: str,
        plural: str,
        name: str,
        namespace: str,
        *,
        group: str = RBAC_GROUP,
    ) -> bool:
        asked = Attributes(
            verb, True, api_group=group, resource=plural, namespace=namespace, name=name
        )
        return self.authorizer.allows(user, asked)

    def _held(self, user: User, namespace: str) -> list[PolicyRule]:
        """The user's RBAC rules in the namespace, as stored rules (what `Covers` compares)."""
        return [_policy_rule(r) for r in self.index.rules_for(user, namespace).resource] + [
            _policy_rule(r) for r in self.index.rules_for(user, namespace).non_resource
        ]

    def _confirm(
        self,
        user: User,
        namespace: str,
        granted: Sequence[PolicyRule],
        resource: ResourceDef,
        name: str,
    ) -> None:
        missing = rbacrules.uncovered(self._held(user, namespace), granted)
        if not missing:
            return
        groups = "[" + " ".join(go_quote(g) for g in user.groups) + "]"
        message = (
            f"user {go_quote(user.name)} (groups={groups}) is attempting to grant RBAC "
            f"permissions not currently held:\n{rbacrules.describe_missing(missing)}"
        )
        failures = self.index.rules_for(user, namespace).errors
        if failures:
            message += f"; resolution errors: [{aggregate(failures)}]"
        raise _forbidden(resource, name, message)


def _policy_rule(rule: ResourceRule | NonResourceRule) -> PolicyRule:
    if isinstance(rule, ResourceRule):
        return PolicyRule(rule.verbs, rule.api_groups, rule.resources, rule.resource_names)
    return PolicyRule(rule.verbs, non_resource_urls=rule.urls)


def _namespace_name(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name", ""))


def _aggregates(role: dict[str, Any] | None) -> bool:
    rule = (role or {}).get("aggregationRule")
    return isinstance(rule, dict) and bool(rule.get("clusterRoleSelectors"))


def _only_gc_fields(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether the update changes nothing but what garbage collection writes."""

    def stripped(obj: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _GC_FIELDS}
        return {**obj, "metadata": meta}

    return stripped(old) == stripped(new)


def _forbidden(resource: ResourceDef, name: str, why: str) -> errors.APIError:
    return errors.APIError(
        403,
        "Forbidden",
        f"{resource.plural}.{RBAC_GROUP} {go_quote(name)} is forbidden: {why}",
        name=name,
        group=RBAC_GROUP,
        kind=resource.plural,
    )
