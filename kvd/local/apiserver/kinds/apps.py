"""Deployments, ReplicaSets, DaemonSets and PodDisruptionBudgets as kube-apiserver defaults and
checks them (pkg/apis/apps/v1/defaults.go, pkg/apis/apps/validation, pkg/apis/policy/validation).

Defaults come first, as kube's decoder sets them on every write (so an apply that leaves a field
out still stores kube's value): one replica; a Deployment's RollingUpdate strategy with 25%/25%,
revisionHistoryLimit 10 and progressDeadlineSeconds 600; a DaemonSet's RollingUpdate with
maxUnavailable 1 and maxSurge 0. Validation covers what users of a chart write: a selector that
is present, not empty and matches the template's labels, non-negative counts, the strategy's
enumerations and int-or-percent bounds, `restartPolicy: Always` for the template, and the pod
template's spec (`pods.pod_spec`). The selector never changes (`immutable_causes`, for updates).
"""

from __future__ import annotations

import re
from typing import Any

from kvd.local.apiserver import selectors
from kvd.local.apiserver.errors import Cause
from kvd.local.apiserver.kinds import fields, pods
from kvd.local.apiserver.schema.values import go_quote

GROUP = "apps"
BOTH_SET = "minAvailable and maxUnavailable cannot be both set"
WORKLOADS = ("Deployment", "ReplicaSet", "DaemonSet", "StatefulSet")
_PERCENT = re.compile(r"^[0-9]+%$")
_PERCENT_MESSAGE = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or "
    "'93%', regex used for validation is '[0-9]+%')"
)


def default(kind: str, obj: dict[str, Any]) -> None:
    """kube's v1 defaults of `kind`, set in place."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if kind in ("Deployment", "ReplicaSet", "StatefulSet") and spec.get("replicas") is None:
        spec["replicas"] = 1
    if kind == "Deployment":
        strategy = spec.get("strategy")
        if not isinstance(strategy, dict):
            strategy = spec["strategy"] = {}
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.get("rollingUpdate")
            if not isinstance(rolling, dict):
                rolling = strategy["rollingUpdate"] = {}
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    elif kind == "DaemonSet":
        strategy = spec.get("updateStrategy")
        if not isinstance(strategy, dict):
            strategy = spec["updateStrategy"] = {}
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.get("rollingUpdate")
            if not isinstance(rolling, dict):
                rolling = strategy["rollingUpdate"] = {}
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)


def validate(kind: str, obj: dict[str, Any], errs: fields.Errors) -> None:
    spec = obj.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    if kind not in ("Deployment", "ReplicaSet", "DaemonSet"):
        return
    for key in ("replicas", "minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
        value = spec.get(key)
        if isinstance(value, int) and value < 0:
            errs.invalid(f"spec.{key}", value, "must be greater than or equal to 0")
    _selector_and_template(kind, spec, errs)
    if kind == "Deployment":
        _deployment_strategy(spec, errs)
        deadline, ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
        if isinstance(deadline, int) and isinstance(ready, int) and deadline <= ready:
            errs.invalid(
                "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
            )
    elif kind == "DaemonSet":
        _daemonset_strategy(spec, errs)


def _selector_and_template(kind: str, spec: dict[str, Any], errs: fields.Errors) -> None:
    raw = spec.get("selector")
    selector: selectors.LabelSelector | None = None
    if raw is None:
        errs.required("spec.selector")
    else:
        try:
            selector = selectors.from_label_selector_object(raw)
        except selectors.SelectorError as exc:
            errs.invalid("spec.selector", format_selector(raw), str(exc))
        if selector is not None and selector.empty:
            errs.invalid(
                "spec.selector",
                format_selector(raw),
                f"empty selector is invalid for {kind.lower()}",
            )
    template = spec.get("template")
    if not isinstance(template, dict):
        errs.required("spec.template")
        return
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector is not None and not selector.empty and not selector.matches(labels):
        errs.invalid(
            "spec.template.metadata.labels",
            _go_map(labels),
            "`selector` does not match template `labels`",
        )
    tspec = template.get("spec")
    tspec = tspec if isinstance(tspec, dict) else {}
    pods.pod_spec(tspec, errs, "spec.template.spec")
    policy = tspec.get("restartPolicy")
    if policy not in (None, "Always"):
        errs.not_supported("spec.template.spec.restartPolicy", policy, ("Always",))
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        )


def _deployment_strategy(spec: dict[str, Any], errs: fields.Errors) -> None:
    strategy = spec.get("strategy") or {}
    kind = strategy.get("type")
    if kind not in ("Recreate", "RollingUpdate"):
        errs.not_supported("spec.strategy.type", kind or "", ("Recreate", "RollingUpdate"))
        return
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            errs.forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            )
        return
    _surge_and_unavailable(rolling or {}, "spec.strategy.rollingUpdate", errs)


def _daemonset_strategy(spec: dict[str, Any], errs: fields.Errors) -> None:
    strategy = spec.get("updateStrategy") or {}
    kind = strategy.get("type")
    if kind not in ("OnDelete", "RollingUpdate"):
        errs.not_supported("spec.updateStrategy.type", kind or "", ("OnDelete", "RollingUpdate"))
        return
    if kind == "RollingUpdate":
        _surge_and_unavailable(
            strategy.get("rollingUpdate") or {}, "spec.updateStrategy.rollingUpdate", errs
        )


def _surge_and_unavailable(rolling: dict[str, Any], at: str, errs: fields.Errors) -> None:
    surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
    for key, value in (("maxUnavailable", unavailable), ("maxSurge", surge)):
        _int_or_percent(value, f"{at}.{key}", errs)
    if _is_zero(surge) and _is_zero(unavailable):
        errs.invalid(
            f"{at}.maxUnavailable", _shown(unavailable), "may not be 0 when `maxSurge` is 0"
        )


def disruption_budget(obj: dict[str, Any], errs: fields.Errors) -> None:
    """A PodDisruptionBudget's spec: one of minAvailable and maxUnavailable, each an
    int-or-percent, and a valid selector."""
    spec = obj.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        errs.invalid("spec", _GoValue("policy.PodDisruptionBudgetSpec{...}"), BOTH_SET)
    for key in ("minAvailable", "maxUnavailable"):
        _int_or_percent(spec.get(key), f"spec.{key}", errs)
    raw = spec.get("selector")
    if raw is not None:
        try:
            selectors.from_label_selector_object(raw)
        except selectors.SelectorError as exc:
            errs.invalid("spec.selector", format_selector(raw), str(exc))
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in ("IfHealthyBudget", "AlwaysAllow"):
        errs.not_supported(
            "spec.unhealthyPodEvictionPolicy", policy, ("AlwaysAllow", "IfHealthyBudget")
        )


def _int_or_percent(value: Any, at: str, errs: fields.Errors) -> None:
    if value is None:
        return
    if isinstance(value, str):
        if not _PERCENT.match(value):
            errs.invalid(at, value, _PERCENT_MESSAGE)
        elif int(value[:-1]) > 100:
            errs.invalid(at, value, "must not be greater than 100%")
    elif isinstance(value, int) and value < 0:
        errs.invalid(at, value, "must be greater than or equal to 0")


def _is_zero(value: Any) -> bool:
    return value in (0, "0%")


def _shown(value: Any) -> Any:
    return 0 if value is None else value


def scaled(value: Any, total: int, *, round_up: bool) -> int:
    """An int-or-percent of `total`, as intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _PERCENT.match(value):
        percent = int(value[:-1])
        whole, rest = divmod(percent * total, 100)
        return whole + 1 if round_up and rest else whole
    return 0


