"""The default roles and bindings, made and kept up at every start as kube-apiserver's
bootstrap policy does (plugin/pkg/auth/authorizer/rbac/bootstrappolicy).

ClusterRoles: `cluster-admin`; the user-facing `admin`, `edit` and `view`, which are aggregated
(`aggregation`) from the ClusterRoles labelled `rbac.authorization.k8s.io/aggregate-to-<role>`,
`system:aggregate-to-admin|edit|view` first among them (and `view` feeds `edit`, `edit`
feeds `admin`); `system:discovery`, `system:basic-user`, `system:public-info-viewer` and
`system:auth-delegator`. ClusterRoleBindings: `cluster-admin` to `system:masters`,
`system:discovery` and `system:basic-user` to every authenticated user,
`system:public-info-viewer` to everyone. Each carries kube's label
`kubernetes.io/bootstrapping: rbac-defaults` and annotation
`rbac.authorization.kubernetes.io/autoupdate: "true"`.

The aggregate-to roles' rules are kube's, for the kinds this server serves: a rule naming a
resource it does not serve (`limitranges`, anything in `extensions`, `autoscaling`) drops
that resource, so `kubectl describe clusterrole edit` lists what one can actually use here.

Reconciling (kube's `reconciliation` package, with confirm and without removing anything): a
missing object is created; an existing one gets the labels, annotations, aggregation
selectors and rules it lacks (a rule it lacks is added as the missing pieces), keeping
whatever else a user added; a binding gets the subjects it lacks, and is made again if its
roleRef differs. An object annotated `autoupdate: "false"` is left as the user made it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from kvd import logs
from kvd.local.apiserver.errors import APIError
from kvd.local.apiserver.objects import Objects, Target
from kvd.local.apiserver.rbac import rules as rbacrules
from kvd.local.apiserver.registry import BUILTINS, RBAC_GROUP, ResourceDef

log = logs.get_logger(__name__)

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"
MANAGER = "kube-apiserver"

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
READ_WRITE = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


def _rule(verbs: Iterable[str], groups: Iterable[str], resources: Iterable[str]) -> dict[str, Any]:
    return {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}


def _urls(*urls: str) -> dict[str, Any]:
    return {"verbs": ["get"], "nonResourceURLs": list(urls)}


# kube's rules, in its order; `served_only` trims them to what this server serves.
_AGGREGATE_TO_ADMIN = [
    _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    _rule(READ_WRITE, [RBAC_GROUP], ["rolebindings", "roles"]),
]
_AGGREGATE_TO_EDIT = [
    _rule(
        READ,
        [""],
        ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy"],
    ),
    _rule(["impersonate"], [""], ["serviceaccounts"]),
    _rule(WRITE, [""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
    _rule(["create"], [""], ["pods/eviction"]),
    _rule(
        WRITE,
        [""],
        [
            "configmaps",
            "events",
            "persistentvolumeclaims",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "secrets",
            "serviceaccounts",
            "services",
            "services/proxy",
        ],
    ),
    _rule(["create"], [""], ["serviceaccounts/token"]),
    _rule(
        WRITE,
        ["apps"],
        [
            "daemonsets",
            "deployments",
            "deployments/rollback",
            "deployments/scale",
            "replicasets",
            "replicasets/scale",
            "statefulsets",
            "statefulsets/scale",
        ],
    ),
    _rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
    _rule(WRITE, ["batch"], ["cronjobs", "jobs"]),
    _rule(
        WRITE,
        ["extensions"],
        [
            "daemonsets",
            "deployments",
            "deployments/rollback",
            "deployments/scale",
            "ingresses",
            "networkpolicies",
            "replicasets",
            "replicasets/scale",
            "replicationcontrollers/scale",
        ],
    ),
    _rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
    _rule(WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
    _rule(READ_WRITE, ["coordination.k8s.io"], ["leases"]),
]
_AGGREGATE_TO_VIEW = [
    _rule(
        READ,
        [""],
        [
            "configmaps",
            "endpoints",
            "persistentvolumeclaims",
            "persistentvolumeclaims/status",
            "pods",
            "replicationcontrollers",
            "replicationcontrollers/scale",
            "serviceaccounts",
            "services",
            "services/status",
        ],
    ),
    _rule(
        READ,
        [""],
        [
            "bindings",
            "events",
            "limitranges",
            "namespaces/status",
            "pods/log",
            "pods/status",
            "replicationcontrollers/status",
            "resourcequotas",
            "resourcequotas/status",
        ],
    ),
    _rule(READ, [""], ["namespaces"]),
    _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    _rule(
        READ,
        ["apps"],
        [
            "controllerrevisions",
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "statefulsets",
            "statefulsets/scale",
            "statefulsets/status",
        ],
    ),
    _rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    _rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
    _rule(
        READ,
        ["extensions"],
        [
            "daemonsets",
            "daemonsets/status",
            "deployments",
            "deployments/scale",
            "deployments/status",
            "ingresses",
            "ingresses/status",
            "networkpolicies",
            "replicasets",
            "replicasets/scale",
            "replicasets/status",
            "replicationcontrollers/scale",
        ],
    ),
    _rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    _rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
]
_PUBLIC_INFO = ("/healthz", "/livez", "/readyz", "/version", "/version/")


def served_only(
    rules: list[dict[str, Any]], served: Iterable[ResourceDef] = BUILTINS
) -> list[dict[str, Any]]:
    """`rules` without the resources (and then rules) whose kind is not served here."""
    kinds = {(r.group, r.plural) for r in served}
    out = []
    for rule in rules:
        resources = [
            name
            for name in rule["resources"]
            if any((group, name.split("/", 1)[0]) in kinds for group in rule["apiGroups"])
        ]
        if resources:
            out.append({**rule, "resources": resources})
    return out


def _cluster_role(
    name: str,
    rules: list[dict[str, Any]] | None = None,
    *,
    labels: dict[str, str] | None = None,
    aggregate_from: str | None = None,
) -> dict[str, Any]:
    role: dict[str, Any] = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {**BOOTSTRAPPING, **(labels or {})},
            "annotations": {AUTOUPDATE: "true"},
        },
    }
    if rules is not None:
        role["rules"] = rules
    if aggregate_from is not None:
        selector = {"matchLabels": {f"{AGGREGATE_TO}{aggregate_from}": "true"}}
        role["aggregationRule"] = {"clusterRoleSelectors": [selector]}
    return role


def cluster_roles() -> list[dict[str, Any]]:
    """kube's default ClusterRoles that this server has use for, by name."""
    return [
        _cluster_role("admin", aggregate_from="admin"),
        _cluster_role(
            "cluster-admin",
            [
                _rule(["*"], ["*"], ["*"]),
                {"verbs": ["*"], "nonResourceURLs": ["*"]},
            ],
        ),
        _cluster_role("edit", labels={f"{AGGREGATE_TO}admin": "true"}, aggregate_from="edit"),
        _cluster_role(
            "system:aggregate-to-admin",
            served_only(_AGGREGATE_TO_ADMIN),
            labels={f"{AGGREGATE_TO}admin": "true"},
        ),
        _cluster_role(
            "system:aggregate-to-edit",
            served_only(_AGGREGATE_TO_EDIT),
            labels={f"{AGGREGATE_TO}edit": "true"},
        ),
        _cluster_role(
            "system:aggregate-to-view",
            served_only(_AGGREGATE_TO_VIEW),
            labels={f"{AGGREGATE_TO}view": "true"},
        ),
        _cluster_role(
            "system:auth-delegator",
            [
                _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
                _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
            ],
        ),
        _cluster_role(
            "system:basic-user",
            [
                _rule(
                    ["create"],
                    ["authorization.k8s.io"],
                    ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
            ],
        ),
        _cluster_role(
            "system:discovery",
            [
                _urls(
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                )
            ],
        ),
        _cluster_role("system:public-info-viewer", [_urls(*_PUBLIC_INFO)]),
        _cluster_role("view", labels={f"{AGGREGATE_TO}edit": "true"}, aggregate_from="view"),
    ]


def _binding(role: str, *groups: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": role,
            "labels": dict(BOOTSTRAPPING),
            "annotations": {AUTOUPDATE: "true"},
        },
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups],
    }


