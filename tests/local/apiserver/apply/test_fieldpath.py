"""Field path sets and their FieldsV1 form."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.local.apiserver.apply import fieldpath
from kvd.local.apiserver.apply.fieldpath import Set

CONTAINER = fieldpath.key({"name": "nginx"})


@pytest.mark.parametrize(
    ("paths", "fields"),
    [
        pytest.param([("f:a",)], {"f:a": {}}, id="leaf"),
        pytest.param(
            [("f:data",), ("f:data", "f:x")],
            {"f:data": {".": {}, "f:x": {}}},
            id="member-with-children",
        ),
        pytest.param(
            [("f:metadata", "f:labels", "f:app")],
            {"f:metadata": {"f:labels": {"f:app": {}}}},
            id="not-a-member",
        ),
        pytest.param(
            [
                ("f:spec", "f:containers", CONTAINER),
                ("f:spec", "f:containers", CONTAINER, "f:image"),
            ],
            {"f:spec": {"f:containers": {'k:{"name":"nginx"}': {".": {}, "f:image": {}}}}},
            id="keyed-item",
        ),
        pytest.param(
            [("f:metadata", "f:finalizers", fieldpath.value("a/b"))],
            {"f:metadata": {"f:finalizers": {'v:"a/b"': {}}}},
            id="set-item",
        ),
    ],
)
def test_fields_round_trip(paths: list[tuple[str, ...]], fields: dict[str, Any]) -> None:
    s = Set.of(*paths)
    assert s.to_fields() == fields
    assert Set.from_fields(fields) == s
    assert sorted(Set.from_fields(fields).paths()) == sorted(paths)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        pytest.param({"name": "x"}, 'k:{"name":"x"}', id="one"),
        pytest.param(
            {"protocol": "TCP", "containerPort": 80},
            'k:{"containerPort":80,"protocol":"TCP"}',
            id="sorted-compact",
        ),
        pytest.param({"name": "<&>"}, 'k:{"name":"\\u003c\\u0026\\u003e"}', id="go-html-escapes"),
    ],
)
def test_key_elements_are_go_json(keys: dict[str, Any], expected: str) -> None:
    assert fieldpath.key(keys) == expected


@pytest.mark.parametrize(
    ("path", "printed"),
    [
        pytest.param(("f:spec", "f:replicas"), ".spec.replicas", id="fields"),
        pytest.param(
            ("f:spec", "f:containers", CONTAINER, "f:image"),
            '.spec.containers[name="nginx"].image',
            id="key",
        ),
        pytest.param(
            ("f:spec", "f:ports", fieldpath.key({"port": 80, "protocol": "TCP"})),
            '.spec.ports[port=80,protocol="TCP"]',
            id="two-keys",
        ),
        pytest.param(
            ("f:metadata", "f:finalizers", 'v:"a"'), '.metadata.finalizers[="a"]', id="value"
        ),
        pytest.param(("f:items", "i:3"), ".items[3]", id="index"),
    ],
)
def test_path_string_as_kube_prints_conflicts(path: tuple[str, ...], printed: str) -> None:
    assert fieldpath.path_string(path) == printed


def test_set_algebra() -> None:
    a = Set.of(("f:a",), ("f:b", "f:c"), ("f:b", "f:d"))
    b = Set.of(("f:b",), ("f:b", "f:c"))
    assert sorted(a.union(b).paths()) == [("f:a",), ("f:b",), ("f:b", "f:c"), ("f:b", "f:d")]
    assert sorted(a.difference(b).paths()) == [("f:a",), ("f:b", "f:d")]
    assert sorted(a.intersection(b).paths()) == [("f:b", "f:c")]
    # a member takes everything below it away in a recursive difference only
    assert sorted(a.recursive_difference(Set.of(("f:b",))).paths()) == [("f:a",)]
    assert a.has(("f:b", "f:c")) and not a.has(("f:b",))


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param([], id="not-an-object"),
        pytest.param({"x:a": {}}, id="unknown-element"),
        pytest.param({"name": {}}, id="no-colon"),
        pytest.param({"k:[1]": {}}, id="key-not-object"),
        pytest.param({"f:a": []}, id="child-not-object"),
    ],
)
def test_bogus_fields_are_refused(fields: Any) -> None:
    with pytest.raises(ValueError):
        Set.from_fields(fields)
