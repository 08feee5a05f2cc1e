"""Authorization: the rules a user holds, whether a request is allowed, and the reviews that ask.

Rules have RBAC's shape (verbs on API groups, resources[/subresources] and names; verbs on
non-resource URLs), so one matcher answers the server's own checks, SubjectAccessReviews and
SelfSubjectAccessReviews, and a SelfSubjectRulesReview (`kubectl auth can-i --list`) lists the
same rules. Today they come from `BootstrapPolicy`: the bindings every kube-apiserver starts with
that the local server has identities for: `cluster-admin` for `system:masters` (its admin) and
`system:basic-user`, `system:discovery` and `system:public-info-viewer` for every authenticated
user. RBAC (Roles and bindings stored in the API) will be another `RuleResolver` whose rules are
added to these.
"""

from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass
from typing import Any, Protocol

from kvd.local.apiserver import auth, errors
from kvd.local.apiserver.auth import User

AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class ResourceRule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    resource_names: tuple[str, ...] = ()

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

    def json(self) -> dict[str, Any]:
        return {"verbs": list(self.verbs), "nonResourceURLs": list(self.urls)}


@dataclass(frozen=True)
class Rules:
    resource: tuple[ResourceRule, ...] = ()
    non_resource: tuple[NonResourceRule, ...] = ()
    incomplete: bool = False

    def __add__(self, other: Rules) -> Rules:
        return Rules(
            self.resource + other.resource,
            self.non_resource + other.non_resource,
            self.incomplete or other.incomplete,
        )


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


class RuleResolver(Protocol):
    def rules_for(self, user: User, namespace: str) -> Rules:
        """The rules `user` holds in `namespace` (cluster-wide ones included)."""
        ...


ALL = ("*",)
CLUSTER_ADMIN = Rules(
    resource=(ResourceRule(ALL, ALL, ALL),),
    non_resource=(NonResourceRule(ALL, ALL),),
)
BASIC_USER = Rules(
    resource=(
        ResourceRule(("create",), ("authentication.k8s.io",), ("selfsubjectreviews",)),
        ResourceRule(
            ("create",),
            ("authorization.k8s.io",),
            ("selfsubjectaccessreviews", "selfsubjectrulesreviews"),
        ),
    )
)
PUBLIC_INFO = ("/healthz", "/livez", "/readyz", "/version", "/version/")
DISCOVERY = Rules(
    non_resource=(
        NonResourceRule(
            ("get",),
            ("/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*", *PUBLIC_INFO),
        ),
    )
)
PUBLIC_INFO_VIEWER = Rules(non_resource=(NonResourceRule(("get",), PUBLIC_INFO),))


class BootstrapPolicy:
    """kube-apiserver's bootstrap bindings, for the groups the local server's users have."""

    BINDINGS = (
        (auth.MASTERS, CLUSTER_ADMIN),
        (AUTHENTICATED, BASIC_USER + DISCOVERY + PUBLIC_INFO_VIEWER),
    )

    def rules_for(self, user: User, namespace: str) -> Rules:
        del namespace  # cluster-wide bindings only
        return _bootstrap_rules(user.groups)


@functools.cache
def _bootstrap_rules(groups: tuple[str, ...]) -> Rules:
    rules = Rules()
    for group, granted in BootstrapPolicy.BINDINGS:
        if group in groups:
            rules += granted
    return rules


class Authorizer:
    def __init__(self, *resolvers: RuleResolver) -> None:
        self.resolvers = resolvers or (BootstrapPolicy(),)

    def rules_for(self, user: User, namespace: str) -> Rules:
        rules = Rules()
        for resolver in self.resolvers:
            rules += resolver.rules_for(user, namespace)
        return rules

    @staticmethod
    def privileged(user: User) -> bool:
        """system:masters may do anything, before any rule is read: kube-apiserver's first
        authorizer (cluster-admin's rules say the same, for the rules review)."""
        return auth.MASTERS in user.groups

    def allows(self, user: User, a: Attributes) -> bool:
        if self.privileged(user):
            return True
        rules = self.rules_for(user, a.namespace)
        if a.resource_request:
            return any(_resource_match(rule, a) for rule in rules.resource)
        return any(_non_resource_match(rule, a) for rule in rules.non_resource)


