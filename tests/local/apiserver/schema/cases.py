"""What the schema tests share: kvd's own CRD schemas and manifests, and YAML tables.

The tables are YAML, so that kube's messages (quotes, backslashes and all) read as kube prints
them; each row becomes a `pytest.param` with its `id`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kvd.local.apiserver.schema import Cause, apply_defaults, prune, validate

REPO = Path(__file__).resolve().parents[4]
CRD_FILES = sorted((REPO / "charts" / "kvd" / "crds").glob("*.yaml"))
MANIFESTS = REPO / "tests" / "api" / "manifests"
VMI_MANIFEST = "vmi-cloudinit-emptydisk.yaml"
DELETE = "<delete>"


def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in CRD_FILES:
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            out[crd["spec"]["names"]["kind"], version["name"]] = version["schema"][
                "openAPIV3Schema"
            ]
    return out


SCHEMAS = _schemas()
VMI = SCHEMAS["VirtualMachineInstance", "v1"]


def manifest(name: str) -> Any:
    return yaml.safe_load((MANIFESTS / name).read_text())


def schema_for(obj: dict[str, Any]) -> dict[str, Any]:
    return SCHEMAS[obj["kind"], obj["apiVersion"].split("/")[1]]


def pipeline(obj: Any, schema: dict[str, Any]) -> tuple[Any, list[str], list[Cause]]:
    """What the server does with a write: default, prune, validate."""
    pruned, unknown = prune(apply_defaults(obj, schema), schema)
    return pruned, unknown, validate(pruned, schema)


def _steps(path: str) -> list[str | int]:
    return [int(i) if i else key for key, i in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path)]


def put(obj: Any, path: str, value: Any) -> Any:
    """Set, or with DELETE remove, the value at a `spec.disks[0].name` path, making objects."""
    *parents, last = _steps(path)
    node = obj
    for step in parents:
        node = node.setdefault(step, {}) if isinstance(step, str) else node[step]
    if value == DELETE:
        del node[last]
    else:
        node[last] = value
    return obj


def get(obj: Any, path: str) -> Any:
    for step in _steps(path):
        obj = obj[step]
    return obj


def table(text: str, *fields: str) -> list[Any]:
    """Rows of a YAML table as pytest params of `fields`; `causes` rows become Causes."""
    params = []
    for row in yaml.safe_load(text):
        if "causes" in row:
            row["causes"] = [Cause(c["reason"], c["message"], c["field"]) for c in row["causes"]]
        params.append(pytest.param(*(row.get(f) for f in fields), id=row["id"]))
    return params


def nested_lists(depth: int, bottom: Any) -> Any:
    for _ in range(depth):
        bottom = [bottom]
    return bottom
