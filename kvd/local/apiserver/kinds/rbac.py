"""Roles, ClusterRoles and their bindings, as pkg/apis/rbac/validation checks them.

A rule needs verbs; a resource rule needs API groups and resources, and names only with a single
resource; a URL rule nothing else, and only in a ClusterRole. A ClusterRole's aggregationRule
needs at least one valid selector. A binding refers to a role of the RBAC group (a Role only
from a RoleBinding) by a valid name, and its subjects are users or groups of the RBAC group, or
service accounts of the core group, which a ClusterRoleBinding must give a namespace.
`roleRef` never changes (`immutable_causes`, for updates). Defaults come first, as kube's
decoder sets them: the RBAC group on a roleRef and on user and group subjects.
"""

from __future__ import annotations

from typing import Any

from kvd.local.apiserver import meta, selectors
from kvd.local.apiserver.errors import Cause
from kvd.local.apiserver.kinds import fields
from kvd.local.apiserver.schema.values import go_quote

GROUP = "rbac.authorization.k8s.io"


def default(kind: str, obj: dict[str, Any]) -> None:
    """kube's v1 defaults for bindings: `apiGroup` on the roleRef and the subjects."""
    if kind not in ("RoleBinding", "ClusterRoleBinding"):
        return
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    for subject in obj.get("subjects") or ():
        user_or_group = isinstance(subject, dict) and subject.get("kind") in ("User", "Group")
        if user_or_group and not subject.get("apiGroup"):
            subject["apiGroup"] = GROUP


def validate(kind: str, obj: dict[str, Any], errs: fields.Errors) -> None:
    if kind in ("Role", "ClusterRole"):
        for i, rule in enumerate(obj.get("rules") or ()):
            _rule(rule if isinstance(rule, dict) else {}, kind == "Role", f"rules[{i}]", errs)
        if kind == "ClusterRole":
            _aggregation(obj.get("aggregationRule"), errs)
    elif kind in ("RoleBinding", "ClusterRoleBinding"):
        namespaced = kind == "RoleBinding"
        _role_ref(obj.get("roleRef") or {}, namespaced, errs)
        for i, subject in enumerate(obj.get("subjects") or ()):
            _subject(subject if isinstance(subject, dict) else {}, namespaced, i, errs)


def immutable_causes(old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """A binding's roleRef may not change; kube prints the new one as Go's `%#v`."""
    before, after = old.get("roleRef") or {}, new.get("roleRef") or {}
    keys = ("apiGroup", "kind", "name")
    if all(before.get(k, "") == after.get(k, "") for k in keys):
        return []
    shown = (
        f"APIGroup:{go_quote(str(after.get('apiGroup', '')))}, "
        f"Kind:{go_quote(str(after.get('kind', '')))}, Name:{go_quote(str(after.get('name', '')))}"
    )
    message = f"Invalid value: rbac.RoleRef{{{shown}}}: cannot change roleRef"
    return [Cause(fields.INVALID, message, "roleRef")]


def _rule(rule: dict[str, Any], namespaced: bool, path: str, errs: fields.Errors) -> None:
    def listed(key: str) -> list[str]:
        values = rule.get(key)
        return [str(v) for v in values] if isinstance(values, list) else []

    verbs, urls = listed("verbs"), listed("nonResourceURLs")
    groups, resources, names = listed("apiGroups"), listed("resources"), listed("resourceNames")
    if not verbs:
        errs.required(f"{path}.verbs", "verbs must contain at least one value")
    if urls:
        shown = "[]string{" + ", ".join(go_quote(u) for u in urls) + "}"
        if namespaced:
            _invalid(
                errs,
                f"{path}.nonResourceURLs",
                shown,
                "namespaced rules cannot apply to non-resource URLs",
            )
        if groups or resources or names:
            _invalid(
                errs,
                f"{path}.nonResourceURLs",
                shown,
                "rules cannot apply to both regular resources and non-resource URLs",
            )
        return
    if not groups:
        errs.required(f"{path}.apiGroups", "resource rules must supply at least one api group")
    if not resources:
        errs.required(f"{path}.resources", "resource rules must supply at least one resource")
    if names and len(resources) > 1:
        errs.required(f"{path}.resourceNames", "resource names cannot apply to multiple resources")


def _aggregation(rule: Any, errs: fields.Errors) -> None:
    if not isinstance(rule, dict):
        return
    chosen = rule.get("clusterRoleSelectors") or []
    if not chosen:
        errs.required(
            "aggregationRule.clusterRoleSelectors",
            "at least one clusterRoleSelector required if aggregationRule is non-nil",
        )
    for i, selector in enumerate(chosen):
        try:
            selectors.from_label_selector_object(selector)
        except selectors.SelectorError as exc:
            path = f"aggregationRule.clusterRoleSelectors[{i}]"
            errs.causes.append(Cause(fields.INVALID, str(exc), path))


def _role_ref(ref: dict[str, Any], namespaced: bool, errs: fields.Errors) -> None:
    if ref.get("apiGroup", "") != GROUP:
        errs.not_supported("roleRef.apiGroup", str(ref.get("apiGroup", "")), [GROUP])
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("kind", "") not in kinds:
        errs.not_supported("roleRef.kind", str(ref.get("kind", "")), kinds)
    name = str(ref.get("name") or "")
    if not name:
        errs.required("roleRef.name")
    for problem in meta.path_segment_problems(name) if name else ():
        errs.invalid("roleRef.name", name, problem)


def _subject(subject: dict[str, Any], namespaced: bool, i: int, errs: fields.Errors) -> None:
    path = f"subjects[{i}]"
    name, kind = str(subject.get("name") or ""), str(subject.get("kind") or "")
    group = str(subject.get("apiGroup") or "")
    if not name:
        errs.required(f"{path}.name")
    if kind == "ServiceAccount":
        for problem in fields.dns1123_subdomain(name) if name else ():
            errs.invalid(f"{path}.name", name, problem)
        if group:
            errs.not_supported(f"{path}.apiGroup", group, [""])
        if not namespaced and not subject.get("namespace"):
            errs.required(f"{path}.namespace")
    elif kind in ("User", "Group"):
        if not name:
            errs.invalid(f"{path}.name", name, f"{kind.lower()} name cannot be empty")
        if group != GROUP:
            errs.not_supported(f"{path}.apiGroup", group, [GROUP])
    else:
        errs.not_supported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"])


def _invalid(errs: fields.Errors, path: str, printed: str, detail: str) -> None:
    """An Invalid cause whose value kube prints with `%#v` (a list, a struct), not quoted."""
    errs.causes.append(Cause(fields.INVALID, f"Invalid value: {printed}: {detail}", path))