def _resource_match(rule: ResourceRule, a: Attributes) -> bool:
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


def _non_resource_match(rule: NonResourceRule, a: Attributes) -> bool:
    return _has(rule.verbs, a.verb) and any(
        url in (a.path, "*") or (url.endswith("*") and a.path.startswith(url[:-1]))
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


def forbidden(user: User, a: Attributes) -> errors.APIError:
    """kube-apiserver's 403 for a request `user` may not make."""
    if not a.resource_request:
        return errors.APIError(
            403, "Forbidden", f'forbidden: User "{user.name}" cannot {a.verb} path "{a.path}"'
        )
    resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    why = (
        f'User "{user.name}" cannot {a.verb} resource "{resource}" '
        f'in API group "{a.api_group}" {where}'
    )
    qualified = f"{a.resource}.{a.api_group}" if a.api_group else a.resource
    named = f' "{a.name}"' if a.name else ""
    return errors.APIError(
        403,
        "Forbidden",
        f"{qualified}{named} is forbidden: {why}",
        name=a.name or None,
        group=a.api_group,
        kind=a.resource,
    )


def review_attributes(spec: dict[str, Any]) -> Attributes:
    """The attributes a SubjectAccessReview's or SelfSubjectAccessReview's spec asks about."""
    resource = spec.get("resourceAttributes")
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
    other = spec.get("nonResourceAttributes")
    if isinstance(other, dict):
        return Attributes(
            str(other.get("verb", "")), resource_request=False, path=str(other.get("path", ""))
        )
    raise errors.invalid(
        "authorization.k8s.io",
        "SubjectAccessReview",
        "",
        [
            errors.Cause(
                "FieldValueRequired",
                "Required value: exactly one of nonResourceAttributes or resourceAttributes "
                "must be specified",
                "spec.resourceAttributes",
            )
        ],
    )


def rules_status(rules: Rules) -> dict[str, Any]:
    """A SelfSubjectRulesReview's status for `rules`."""
    return {
        "resourceRules": [r.json() for r in rules.resource],
        "nonResourceRules": [r.json() for r in rules.non_resource],
        "incomplete": rules.incomplete,
    }


def review(
    plural: str, body: Any, tokens: auth.Tokens, requester: User, authorizer: Authorizer
) -> dict[str, Any]:
    """Answer a TokenReview, SubjectAccessReview, SelfSubjectAccessReview, SelfSubjectReview or
    SelfSubjectRulesReview: never stored, the body comes back with its status filled in."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be an object")
    spec = body.get("spec") or {}
    out = dict(body)
    if plural == "tokenreviews":
        out["status"] = tokens.review_status(spec)  # authentication: auth and serviceaccounts
    elif plural == "subjectaccessreviews":
        groups = tuple(spec.get("groups") or ())
        if spec.get("user") == auth.ADMIN:  # the admin's groups, even when the review omits them
            groups = (*groups, auth.MASTERS)
        who = User(str(spec.get("user", "")), groups, uid=str(spec.get("uid", "")))
        out["status"] = {"allowed": authorizer.allows(who, review_attributes(spec))}
    elif plural == "selfsubjectaccessreviews":
        out["status"] = {"allowed": authorizer.allows(requester, review_attributes(spec))}
    elif plural == "selfsubjectreviews":
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        out["metadata"] = {**(out.get("metadata") or {}), "creationTimestamp": now}
        out["status"] = {"userInfo": _user_info(requester)}
    elif plural == "selfsubjectrulesreviews":
        namespace = spec.get("namespace")
        if not namespace:
            raise errors.bad_request("no namespace on request")
        out["status"] = rules_status(authorizer.rules_for(requester, str(namespace)))
    else:
        raise errors.method_not_allowed(f"{plural} are not reviews")
    return out


def _user_info(user: User) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.name, "uid": user.uid, "groups": list(user.groups)}
    if user.extra:
        info["extra"] = {key: list(values) for key, values in user.extra}
    return info