def namespaced_roles() -> list[dict[str, Any]]:
    """kube's bootstrap Roles in kube-system that this server has a use for: the reader of the
    front-proxy trust ConfigMap, which an aggregated API server binds itself to."""
    reader = {
        "verbs": list(READ),
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["extension-apiserver-authentication"],
    }
    role = _cluster_role("extension-apiserver-authentication-reader", [reader])
    return [{**role, "kind": "Role", "metadata": {**role["metadata"], "namespace": "kube-system"}}]


def cluster_role_bindings() -> list[dict[str, Any]]:
    return [
        _binding("cluster-admin", "system:masters"),
        _binding("system:basic-user", "system:authenticated"),
        _binding("system:discovery", "system:authenticated"),
        _binding("system:public-info-viewer", "system:authenticated", "system:unauthenticated"),
    ]


# --- reconciling -----------------------------------------------------------------------------


def reconcile_role(existing: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any] | None:
    """The role to store in place of `existing` so it has what `expected` has; None when it
    already does, or is protected (autoupdate "false")."""
    if _protected(existing):
        return None
    role = copy.deepcopy(existing)
    _merge_metadata(role, expected)
    have = rbacrules.parse_all(role.get("rules"))
    missing = rbacrules.uncovered(have, rbacrules.parse_all(expected.get("rules")))
    if missing:
        role["rules"] = list(role.get("rules") or []) + [p.json() for p in missing]
    wanted = (expected.get("aggregationRule") or {}).get("clusterRoleSelectors")
    if wanted:
        rule = role.setdefault("aggregationRule", {})
        selectors = rule.setdefault("clusterRoleSelectors", [])
        selectors += [s for s in wanted if s not in selectors]
    return role if role != existing else None


