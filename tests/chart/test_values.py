"""charts/kvd's values: helm lint, values.schema.json covering every value and refusing bad ones
by name, and the chart's versions in step with kvd's."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from kvd.version import kvd_version
from tests.chart import chart


def _leaves(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of the values the schema declares, down to objects it leaves open."""
    properties = schema.get("properties")
    if schema.get("type") != "object" or not properties:
        return {prefix}
    out: set[str] = set()
    for key, sub in properties.items():
        out |= _leaves(sub, f"{prefix}.{key}" if prefix else key)
    return out


def _set_paths(values: Any, prefix: str = "") -> set[str]:
    if not isinstance(values, dict) or not values:
        return {prefix}
    out: set[str] = {prefix} if prefix else set()
    for key, sub in values.items():
        out |= _set_paths(sub, f"{prefix}.{key}" if prefix else key)
    return out


SCHEMA = json.loads((chart.CHART / "values.schema.json").read_text())


@pytest.mark.parametrize("variant", list(chart.VARIANTS))
@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_helm_lint_is_clean(variant: str, strict: bool) -> None:
    files, sets = chart.VARIANTS[variant]
    args = ["lint", str(chart.CHART), "--namespace", chart.NAMESPACE]
    args += ["--kube-version", chart.lowest_kube_version()]
    args += [a for f in files for a in ("--values", str(f))]
    args += [a for s in sets for a in ("--set", s)]
    if strict:
        args.append("--strict")
    out = chart.helm(*args).stdout
    assert "0 chart(s) failed" in out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


def test_the_all_options_file_sets_every_value_the_schema_declares() -> None:
    # (values.yaml itself cannot hold an undeclared key: the strict schema refuses it)
    declared = _leaves(SCHEMA) - {"global"}
    options = yaml.safe_load(chart.ALL_OPTIONS.read_text())
    assert not declared - _set_paths(options), "all-options.yaml misses these values"


def test_every_object_in_the_schema_is_closed() -> None:
    """A misspelt key must fail: each object with declared properties forbids others."""

    def walk(schema: dict[str, Any], path: str) -> list[str]:
        open_ = []
        if schema.get("properties"):
            if schema.get("additionalProperties") is not False:
                open_.append(path or "<top>")
            for key, sub in schema["properties"].items():
                open_ += walk(sub, f"{path}.{key}" if path else key)
        return open_

    assert walk(SCHEMA, "") == []


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        pytest.param("controler.replicas=2", "'controler' not allowed", id="misspelt-key"),
        pytest.param("controller.replicas=0", "/controller/replicas", id="no-replicas"),
        pytest.param("controller.ports.api=70000", "/controller/ports/api", id="port-range"),
        pytest.param("image.pullPolicy=Sometimes", "/image/pullPolicy", id="pull-policy"),
        pytest.param("image.registry=localhost/kvd/", "/image/registry", id="trailing-slash"),
        pytest.param("config.memoryOverhead=lots", "/config/memoryOverhead", id="quantity"),
        pytest.param("config.useEmulation=maybe", "/config/useEmulation", id="not-boolean"),
        pytest.param("config.cpuAllocationRatio=0", "/config/cpuAllocationRatio", id="ratio-0"),
        pytest.param(
            "config.cpuAllocationRatio=1001", "/config/cpuAllocationRatio", id="ratio-too-high"
        ),
        pytest.param("node.launcherDir=run/kvd", "/node/launcherDir", id="relative-path"),
        pytest.param(
            "controller.serviceAccountName=Kvd_Controller",
            "/controller/serviceAccountName",
            id="account-name",
        ),
        pytest.param("tls.certManager.issuerRef.kind=Vault", "/tls/certManager", id="issuer"),
        pytest.param("handler.kvm.enabled=yes", "/handler/kvm/enabled", id="kvm-switch"),
        pytest.param("openshift.enable=true", "'enable' not allowed", id="openshift-typo"),
    ],
)
def test_the_schema_refuses_bad_values_naming_them(setting: str, named: str) -> None:
    done = chart.helm(*chart.template_args(sets=(setting,)), check=False)
    assert done.returncode != 0, f"{setting} was accepted"
    assert "values don't meet the specifications of the schema" in done.stderr
    assert named in done.stderr, done.stderr


def test_app_version_is_kvds_and_the_images_default_to_it() -> None:
    assert chart.chart_yaml()["appVersion"] == kvd_version()
    docs = chart.render()
    controller = chart.find(docs, "Deployment", "kvd-controller")
    image = controller["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"localhost/kvd/kvd-controller:{kvd_version()}"
    config = chart.find(docs, "ConfigMap", "kvd-config")
    assert config["data"]["launcherImage"] == f"localhost/kvd/kvd-launcher:{kvd_version()}"
