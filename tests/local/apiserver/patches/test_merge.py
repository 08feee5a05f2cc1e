"""JSON merge patch (RFC 7386)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given

from kvd.local.apiserver import patches
from tests.local.apiserver.patches.strategies import JSON, OBJECTS


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


@given(OBJECTS)
def test_merge_patch_with_empty_object_is_identity(target: dict[str, Any]) -> None:
    assert patches.merge_patch(target, {}) == target


@given(JSON, JSON)
def test_merge_patch_is_idempotent(target: Any, merge: Any) -> None:
    once = patches.merge_patch(target, merge)
    assert patches.merge_patch(once, merge) == once
