"""apps workloads, Services and PodDisruptionBudgets defaulted and validated as kube-apiserver
does (pure: the kinds' functions on their own)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kvd.local.apiserver.kinds import apps, fields, services

Json = dict[str, Any]


def _deployment(**spec: Any) -> Json:
    base: Json = {
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    base["spec"].update(spec)
    return base


def _causes(kind: str, obj: Json) -> list[str]:
    errs = fields.Errors()
    apps.default(kind, obj)
    apps.validate(kind, obj, errs)
    return [f"{c.field}: {c.message}" for c in errs.causes]


def test_deployment_defaults_are_kubes() -> None:
    d = _deployment()
    apps.default("Deployment", d)
    assert d["spec"]["replicas"] == 1
    assert d["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert d["spec"]["revisionHistoryLimit"] == 10
    assert d["spec"]["progressDeadlineSeconds"] == 600


def test_defaults_keep_what_is_given() -> None:
    d = _deployment(replicas=0, strategy={"type": "Recreate"}, revisionHistoryLimit=2)
    apps.default("Deployment", d)
    assert d["spec"]["replicas"] == 0
    assert d["spec"]["strategy"] == {"type": "Recreate"}
    assert d["spec"]["revisionHistoryLimit"] == 2


def test_daemonset_defaults() -> None:
    ds = _deployment()
    apps.default("DaemonSet", ds)
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert "replicas" not in ds["spec"]


@pytest.mark.parametrize(
    ("kind", "obj", "expected"),
    [
        pytest.param(
            "Deployment",
            _deployment(selector={"matchLabels": {"app": "other"}}),
            'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
            "`selector` does not match template `labels`",
            id="selector-mismatch",
        ),
        pytest.param(
            "Deployment",
            _deployment(selector={}),
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
            "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid "
            "for deployment",
            id="empty-selector",
        ),
        pytest.param(
            "Deployment",
            _deployment(replicas=-1),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            id="negative-replicas",
        ),
        pytest.param(
            "Deployment",
            _deployment(strategy={"type": "Rolling"}),
            'spec.strategy.type: Unsupported value: "Rolling": supported values: "Recreate", '
            '"RollingUpdate"',
            id="strategy-type",
        ),
        pytest.param(
            "Deployment",
            _deployment(
                strategy={
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0},
                }
            ),
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when "
            "`maxSurge` is 0",
            id="surge-and-unavailable-zero",
        ),
        pytest.param(
            "Deployment",
            _deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` "
            "is 'Recreate'",
            id="recreate-with-rolling",
        ),
        pytest.param(
            "Deployment",
            _deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "150%"}}),
            'spec.strategy.rollingUpdate.maxSurge: Invalid value: "150%": must not be greater '
            "than 100%",
            id="percent-over-100",
        ),
        pytest.param(
            "Deployment",
            _deployment(progressDeadlineSeconds=5, minReadySeconds=10),
            "spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds",
            id="deadline-below-min-ready",
        ),
        pytest.param(
            "DaemonSet",
            _deployment(updateStrategy={"type": "Always"}),
            'spec.updateStrategy.type: Unsupported value: "Always": supported values: '
            '"OnDelete", "RollingUpdate"',
            id="daemonset-strategy",
        ),
        pytest.param(
            "ReplicaSet",
            {"metadata": {"name": "r"}, "spec": {"template": _deployment()["spec"]["template"]}},
            "spec.selector: Required value",
            id="no-selector",
        ),
    ],
)
def test_refused_with_kubes_words(kind: str, obj: Json, expected: str) -> None:
    assert expected in _causes(kind, copy.deepcopy(obj))


def test_template_restart_policy_must_be_always() -> None:
    d = _deployment()
    d["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert (
        'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'
        in _causes("Deployment", d)
    )


def test_a_valid_deployment_passes() -> None:
    assert _causes("Deployment", _deployment()) == []


def test_selector_is_immutable() -> None:
    old, new = _deployment(), _deployment(selector={"matchLabels": {"app": "web", "v": "2"}})
    causes = apps.immutable_causes("Deployment", old, new)
    assert [c.field for c in causes] == ["spec.selector"]
    assert causes[0].message.endswith("field is immutable")
    assert apps.immutable_causes("Deployment", old, copy.deepcopy(old)) == []


@pytest.mark.parametrize(
    ("value", "total", "up", "expected"),
    [
        pytest.param("25%", 3, True, 1, id="round-up"),
        pytest.param("25%", 3, False, 0, id="round-down"),
        pytest.param(2, 10, True, 2, id="integer"),
        pytest.param("100%", 4, False, 4, id="all"),
    ],
)
def test_scaled(value: Any, total: int, up: bool, expected: int) -> None:
    assert apps.scaled(value, total, round_up=up) == expected


def test_pdb_refuses_both_bounds() -> None:
    errs = fields.Errors()
    apps.disruption_budget({"spec": {"minAvailable": 1, "maxUnavailable": 1}}, errs)
    assert [c.message.split(": ")[-1] for c in errs.causes] == [apps.BOTH_SET]


def test_service_defaults() -> None:
    svc: Json = {"spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}
    services.default(svc)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["sessionAffinity"] == "None"
    assert svc["spec"]["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({"ports": []}, "spec.ports: Required value", id="no-ports"),
        pytest.param(
            {"ports": [{"port": 80}, {"port": 81}]},
            "spec.ports[0].name: Required value",
            id="unnamed-ports",
        ),
        pytest.param(
            {"ports": [{"port": 70000}]},
            "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            id="port-range",
        ),
        pytest.param(
            {"type": "Cluster", "ports": [{"port": 80}]},
            'spec.type: Unsupported value: "Cluster": supported values: "ClusterIP", '
            '"ExternalName", "LoadBalancer", "NodePort"',
            id="type",
        ),
    ],
)
def test_service_refused(spec: Json, expected: str) -> None:
    svc: Json = {"spec": spec}
    services.default(svc)
    errs = fields.Errors()
    services.validate(svc, errs)
    assert expected in [f"{c.field}: {c.message}" for c in errs.causes]