def reconcile_binding(
    existing: dict[str, Any], expected: dict[str, Any]
) -> tuple[str, dict[str, Any]] | None:
    """("update" | "recreate", the binding to store) or None when nothing is to do."""
    if _protected(existing):
        return None
    if existing.get("roleRef") != expected["roleRef"]:
        return "recreate", expected
    binding = copy.deepcopy(existing)
    _merge_metadata(binding, expected)
    subjects = binding.setdefault("subjects", [])
    subjects += [s for s in expected["subjects"] if s not in subjects]
    return ("update", binding) if binding != existing else None


def _protected(obj: dict[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("annotations") or {}).get(AUTOUPDATE) == "false"


def _merge_metadata(obj: dict[str, Any], expected: dict[str, Any]) -> None:
    """The expected labels and annotations the object lacks (its own values win)."""
    meta = obj.setdefault("metadata", {})
    for key in ("labels", "annotations"):
        meta[key] = {**expected["metadata"][key], **(meta.get(key) or {})}


def ensure(objects: Objects) -> None:
    """Create or reconcile every default role and binding (at the server's start)."""
    registry = objects.registry
    for plural, wanted, reconcile in (
        ("clusterroles", cluster_roles(), reconcile_role),
        ("clusterrolebindings", cluster_role_bindings(), None),
        ("roles", namespaced_roles(), reconcile_role),
    ):
        resource = registry.get(RBAC_GROUP, plural)
        assert resource is not None
        for obj in wanted:
            namespace = obj["metadata"].get("namespace", "")
            t = Target(resource, "v1", namespace, obj["metadata"]["name"])
            try:
                _ensure_one(objects, t, obj, roles=reconcile is not None)
            except APIError as exc:  # one bad default must not keep the server down
                log.error("rbac_default_not_reconciled", name=t.name, kind=plural, error=str(exc))


def _ensure_one(objects: Objects, t: Target, expected: dict[str, Any], *, roles: bool) -> None:
    existing = objects.store.get(t.resource.key, t.namespace, t.name)
    if existing is None:
        objects.create(t, expected, validation="Strict", dry_run=False, manager=MANAGER)
        return
    if roles:
        updated = reconcile_role(existing, expected)
        if updated is not None:
            objects.update(t, updated, validation="Strict", dry_run=False, manager=MANAGER)
            log.info("rbac_default_reconciled", role=t.name, kind=t.resource.kind)
        return
    change = reconcile_binding(existing, expected)
    if change is None:
        return
    action, binding = change
    if action == "recreate":
        objects.remove(t, existing)
        objects.create(t, binding, validation="Strict", dry_run=False, manager=MANAGER)
    else:
        objects.update(t, binding, validation="Strict", dry_run=False, manager=MANAGER)
    log.info("rbac_default_reconciled", clusterrolebinding=t.name, action=action)