def immutable_causes(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """`spec.selector` may not change once set (apps/v1)."""
    if kind not in ("Deployment", "ReplicaSet", "DaemonSet"):
        return []
    before = (old.get("spec") or {}).get("selector")
    after = (new.get("spec") or {}).get("selector")
    if _normal(before) == _normal(after):
        return []
    errs = fields.Errors()
    errs.invalid("spec.selector", format_selector(after), "field is immutable")
    return errs.causes


def _normal(selector: Any) -> Any:
    if not isinstance(selector, dict):
        return selector
    return {
        "matchLabels": selector.get("matchLabels") or {},
        "matchExpressions": selector.get("matchExpressions") or [],
    }


class _GoValue:
    """A value printed as Go's %#v prints it in a field error (shown as is, not quoted)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def format_selector(selector: Any) -> Any:
    """A LabelSelector as kube's field errors print it (Go's %#v)."""
    if not isinstance(selector, dict):
        return _GoValue("nil")
    labels = selector.get("matchLabels")
    expressions = selector.get("matchExpressions") or []
    shown_labels = _go_map(labels) if labels else "map[string]string(nil)"
    shown_expressions = (
        "[]v1.LabelSelectorRequirement{"
        + ", ".join(
            f"v1.LabelSelectorRequirement{{Key:{go_quote(str(e.get('key', '')))}, "
            f"Operator:{go_quote(str(e.get('operator', '')))}, Values:[]string{{"
            + ", ".join(go_quote(str(v)) for v in e.get("values") or [])
            + "}}"
            for e in expressions
            if isinstance(e, dict)
        )
        + "}"
        if expressions
        else "[]v1.LabelSelectorRequirement(nil)"
    )
    return _GoValue(
        f"v1.LabelSelector{{MatchLabels:{shown_labels}, MatchExpressions:{shown_expressions}}}"
    )


def _go_map(labels: Any) -> Any:
    if not isinstance(labels, dict) or not labels:
        return _GoValue("map[string]string(nil)")
    items = ", ".join(f"{go_quote(str(k))}:{go_quote(str(v))}" for k, v in sorted(labels.items()))
    return _GoValue(f"map[string]string{{{items}}}")
