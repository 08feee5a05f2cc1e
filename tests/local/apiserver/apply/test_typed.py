"""The walks over objects: field sets, comparison, merge and prune, against their shapes."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.local.apiserver.apply import shapes, typed
from kvd.local.apiserver.apply.fieldpath import Set

POD = shapes.builtin("Pod", "")
CM = shapes.builtin("ConfigMap", "")
NGINX = 'k:{"name":"nginx"}'
SIDE = 'k:{"name":"side"}'
PORT80 = 'k:{"containerPort":80,"protocol":"TCP"}'


def fields(s: Set) -> dict[str, Any]:
    return s.to_fields()


@pytest.mark.parametrize(
    ("shape", "config", "expected"),
    [
        pytest.param(
            CM,
            {"data": {"a": "1"}, "metadata": {"labels": {"x": "y"}}},
            {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:x": {}}}},
            id="struct-fields-are-not-members",
        ),
        pytest.param(CM, {"data": {}}, {"f:data": {}}, id="empty-object-is-a-member"),
        pytest.param(
            POD,
            {
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "x", "ports": [{"containerPort": 80}]}
                    ]
                }
            },
            {
                "f:spec": {
                    "f:containers": {
                        NGINX: {
                            ".": {},
                            "f:image": {},
                            "f:name": {},
                            "f:ports": {PORT80: {".": {}, "f:containerPort": {}}},
                        }
                    }
                }
            },
            id="keyed-lists-with-defaulted-key",
        ),
        pytest.param(
            POD,
            {"spec": {"containers": [{"name": "nginx", "command": ["a", "b"]}]}},
            {"f:spec": {"f:containers": {NGINX: {".": {}, "f:command": {}, "f:name": {}}}}},
            id="atomic-list-is-one-field",
        ),
        pytest.param(
            CM,
            {"metadata": {"finalizers": ["a", "b"]}},
            {"f:metadata": {"f:finalizers": {'v:"a"': {}, 'v:"b"': {}}}},
            id="set-list",
        ),
        pytest.param(
            POD,
            {"spec": {"imagePullSecrets": [{"name": "s"}]}},
            {"f:spec": {"f:imagePullSecrets": {'k:{"name":"s"}': {}}}},
            id="atomic-items",
        ),
    ],
)
def test_to_set(shape: shapes.Shape, config: dict[str, Any], expected: dict[str, Any]) -> None:
    assert fields(typed.to_set(config, shape)) == expected


def test_keyed_item_without_its_key_is_refused() -> None:
    with pytest.raises(typed.TypedError, match=r'\.spec\.containers: element 0: .* "name"'):
        typed.to_set({"spec": {"containers": [{"image": "x"}]}}, POD)


SCHEMA = shapes.custom(
    {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {
                    "hosts": {"type": "array", "items": {"type": "string"}},
                    "tags": {
                        "type": "array",
                        "x-kubernetes-list-type": "set",
                        "items": {"type": "string"},
                    },
                    "disks": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "properties": {"name": {"type": "string"}, "size": {"type": "string"}},
                        },
                    },
                    "selector": {
                        "type": "object",
                        "x-kubernetes-map-type": "atomic",
                        "additionalProperties": {"type": "string"},
                    },
                    "extra": {"type": "object", "additionalProperties": {"type": "object"}},
                },
            }
        },
    }
)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            {"spec": {"hosts": ["a"]}}, {"f:spec": {"f:hosts": {}}}, id="no-list-type-is-atomic"
        ),
        pytest.param(
            {"spec": {"tags": ["a"]}}, {"f:spec": {"f:tags": {'v:"a"': {}}}}, id="list-type-set"
        ),
        pytest.param(
            {"spec": {"disks": [{"name": "d", "size": "1"}]}},
            {"f:spec": {"f:disks": {'k:{"name":"d"}': {".": {}, "f:name": {}, "f:size": {}}}}},
            id="list-type-map",
        ),
        pytest.param(
            {"spec": {"selector": {"a": "b"}}}, {"f:spec": {"f:selector": {}}}, id="map-type-atomic"
        ),
        pytest.param(
            {"spec": {"extra": {"k": {"x": 1}}}},
            {"f:spec": {"f:extra": {"f:k": {".": {}, "f:x": {}}}}},
            id="map-keys-are-members",
        ),
        pytest.param(
            {"metadata": {"labels": {"a": "b"}}},
            {"f:metadata": {"f:labels": {"f:a": {}}}},
            id="object-meta",
        ),
    ],
)
def test_to_set_from_a_crd_schema(config: dict[str, Any], expected: dict[str, Any]) -> None:
    assert fields(typed.to_set(config, SCHEMA)) == expected


@pytest.mark.parametrize(
    ("old", "new", "added", "modified", "removed"),
    [
        pytest.param(
            {"data": {"a": "1"}},
            {"data": {"a": "2", "b": "3"}},
            {"f:data": {"f:b": {}}},
            {"f:data": {"f:a": {}}},
            {},
            id="leaves",
        ),
        pytest.param(
            {},
            {"data": {"a": "1"}},
            {"f:data": {".": {}, "f:a": {}}},
            {},
            {},
            id="new-object-is-added-itself",
        ),
        pytest.param(
            {"data": {"a": "1", "b": "2"}},
            {"data": {"a": "1"}},
            {},
            {},
            {"f:data": {"f:b": {}}},
            id="removed-leaf",
        ),
        pytest.param(
            {"spec": {"containers": None}},
            {"spec": {"containers": [{"name": "nginx", "image": "x"}]}},
            {"f:spec": {"f:containers": {NGINX: {".": {}, "f:image": {}, "f:name": {}}}}},
            {},
            {},
            id="null-list-takes-the-items-form",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "nginx", "args": ["a"]}]}},
            {"spec": {"containers": [{"name": "nginx", "args": ["b"]}]}},
            {},
            {"f:spec": {"f:containers": {NGINX: {"f:args": {}}}}},
            {},
            id="atomic-list-modified-whole",
        ),
    ],
)
def test_compare(
    old: dict[str, Any],
    new: dict[str, Any],
    added: dict[str, Any],
    modified: dict[str, Any],
    removed: dict[str, Any],
) -> None:
    c = typed.compare(old, new, POD)
    assert (fields(c.added), fields(c.modified), fields(c.removed)) == (added, modified, removed)


@pytest.mark.parametrize(
    ("live", "config", "merged"),
    [
        pytest.param(
            {"data": {"a": "1", "b": "2"}},
            {"data": {"a": "x"}},
            {"data": {"a": "x", "b": "2"}},
            id="objects-merge",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "nginx", "image": "1", "args": ["a", "b"]}]}},
            {"spec": {"containers": [{"name": "nginx", "args": ["c"]}]}},
            {"spec": {"containers": [{"name": "nginx", "image": "1", "args": ["c"]}]}},
            id="keyed-items-merge-atomic-lists-replace",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}},
            {"spec": {"containers": [{"name": "c"}, {"name": "a"}]}},
            {"spec": {"containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}},
            id="item-order",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}},
            {"spec": {"containers": [{"name": "c"}, {"name": "a"}]}},
            {"spec": {"containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}]}},
            id="item-order-shared-reordered",
        ),
        pytest.param(
            {"metadata": {"finalizers": ["a"]}},
            {"metadata": {"finalizers": ["b", "a"]}},
            {"metadata": {"finalizers": ["b", "a"]}},
            id="set-union",
        ),
        pytest.param(
            {"spec": {"imagePullSecrets": [{"name": "s", "extra": 1}]}},
            {"spec": {"imagePullSecrets": [{"name": "s"}]}},
            {"spec": {"imagePullSecrets": [{"name": "s"}]}},
            id="atomic-item-replaced",
        ),
    ],
)
def test_merge(live: dict[str, Any], config: dict[str, Any], merged: dict[str, Any]) -> None:
    before = repr(live)
    assert typed.merge(live, config, POD) == merged
    assert repr(live) == before, "the live object was changed"


@pytest.mark.parametrize(
    ("value", "last", "managed", "expected"),
    [
        pytest.param(
            {"data": {"a": "1", "b": "2"}},
            Set.of(("f:data", "f:a"), ("f:data", "f:b")),
            Set.of(("f:data", "f:a")),
            {"data": {"a": "1"}},
            id="dropped-leaf-removed",
        ),
        pytest.param(
            {"data": {"a": "1", "b": "2"}},
            Set.of(("f:data", "f:a"), ("f:data", "f:b")),
            Set.of(("f:data", "f:a"), ("f:data", "f:b")),
            {"data": {"a": "1", "b": "2"}},
            id="owned-by-another-kept",
        ),
        pytest.param(
            {"data": {"a": "1", "b": "2", "c": "3"}},
            Set.of(("f:data", "f:a"), ("f:data", "f:b")),
            Set.of(("f:data", "f:b")),
            {"data": {"b": "2", "c": "3"}},
            id="unowned-sibling-kept",
        ),
        pytest.param(
            {"data": {"a": "1", "c": "3"}, "x": 1},
            Set.of(("f:data", "f:a")),
            Set.of(("f:x",)),
            {"x": 1},
            id="struct-field-nobody-owns-goes-whole",
        ),
        pytest.param(
            {"data": {"a": "1"}},
            Set.of(("f:data", "f:a")),
            Set(),
            {},
            id="emptied-object-goes",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "nginx", "image": "x"}, {"name": "side"}]}},
            Set.of(("f:spec", "f:containers", NGINX), ("f:spec", "f:containers", SIDE)),
            Set.of(
                ("f:spec", "f:containers", SIDE),
                ("f:spec", "f:containers", NGINX, "f:image"),
            ),
            {"spec": {"containers": [{"name": "side"}]}},
            id="item-goes-with-what-others-own-in-it",
        ),
    ],
)
def test_prune(value: dict[str, Any], last: Set, managed: Set, expected: dict[str, Any]) -> None:
    assert typed.prune(value, last, managed, POD) == expected
