"""Authorization: the rules a user holds, whether a request is allowed, and the reviews that ask.

Rules have RBAC's shape (verbs on API groups, resources[/subresources] and names; verbs on
non-resource URLs), so one matcher answers the server's own checks, SubjectAccessReviews,
LocalSubjectAccessReviews and SelfSubjectAccessReviews, and a SelfSubjectRulesReview
(`kubectl auth can-i --list`) lists the same rules. `system:masters` may do anything before
any rule is read, as kube-apiserver's first authorizer allows it; every other user's rules come
from the `RuleResolver`s the server hands the `Authorizer`: RBAC's (`rbac.index`), which reads
the stored Roles, ClusterRoles and their bindings, the defaults among them (`rbac.bootstrap`).

A rule remembers where it came from (`source`), so an allowed request has kube's reason
(`RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User "z"`). The request path
is hot: a resolver hands out the same `Rules` for a user and namespace until a role or binding
changes, and `Rules` remembers its recent answers.
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass, field
from typing import Any, Protocol

from kvd.local.apiserver import auth, errors
from kvd.local.apiserver.auth import User
from kvd.local.apiserver.schema.values import go_quote

AUTHENTICATED = "system:authenticated"
_MEMO_LIMIT = 1024


@dataclass(frozen=True)
class ResourceRule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    resource_names: tuple[str, ...] = ()
    # what granted it, as kube's authorizer names it in a reason ("" when nothing did)
    source: str = field(default="", compare=False)

    def json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "verbs": list(self.verbs),
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
        }
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        return out


@dataclass(frozen=True)
class NonResourceRule:
    verbs: tuple[str, ...]
    urls: tuple[str, ...]
    source: str = field(default="", compare=False)

    def json(self) -> dict[str, Any]:
        return {"verbs": list(self.verbs), "nonResourceURLs": list(self.urls)}


@dataclass(frozen=True)
class Attributes:
    """What a request does, as an authorizer sees it (kube's authorizer.Attributes)."""

    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


@dataclass(frozen=True)
class Rules:
    """The rules a user holds in a namespace; `errors` name the roles that could not be read
    (a binding to a role that does not exist), which leave the rules incomplete."""

    resource: tuple[ResourceRule, ...] = ()
    non_resource: tuple[NonResourceRule, ...] = ()
    incomplete: bool = False
    errors: tuple[str, ...] = ()
    _memo: dict[tuple[str, ...], str | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __add__(self, other: Rules) -> Rules:
        return Rules(
            self.resource + other.resource,
            self.non_resource + other.non_resource,
            self.incomplete or other.incomplete,
            self.errors + other.errors,
        )

    @functools.cached_property
    def _named(self) -> bool:
        return any(r.resource_names for r in self.resource)

    def grant(self, a: Attributes) -> str | None:
        """The source of the first rule that allows `a`, or None when none does."""
        key: tuple[str, ...]
        if a.resource_request:
            # the name matters only to rules that list names
            key = (a.verb, a.api_group, a.resource, a.subresource, a.name if self._named else "")
        else:
            key = (a.verb, a.path)
        memo = self._memo
        if key in memo:
            return memo[key]
        found: str | None = None
        if a.resource_request:
            found = next((r.source for r in self.resource if resource_match(r, a)), None)
        else:
            found = next((r.source for r in self.non_resource if non_resource_match(r, a)), None)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[key] = found
        return found


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


class RuleResolver(Protocol):
    def rules_for(self, user: User, namespace: str) -> Rules:
        """The rules `user` holds in `namespace` (cluster-wide ones included)."""
        ...


class Authorizer:
    def __init__(self, *resolvers: RuleResolver) -> None:
        self.resolvers = resolvers

    def rules_for(self, user: User, namespace: str) -> Rules:
        if len(self.resolvers) == 1:
            return self.resolvers[0].rules_for(user, namespace)
        rules = Rules()
        for resolver in self.resolvers:
            rules += resolver.rules_for(user, namespace)
        return rules

    @staticmethod
    def privileged(user: User) -> bool:
        """system:masters may do anything, before any rule is read: kube-apiserver's first
        authorizer (cluster-admin's binding says the same, for the rules review)."""
        return auth.MASTERS in user.groups

    def decide(self, user: User, a: Attributes) -> Decision:
        """Allowed or not, with the reason kube's RBAC authorizer gives (the rule's source when
        allowed; the roles it could not read when not)."""
        if self.privileged(user):
            return Decision(True)
        rules = self.rules_for(user, a.namespace)
        source = rules.grant(a)
        if source is not None:
            return Decision(True, f"RBAC: allowed by {source}" if source else "")
        return Decision(False, f"RBAC: {aggregate(rules.errors)}" if rules.errors else "")

    def allows(self, user: User, a: Attributes) -> bool:
        return self.decide(user, a).allowed


def aggregate(messages: tuple[str, ...] | list[str]) -> str:
    """Several errors as apimachinery's `utilerrors.Aggregate` prints them."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def resource_match(rule: ResourceRule, a: Attributes) -> bool:
    """kube's `RuleAllows` for a resource request: `*` in verbs, groups and resources,
    `*/subresource`; a rule that lists names allows only requests naming one of them (so never
    a list, watch or create, which name nothing)."""
    wanted = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    return (
        _has(rule.verbs, a.verb)
        and _has(rule.api_groups, a.api_group)
        and (
            "*" in rule.resources
            or wanted in rule.resources
            or (bool(a.subresource) and f"*/{a.subresource}" in rule.resources)
        )
        and (not rule.resource_names or a.name in rule.resource_names)
    )


def non_resource_match(rule: NonResourceRule, a: Attributes) -> bool:
    """A URL rule allows its path exactly, `*` anything, `/prefix*` what starts with /prefix."""
    return _has(rule.verbs, a.verb) and any(
        url in (a.path, "*") or (url.endswith("*") and a.path.startswith(url.rstrip("*")))
        for url in rule.urls
    )


def _has(allowed: tuple[str, ...], value: str) -> bool:
    return "*" in allowed or value in allowed


def attributes(method: str, path: str, query: Any) -> Attributes:
    """A request's attributes, parsed from its path as kube-apiserver's RequestInfo does."""
    parts = [p for p in path.split("/") if p]
    verb = method.lower()
    if len(parts) >= 3 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return Attributes("get" if verb == "head" else verb, resource_request=False, path=path)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 2:
        namespace = rest[1]  # a namespace is in itself, as kube's RequestInfo has it
        if len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            rest = rest[2:]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 else ""
    resource_verb = {
        "post": "create",
        "put": "update",
        "patch": "patch",
        "delete": "delete" if name else "deletecollection",
    }.get(verb)
    if resource_verb is None:  # get, head
        watching = str(query.get("watch", "")).lower() in ("1", "true")
        resource_verb = "watch" if watching else ("get" if name else "list")
    if not name and resource_verb in ("list", "watch"):
        # `kubectl get pod x -w` watches with metadata.name=x: the name is what is asked for
        name = _named_by(str(query.get("fieldSelector", "")))
    return Attributes(
        resource_verb,
        resource_request=True,
        path=path,
        api_group=group,
        resource=rest[0],
        subresource=subresource,
        namespace=namespace,
        name=name,
    )


def _named_by(selector: str) -> str:
    """The name a field selector requires exactly (`metadata.name=x`), as RequestInfo reads
    it; "" when it requires none or is not one term."""
    if not selector or "," in selector:
        return ""
    for op in ("==", "="):
        key, found, value = selector.partition(op)
        if found and key.strip() == "metadata.name" and not key.endswith("!"):
            return value.strip()
    return ""


def forbidden(user: User, a: Attributes, reason: str = "") -> errors.APIError:
    """kube-apiserver's 403 for a request `user` may not make (the authorizer's reason, when it
    gave one, after a colon)."""
    if not a.resource_request:
        message = f"forbidden: User {go_quote(user.name)} cannot {a.verb} path {go_quote(a.path)}"
        return errors.APIError(403, "Forbidden", _with_reason(message, reason))
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    where = f"in the namespace {go_quote(a.namespace)}" if a.namespace else "at the cluster scope"
    why = (
        f"User {go_quote(user.name)} cannot {a.verb} resource {go_quote(resource)} "
        f"in API group {go_quote(a.api_group)} {where}"
    )
    qualified = f"{a.resource}.{a.api_group}" if a.api_group else a.resource
    named = f" {go_quote(a.name)}" if a.name else ""
    return errors.APIError(
        403,
        "Forbidden",
        f"{qualified}{named} is forbidden: {_with_reason(why, reason)}",
        name=a.name or None,
        group=a.api_group,
        kind=a.resource,
    )


def _with_reason(message: str, reason: str) -> str:
    return f"{message}: {reason}" if reason else message


# --- reviews -----------------------------------------------------------------------------------


def review_attributes(spec: dict[str, Any], kind: str, *, namespace: str = "") -> Attributes:
    """The attributes an access review's spec asks about, checked as kube validates the spec
    (422 naming the field). `namespace`: a LocalSubjectAccessReview's, which its resource
    attributes must name."""
    causes: list[errors.Cause] = []

    def invalid(path: str, printed: str, detail: str) -> None:
        causes.append(errors.Cause(_INVALID, f"Invalid value: {printed}: {detail}", path))

    resource, other = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if resource is not None and other is not None:
        detail = "cannot be specified in combination with resourceAttributes"
        invalid("spec.nonResourceAttributes", _non_resource_value(other), detail)
    if resource is None and other is None:
        detail = "exactly one of nonResourceAttributes or resourceAttributes must be specified"
        invalid("spec.resourceAttributes", '"null"', detail)
    if kind != "SelfSubjectAccessReview" and not spec.get("user") and not spec.get("groups"):
        detail = "at least one of user or group must be specified"
        invalid("spec.user", go_quote(str(spec.get("user") or "")), detail)
    if kind == "LocalSubjectAccessReview":
        asked = str(resource.get("namespace") or "") if isinstance(resource, dict) else namespace
        if asked != namespace:
            invalid(
                "spec.resourceAttributes.namespace",
                go_quote(asked),
                "must match metadata.namespace",
            )
        if other is not None:
            detail = "disallowed on this kind of request"
            invalid("spec.nonResourceAttributes", _non_resource_value(other), detail)
    if causes:
        raise errors.invalid("authorization.k8s.io", kind, "", causes)
    if isinstance(resource, dict):
        return Attributes(
            str(resource.get("verb", "")),
            resource_request=True,
            api_group=str(resource.get("group", "")),
            resource=str(resource.get("resource", "")),
            subresource=str(resource.get("subresource", "")),
            namespace=str(resource.get("namespace", "")),
            name=str(resource.get("name", "")),
        )
    other = other if isinstance(other, dict) else {}
    return Attributes(
        str(other.get("verb", "")), resource_request=False, path=str(other.get("path", ""))
    )


_INVALID = "FieldValueInvalid"


def _non_resource_value(value: Any) -> str:
    """The attributes as Go's `%#v` prints them in kube's message."""
    value = value if isinstance(value, dict) else {}
    path, verb = go_quote(str(value.get("path", ""))), go_quote(str(value.get("verb", "")))
    return f"authorization.NonResourceAttributes{{Path:{path}, Verb:{verb}}}"


def rules_status(rules: Rules) -> dict[str, Any]:
    """A SelfSubjectRulesReview's status for `rules`."""
    status: dict[str, Any] = {
        "resourceRules": [r.json() for r in rules.resource],
        "nonResourceRules": [r.json() for r in rules.non_resource],
        "incomplete": rules.incomplete,
    }
    if rules.errors:
        status["evaluationError"] = aggregate(rules.errors)
    return status


def review(
    plural: str,
    body: Any,
    tokens: auth.Tokens,
    requester: User,
    authorizer: Authorizer,
    *,
    namespace: str = "",
) -> dict[str, Any]:
    """Answer a TokenReview, (Local)SubjectAccessReview, SelfSubjectAccessReview,
    SelfSubjectReview or SelfSubjectRulesReview: never stored, the body comes back with its
    status filled in. `namespace`: the one a LocalSubjectAccessReview was posted to.

    A SubjectAccessReview is answered for exactly the user and groups it names, as kube does:
    `kvd-admin` without `system:masters` in the review is a user with no bindings."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be an object")
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise errors.bad_request("spec must be an object")
    out = dict(body)
    if plural == "tokenreviews":
        out["status"] = tokens.review_status(spec)  # authentication: auth and serviceaccounts
    elif plural in ("subjectaccessreviews", "localsubjectaccessreviews"):
        kind = (
            "SubjectAccessReview"
            if plural == "subjectaccessreviews"
            else "LocalSubjectAccessReview"
        )
        if plural == "localsubjectaccessreviews":
            metadata = out.get("metadata") or {}
            if metadata.get("namespace") not in (None, "", namespace):
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            out["metadata"] = {**metadata, "namespace": namespace}
        asked = review_attributes(spec, kind, namespace=namespace)
        who = User(
            str(spec.get("user", "")),
            tuple(str(g) for g in spec.get("groups") or ()),
            uid=str(spec.get("uid", "")),
            extra=_extra(spec.get("extra")),
        )
        out["status"] = _decision_status(authorizer.decide(who, asked))
    elif plural == "selfsubjectaccessreviews":
        asked = review_attributes(spec, "SelfSubjectAccessReview")
        out["status"] = _decision_status(authorizer.decide(requester, asked))
    elif plural == "selfsubjectreviews":
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        out["metadata"] = {**(out.get("metadata") or {}), "creationTimestamp": now}
        out["status"] = {"userInfo": auth.user_info(requester)}
    elif plural == "selfsubjectrulesreviews":
        asked_namespace = spec.get("namespace")
        if not asked_namespace:
            raise errors.bad_request("no namespace on request")
        out["status"] = rules_status(authorizer.rules_for(requester, str(asked_namespace)))
    else:
        raise errors.method_not_allowed(f"{plural} are not reviews")
    return out


def _decision_status(decision: Decision) -> dict[str, Any]:
    """`allowed` and `reason`; RBAC never sets `denied` (it has no deny rules)."""
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return status


def _extra(raw: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(raw, dict):
        return ()
    return tuple(
        (str(key), tuple(str(v) for v in values))
        for key, values in sorted(raw.items())
        if isinstance(values, list)
    )
