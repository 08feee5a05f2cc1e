"""JSON patch (RFC 6902): operations, pointers, errors and limits."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvd.local.apiserver import patches
from kvd.local.apiserver.patches import PatchError
from tests.local.apiserver.patches.strategies import JSON


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
