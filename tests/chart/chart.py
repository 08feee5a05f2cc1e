"""Rendering charts/kvd with the real helm, for the chart's tests.

helm comes from the venv (`scripts/install-helm`, run by `make setup`), as kubectl does; a
missing helm fails the test with what to run, never skips it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kvd"
HERE = Path(__file__).resolve().parent
ALL_OPTIONS = HERE / "all-options.yaml"
NAMESPACE = "kvd-system"
Json = dict[str, Any]


def helm_binary() -> str:
    found = Path(sys.executable).parent / "helm"
    if found.exists():
        return str(found)
    on_path = shutil.which("helm")
    assert on_path, "no helm in the venv or on PATH: run scripts/install-helm (make setup does)"
    return on_path


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check:
        assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def chart_yaml() -> Json:
    data: Json = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return data


def lowest_kube_version() -> str:
    """The lowest Kubernetes version Chart.yaml's kubeVersion admits, as "1.31.0"."""
    found = re.fullmatch(r">=\s*(\d+)\.(\d+)\.(\d+)(-0)?", chart_yaml()["kubeVersion"])
    assert found, f"kubeVersion {chart_yaml()['kubeVersion']!r} is not of the form >=X.Y.Z-0"
    return ".".join(found.group(1, 2, 3))


def template_args(*values: str | Path, sets: tuple[str, ...] = ()) -> list[str]:
    args = ["template", "kvd", str(CHART), "--namespace", NAMESPACE]
    args += ["--kube-version", lowest_kube_version()]
    for v in values:
        args += ["--values", str(v)]
    for s in sets:
        args += ["--set", s]
    return args


def render(
    *values: str | Path, sets: tuple[str, ...] = (), include_crds: bool = False
) -> list[Json]:
    """The chart's objects for these values files and --set expressions."""
    args = template_args(*values, sets=sets)
    if include_crds:
        args.append("--include-crds")
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def find(docs: list[Json], kind: str, name: str) -> Json:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
    return matches[0]


# The variants every check runs on: each value of the chart is set in at least one of them
# (all-options.yaml sets every key; test_values.py proves it against values.schema.json).
VARIANTS: dict[str, tuple[tuple[Path, ...], tuple[str, ...]]] = {
    "defaults": ((), ()),
    "openshift": ((), ("openshift.enabled=true",)),
    "all-options": ((ALL_OPTIONS,), ()),
    "cert-manager-own-ca": ((), ("tls.certManager.enabled=true",)),
    "no-apiservice-no-pdb": (
        (),
        ("apiService.enabled=false", "controller.podDisruptionBudget.enabled=false"),
    ),
}
