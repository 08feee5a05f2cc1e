"""Field selectors: apimachinery's splitting, escaping, semantics and error messages."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvd.local.apiserver import selectors
from kvd.local.apiserver.selectors import Operator, SelectorError

OBJECT_FIELDS = {"metadata.name": "web-1", "spec.nodeName": "node-a", "status.phase": "Running"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", True, id="empty"),
        pytest.param("metadata.name=web-1", True, id="equals"),
        pytest.param("metadata.name==web-1", True, id="double-equals"),
        pytest.param("metadata.name!=web-1", False, id="not-equals"),
        pytest.param("status.phase!=Pending,spec.nodeName=node-a", True, id="and"),
        pytest.param("status.phase=Running,spec.nodeName=node-b", False, id="and-one-fails"),
        pytest.param("spec.missing=", True, id="missing-field-reads-empty"),
        pytest.param("spec.missing!=x", True, id="missing-field-not-equals"),
        pytest.param("metadata.name=web-1,", True, id="empty-term-ignored"),
    ],
)
def test_field_selector_matches(text: str, expected: bool) -> None:
    assert selectors.parse_field_selector(text).matches(OBJECT_FIELDS.get) is expected


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        pytest.param(r"a=x\,y", "a", "x,y", id="escaped-comma"),
        pytest.param(r"a=x\=y", "a", "x=y", id="escaped-equals"),
        pytest.param(r"a=x\\y", "a", "x\\y", id="escaped-backslash"),
        pytest.param("a=", "a", "", id="empty-value"),
        pytest.param(" a = b", " a ", " b", id="no-whitespace-trimming"),
        pytest.param(r"a==b\=", "a", "b=", id="double-equals-then-escaped-equals"),
    ],
)
def test_field_selector_values(text: str, field: str, value: str) -> None:
    selector = selectors.parse_field_selector(text)
    assert selector.terms == (selectors.FieldTerm(field, Operator.EQUALS, value),)
    assert selector.fields == {field}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("a", "invalid selector: 'a'; can't understand 'a'", id="no-operator"),
        pytest.param(
            "b=1,a", "invalid selector: 'b=1,a'; can't understand 'a'", id="names-whole-selector"
        ),
        pytest.param("a=b=c", "invalid field selector: unescaped character in value: 61", id="="),
        pytest.param("a!==b", "invalid field selector: unescaped character in value: 61", id="!=="),
        pytest.param(r"a=\x", r"invalid field selector: invalid escape sequence: \x", id="escape"),
        pytest.param("a=x\\", "invalid field selector: invalid escape sequence: \\", id="trailing"),
    ],
)
def test_field_selector_errors_read_as_apimachinery(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as raised:
        selectors.parse_field_selector(text)
    assert str(raised.value) == message


def test_field_selector_names_fields_and_exact_matches() -> None:
    selector = selectors.parse_field_selector("spec.nodeName=n1,status.phase!=Failed,spec.foo=x")
    assert selector.fields == {"spec.nodeName", "status.phase", "spec.foo"}
    assert selector.requires_exact_match("spec.nodeName") == "n1"
    assert selector.requires_exact_match("status.phase") is None
    assert str(selector) == "spec.foo=x,spec.nodeName=n1,status.phase!=Failed"


# --- properties ------------------------------------------------------------------------------


@given(st.text(), st.text(alphabet=st.characters(blacklist_characters="=!,\\")))
def test_field_values_round_trip_through_escaping(value: str, field: str) -> None:
    selector = selectors.parse_field_selector(f"{field}={selectors.escape_field_value(value)}")
    assert selector.matches({field: value}.get)
    assert selector.requires_exact_match(field) == value


@given(st.text(max_size=40))
def test_field_parser_raises_only_selector_errors(text: str) -> None:
    with contextlib.suppress(SelectorError):
        selectors.parse_field_selector(text)
