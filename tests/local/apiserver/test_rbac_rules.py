"""RBAC's pure logic: the rule matcher, escalation's coverage and its wording, subjects,
aggregation, the defaults' reconciliation, validation and impersonation headers."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from kvd.local.apiserver import errors, policy
from kvd.local.apiserver.auth import User
from kvd.local.apiserver.kinds import fields
from kvd.local.apiserver.kinds import rbac as rbackinds
from kvd.local.apiserver.policy import Attributes, NonResourceRule, ResourceRule, Rules
from kvd.local.apiserver.rbac import aggregation, bootstrap, impersonation, subjects
from kvd.local.apiserver.rbac import rules as rbacrules
from kvd.local.apiserver.rbac.rules import PolicyRule
from kvd.local.apiserver.registry import ResourceDef, VersionDef


def _asked(
    verb: str, resource: str, *, group: str = "", sub: str = "", name: str = ""
) -> Attributes:
    return Attributes(
        verb, True, api_group=group, resource=resource, subresource=sub, namespace="a", name=name
    )


@pytest.mark.parametrize(
    ("rule", "asked", "allowed"),
    [
        pytest.param(
            ResourceRule(("get",), ("",), ("pods",)), _asked("get", "pods"), True, id="exact"
        ),
        pytest.param(
            ResourceRule(("get",), ("",), ("pods",)), _asked("list", "pods"), False, id="verb"
        ),
        pytest.param(
            ResourceRule(("get",), ("",), ("pods",)),
            _asked("get", "pods", group="apps"),
            False,
            id="group",
        ),
        pytest.param(
            ResourceRule(("*",), ("*",), ("*",)), _asked("delete", "x", group="y"), True, id="stars"
        ),
        pytest.param(
            ResourceRule(("get",), ("",), ("pods",)),
            _asked("get", "pods", sub="log"),
            False,
            id="no-sub",
        ),
        pytest.param(
            ResourceRule(("get",), ("",), ("pods/log",)),
            _asked("get", "pods", sub="log"),
            True,
            id="sub",
        ),
        pytest.param(
            ResourceRule(("get",), ("",), ("pods/log",)),
            _asked("get", "pods"),
            False,
            id="sub-only",
        ),
        pytest.param(
            ResourceRule(("update",), ("apps",), ("*/scale",)),
            _asked("update", "deployments", group="apps", sub="scale"),
            True,
            id="star-sub",
        ),
        pytest.param(
            ResourceRule(("update",), ("apps",), ("*/scale",)),
            _asked("update", "deployments", group="apps"),
            False,
            id="star-sub-not-main",
        ),
        pytest.param(
            ResourceRule(("get",), ("",), ("pods",), ("x",)),
            _asked("get", "pods", name="x"),
            True,
            id="named",
        ),
        pytest.param(
            ResourceRule(("get",), ("",), ("pods",), ("x",)),
            _asked("get", "pods", name="y"),
            False,
            id="other-name",
        ),
        pytest.param(
            ResourceRule(("list", "watch", "create"), ("",), ("pods",), ("x",)),
            _asked("list", "pods"),
            False,
            id="names-never-list",
        ),
        pytest.param(
            ResourceRule(("list", "watch", "create"), ("",), ("pods",), ("x",)),
            _asked("create", "pods"),
            False,
            id="names-never-create",
        ),
    ],
)
def test_resource_rules_match_as_kubes(
    rule: ResourceRule, asked: Attributes, allowed: bool
) -> None:
    assert policy.resource_match(rule, asked) is allowed


@pytest.mark.parametrize(
    ("urls", "path", "allowed"),
    [
        pytest.param(("/healthz",), "/healthz", True, id="exact"),
        pytest.param(("/healthz",), "/healthz/ping", False, id="not-prefix"),
        pytest.param(("/apis/*",), "/apis/apps/v1", True, id="star"),
        pytest.param(("/apis/*",), "/apis", False, id="star-needs-more"),
        pytest.param(("*",), "/anything", True, id="all"),
    ],
)
def test_url_rules_match_as_kubes(urls: tuple[str, ...], path: str, allowed: bool) -> None:
    asked = Attributes("get", False, path=path)
    assert policy.non_resource_match(NonResourceRule(("get",), urls), asked) is allowed


def test_the_first_matching_rule_is_the_reason_and_answers_are_remembered() -> None:
    rules = Rules(
        resource=(
            ResourceRule(("get",), ("",), ("configmaps",), source="first"),
            ResourceRule(("get", "list"), ("",), ("pods",), source="second"),
            ResourceRule(("*",), ("",), ("pods",), source="third"),
        )
    )
    assert rules.grant(_asked("get", "pods")) == "second"
    assert rules.grant(_asked("delete", "pods")) == "third"
    assert rules.grant(_asked("get", "secrets")) is None
    assert rules.grant(_asked("get", "pods", name="p1")) == "second"  # no names: one answer

    decision = policy.Authorizer(_Fixed(rules)).decide(User("u", ()), _asked("get", "pods"))
    assert decision == policy.Decision(True, "RBAC: allowed by second")
    masters = User("root", ("system:masters",))
    assert policy.Authorizer(_Fixed(Rules())).decide(masters, _asked("get", "x")).allowed


class _Fixed:
    def __init__(self, rules: Rules) -> None:
        self.rules = rules

    def rules_for(self, user: User, namespace: str) -> Rules:
        return self.rules


def test_a_denial_names_the_roles_that_could_not_be_read() -> None:
    rules = Rules(errors=('clusterrole.rbac.authorization.k8s.io "gone" not found',) * 2)
    decision = policy.Authorizer(_Fixed(rules)).decide(User("u", ()), _asked("get", "pods"))
    assert decision == policy.Decision(
        False, 'RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found'
    )
    assert policy.forbidden(User("u", ()), _asked("get", "pods"), decision.reason).message == (
        'pods is forbidden: User "u" cannot get resource "pods" in API group "" in the '
        'namespace "a": RBAC: clusterrole.rbac.authorization.k8s.io "gone" not found'
    )


@pytest.mark.parametrize(
    ("query", "name"),
    [
        pytest.param({"fieldSelector": "metadata.name=x"}, "x", id="equals"),
        pytest.param({"fieldSelector": "metadata.name==x"}, "x", id="double"),
        pytest.param({"fieldSelector": "metadata.name!=x"}, "", id="not-equals"),
        pytest.param({"fieldSelector": "metadata.name=x,status.phase=Running"}, "", id="two"),
        pytest.param({"fieldSelector": "spec.nodeName=x"}, "", id="other-field"),
    ],
)
def test_a_watch_by_name_asks_for_that_name(query: dict[str, str], name: str) -> None:
    asked = policy.attributes("GET", "/api/v1/namespaces/a/pods", {"watch": "1", **query})
    assert (asked.verb, asked.name) == ("watch", name)


# --- escalation ----------------------------------------------------------------------------


def _rule(verbs: str, groups: str, resources: str, names: str = "") -> PolicyRule:
    def split(text: str) -> tuple[str, ...]:
        return tuple(text.split(",")) if text else ()

    return PolicyRule(split(verbs), tuple(groups.split(",")), split(resources), split(names))


@pytest.mark.parametrize(
    ("owned", "granted", "covered"),
    [
        pytest.param(
            [_rule("*", "*", "*")], [_rule("get,delete", "apps", "deployments")], True, id="admin"
        ),
        pytest.param([_rule("get", "", "pods")], [_rule("get", "", "pods")], True, id="same"),
        pytest.param([_rule("get", "", "pods")], [_rule("get,list", "", "pods")], False, id="verb"),
        pytest.param(
            [_rule("get", "", "*/scale")], [_rule("get", "", "rc/scale")], True, id="star-sub"
        ),
        pytest.param(
            [_rule("get", "", "pods", "a")], [_rule("get", "", "pods")], False, id="named-owner"
        ),
        pytest.param(
            [_rule("get", "", "pods")], [_rule("get", "", "pods", "a")], True, id="named-grant"
        ),
        pytest.param(
            [_rule("get", "", "pods", "a,b")], [_rule("get", "", "pods", "b")], True, id="names"
        ),
        pytest.param(
            [PolicyRule(("get",), non_resource_urls=("/apis/*",))],
            [PolicyRule(("get",), non_resource_urls=("/apis/apps",))],
            True,
            id="url-star",
        ),
        pytest.param(
            [_rule("*", "*", "*")],
            [PolicyRule(("get",), non_resource_urls=("/metrics",))],
            False,
            id="resources-not-urls",
        ),
    ],
)
def test_escalation_coverage_is_kubes(
    owned: list[PolicyRule], granted: list[PolicyRule], covered: bool
) -> None:
    assert (not rbacrules.uncovered(owned, granted)) is covered


def test_missing_rules_are_listed_compacted_as_kube_lists_them() -> None:
    owned = [_rule("get", "", "pods")]
    granted = [_rule("get,delete,list", ",apps", "pods,deployments")]
    missing = rbacrules.uncovered(owned, granted)
    assert rbacrules.describe_missing(missing) == "\n".join(
        [
            '{APIGroups:[""], Resources:["deployments"], Verbs:["get" "delete" "list"]}',
            '{APIGroups:[""], Resources:["pods"], Verbs:["delete" "list"]}',
            '{APIGroups:["apps"], Resources:["deployments"], Verbs:["get" "delete" "list"]}',
            '{APIGroups:["apps"], Resources:["pods"], Verbs:["get" "delete" "list"]}',
        ]
    )
    urls = rbacrules.uncovered([], [PolicyRule(("*",), non_resource_urls=("*",))])
    assert rbacrules.describe_missing(urls) == '{NonResourceURLs:["*"], Verbs:["*"]}'


# --- subjects ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "groups", "expected"),
    [
        pytest.param("alice", (), ("system:authenticated",), id="plain"),
        pytest.param("alice", ("devs",), ("devs", "system:authenticated"), id="given"),
        pytest.param(
            "system:serviceaccount:ns:sa",
            (),
            ("system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"),
            id="service-account",
        ),
        pytest.param(
            "system:serviceaccount:ns:sa", ("g",), ("g", "system:authenticated"), id="sa-given"
        ),
        pytest.param("system:serviceaccount:NS:sa", (), ("system:authenticated",), id="sa-invalid"),
        pytest.param("bob", ("system:unauthenticated",), ("system:unauthenticated",), id="unauth"),
    ],
)
def test_authenticated_users_get_kubes_groups(
    username: str, groups: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert subjects.authenticated_groups(username, groups) == expected


def test_a_subject_is_found_under_the_key_of_the_user_it_names() -> None:
    keys = set(subjects.user_keys("system:serviceaccount:ns:sa", ["g"]))
    account = {"kind": "ServiceAccount", "name": "sa"}
    assert subjects.subject_key(account, "ns") in keys  # a RoleBinding's own namespace
    assert subjects.subject_key(account, "") is None  # a ClusterRoleBinding must name one
    assert subjects.subject_key({**account, "namespace": "ns"}, "other") in keys
    assert subjects.subject_key({"kind": "Group", "name": "g"}, "") in keys
    assert subjects.subject_key({"kind": "User", "name": "g"}, "") not in keys
    assert subjects.describe(account, "ns") == 'ServiceAccount "sa/ns"'


# --- aggregation ---------------------------------------------------------------------------


def _role(
    name: str,
    rules: list[dict[str, Any]],
    labels: dict[str, str] | None = None,
    selects: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    role: dict[str, Any] = {"metadata": {"name": name, "labels": labels or {}}, "rules": rules}
    if selects is not None:
        role["aggregationRule"] = {"clusterRoleSelectors": selects}
    return role


def _get(resource: str) -> dict[str, Any]:
    return {"verbs": ["get"], "apiGroups": [""], "resources": [resource]}


def test_aggregation_gathers_matching_roles_by_name_each_rule_once() -> None:
    to_view = {"aggregate-to-view": "true"}
    roles = [
        _role("view", [{"verbs": ["stale"]}], selects=[{"matchLabels": to_view}]),
        _role("z-extra", [_get("secrets"), _get("pods")], to_view),
        _role("a-base", [_get("pods"), _get("configmaps")], to_view),
        _role("unrelated", [_get("nodes")], {"other": "true"}),
        _role(
            "both",
            [],
            selects=[{"matchLabels": {"other": "true"}}, {"matchLabels": to_view}],
        ),
        _role("nothing", [_get("x")], selects=[{"matchLabels": {"none": "true"}}]),
    ]
    out = aggregation.aggregated_rules(roles)
    assert out["view"] == [_get("pods"), _get("configmaps"), _get("secrets")]
    assert out["both"] == [_get("nodes"), _get("pods"), _get("configmaps"), _get("secrets")]
    assert out["nothing"] == []
    assert "a-base" not in out


def test_a_chain_of_aggregated_roles_settles_at_once() -> None:
    def labelled(to: str) -> dict[str, str]:
        return {f"aggregate-to-{to}": "true"}

    roles = [
        _role("admin", [], selects=[{"matchLabels": labelled("admin")}]),
        _role("edit", [], labelled("admin"), selects=[{"matchLabels": labelled("edit")}]),
        _role("view", [], labelled("edit"), selects=[{"matchLabels": labelled("view")}]),
        _role("base-edit", [_get("secrets")], labelled("edit")),
        _role("base-view", [_get("pods")], labelled("view")),
    ]
    assert aggregation.aggregated_rules(roles)["admin"] == []  # one pass sees stale roles
    assert aggregation.settled_rules(roles) == {
        "admin": [_get("secrets"), _get("pods")],  # edit's, in edit's order
        "edit": [_get("secrets"), _get("pods")],  # base-edit sorts before view
        "view": [_get("pods")],
    }


def test_an_aggregated_role_never_gathers_itself() -> None:
    selfish = _role("me", [_get("pods")], {"x": "y"}, selects=[{"matchLabels": {"x": "y"}}])
    assert aggregation.aggregated_rules([selfish]) == {"me": []}


# --- the defaults --------------------------------------------------------------------------


def test_the_default_rules_keep_only_the_kinds_this_server_serves() -> None:
    served = [
        ResourceDef("", "pods", "pod", "Pod", True, (VersionDef("v1"),)),
        ResourceDef("apps", "deployments", "deployment", "Deployment", True, (VersionDef("v1"),)),
    ]
    rules = [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "pods/log", "limitranges"]},
        {"verbs": ["get"], "apiGroups": ["extensions"], "resources": ["deployments"]},
        {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments/scale"]},
    ]
    assert bootstrap.served_only(rules, served) == [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "pods/log"]},
        {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments/scale"]},
    ]
    edit = next(
        r for r in bootstrap.cluster_roles() if r["metadata"]["name"] == "system:aggregate-to-edit"
    )
    granted = {g for rule in edit["rules"] for g in rule["apiGroups"]}
    assert "extensions" not in granted and "apps" in granted


def test_reconciling_a_default_role_adds_what_it_lacks_and_keeps_a_users_additions() -> None:
    expected = next(
        r for r in bootstrap.cluster_roles() if r["metadata"]["name"] == "system:basic-user"
    )
    existing: dict[str, Any] = {
        "metadata": {"name": "system:basic-user", "labels": {"mine": "yes"}},
        "rules": [
            {
                "verbs": ["create"],
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews"],
            },
            {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]},
        ],
    }
    updated = bootstrap.reconcile_role(existing, expected)
    assert updated is not None
    assert updated["metadata"]["labels"] == {
        "kubernetes.io/bootstrapping": "rbac-defaults",
        "mine": "yes",
    }
    assert updated["metadata"]["annotations"] == {bootstrap.AUTOUPDATE: "true"}
    assert updated["rules"][:2] == existing["rules"]  # kept, then the missing pieces
    assert {
        "verbs": ["create"],
        "apiGroups": ["authentication.k8s.io"],
        "resources": ["selfsubjectreviews"],
    } in updated["rules"]
    assert bootstrap.reconcile_role(updated, expected) is None  # settled

    protected = {
        **existing,
        "metadata": {**existing["metadata"], "annotations": {bootstrap.AUTOUPDATE: "false"}},
    }
    assert bootstrap.reconcile_role(protected, expected) is None


def test_reconciling_a_default_binding_adds_subjects_and_remakes_a_changed_roleref() -> None:
    expected = bootstrap.cluster_role_bindings()[3]  # system:public-info-viewer
    existing = {
        **expected,
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "me"}],
    }
    action, binding = bootstrap.reconcile_binding(existing, expected) or ("", {})
    assert action == "update"
    assert [s["name"] for s in binding["subjects"]] == [
        "me",
        "system:authenticated",
        "system:unauthenticated",
    ]
    moved = {**expected, "roleRef": {**expected["roleRef"], "name": "view"}}
    assert bootstrap.reconcile_binding(moved, expected) == ("recreate", expected)
    assert bootstrap.reconcile_binding(expected, expected) is None


# --- validation ----------------------------------------------------------------------------


def _causes(kind: str, obj: dict[str, Any]) -> list[tuple[str, str]]:
    errs = fields.Errors()
    rbackinds.default(kind, obj)
    rbackinds.validate(kind, obj, errs)
    return [(c.field, c.message) for c in errs.causes]


def test_roles_are_validated_as_kube_validates_them() -> None:
    role = {
        "rules": [
            {"apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
            {
                "verbs": ["get"],
                "apiGroups": [""],
                "resources": ["pods", "secrets"],
                "resourceNames": ["x"],
            },
            {"verbs": ["get"]},
        ]
    }
    assert _causes("Role", role) == [
        ("rules[0].verbs", "Required value: verbs must contain at least one value"),
        (
            "rules[1].nonResourceURLs",
            'Invalid value: []string{"/healthz"}: '
            "namespaced rules cannot apply to non-resource URLs",
        ),
        (
            "rules[2].resourceNames",
            "Required value: resource names cannot apply to multiple resources",
        ),
        ("rules[3].apiGroups", "Required value: resource rules must supply at least one api group"),
        ("rules[3].resources", "Required value: resource rules must supply at least one resource"),
    ]
    assert _causes("ClusterRole", {"rules": [role["rules"][1]]}) == []
    assert _causes("ClusterRole", {"aggregationRule": {"clusterRoleSelectors": []}}) == [
        (
            "aggregationRule.clusterRoleSelectors",
            "Required value: at least one clusterRoleSelector required if aggregationRule is "
            "non-nil",
        )
    ]


def test_bindings_are_defaulted_and_validated_as_kube_does_it() -> None:
    binding: dict[str, Any] = {
        "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "ServiceAccount", "name": "sa"},
            {"kind": "Robot", "name": "x"},
            {"kind": "Group", "name": ""},
        ],
    }
    assert _causes("ClusterRoleBinding", binding) == [
        ("roleRef.kind", 'Unsupported value: "Role": supported values: "ClusterRole"'),
        ("subjects[1].namespace", "Required value"),
        (
            "subjects[2].kind",
            'Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"',
        ),
        ("subjects[3].name", "Required value"),
        ("subjects[3].name", 'Invalid value: "": group name cannot be empty'),
    ]
    assert binding["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"  # defaulted
    assert binding["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
    assert "apiGroup" not in binding["subjects"][1]
    assert [field for field, _ in _causes("RoleBinding", binding)] == [
        "subjects[2].kind",
        "subjects[3].name",
        "subjects[3].name",
    ]


def test_a_roleref_never_changes() -> None:
    old = {
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
    }
    new = {"roleRef": {**old["roleRef"], "name": "edit"}}
    assert rbackinds.immutable_causes(old, old) == []
    [cause] = rbackinds.immutable_causes(old, new)
    assert (cause.field, cause.message) == (
        "roleRef",
        'Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", '
        'Name:"edit"}: cannot change roleRef',
    )


# --- impersonation headers -----------------------------------------------------------------


def _headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


class _Only:
    """An authorizer that allows the impersonations it lists (as "resource/name")."""

    def __init__(self, *allowed: str) -> None:
        self.allowed = allowed
        self.asked: list[Attributes] = []

    def decide(self, user: User, a: Attributes) -> policy.Decision:
        self.asked.append(a)
        resource = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        return policy.Decision(f"{resource}/{a.name}" in self.allowed)


def test_impersonating_a_user_gives_the_groups_kube_gives() -> None:
    me = User("me", ("system:authenticated",))
    allowed = _Only("users/alice", "groups/devs", "userextras/scopes/view", "uids/1234")
    user = impersonation.impersonate(
        _headers(
            ("Impersonate-User", "alice"),
            ("Impersonate-Group", "devs"),
            ("Impersonate-Extra-Scopes", "view"),
            ("Impersonate-Uid", "1234"),
        ),
        me,
        allowed,  # type: ignore[arg-type]  # the one method impersonate calls
    )
    assert user == User(
        "alice", ("devs", "system:authenticated"), uid="1234", extra=(("scopes", ("view",)),)
    )
    assert [(a.api_group, a.resource) for a in allowed.asked] == [
        ("", "users"),
        ("", "groups"),
        ("authentication.k8s.io", "userextras"),
        ("authentication.k8s.io", "uids"),
    ]
    account = impersonation.impersonate(
        _headers(("Impersonate-User", "system:serviceaccount:ns:sa")),
        me,
        _Only("serviceaccounts/sa"),  # type: ignore[arg-type]
    )
    assert account is not None and account.groups == (
        "system:serviceaccounts",
        "system:serviceaccounts:ns",
        "system:authenticated",
    )
    assert impersonation.impersonate(_headers(("Accept", "x")), me, _Only()) is None  # type: ignore[arg-type]


def test_impersonation_refusals_are_kubes() -> None:
    me = User("me", ("system:authenticated",))
    with pytest.raises(errors.APIError) as refused:
        impersonation.impersonate(
            _headers(("Impersonate-User", "alice"), ("Impersonate-Group", "system:masters")),
            me,
            _Only("users/alice"),  # type: ignore[arg-type]
        )
    assert refused.value.code == 403
    assert refused.value.message == (
        'groups "system:masters" is forbidden: User "me" cannot impersonate resource "groups" '
        'in API group "" at the cluster scope'
    )
    with pytest.raises(errors.APIError) as bad:
        impersonation.impersonate(
            _headers(("Impersonate-Group", "g"), ("Impersonate-Extra-Scopes", "s")),
            me,
            _Only(),  # type: ignore[arg-type]
        )
    assert bad.value.code == 400
    assert bad.value.message == (
        "requested [{Group  g    } {UserExtra  s  authentication.k8s.io/v1  scopes}] without "
        "impersonating a user"
    )
