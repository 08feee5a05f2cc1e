"""Label selectors: apimachinery's grammar, semantics and error messages."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvd.local.apiserver import selectors
from kvd.local.apiserver.selectors import Operator, SelectorError

NAME_RULE = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
LABELS = {"app": "web", "tier": "front", "example.com/owner": "ops", "empty": "", "replicas": "3"}


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        pytest.param("", LABELS, True, id="empty-selects-everything"),
        pytest.param("app=web", LABELS, True, id="equals"),
        pytest.param("app=db", LABELS, False, id="equals-other-value"),
        pytest.param("app==web", LABELS, True, id="double-equals"),
        pytest.param("app!=db", LABELS, True, id="not-equals"),
        pytest.param("app!=web", LABELS, False, id="not-equals-same-value"),
        pytest.param("zone!=a", LABELS, True, id="not-equals-missing-key-matches"),
        pytest.param("app in (web,db)", LABELS, True, id="in"),
        pytest.param("app in (db)", LABELS, False, id="in-other"),
        pytest.param("zone in (a,b)", LABELS, False, id="in-missing-key"),
        pytest.param("app notin (db,cache)", LABELS, True, id="notin"),
        pytest.param("app notin (web)", LABELS, False, id="notin-member"),
        pytest.param("zone notin (a)", LABELS, True, id="notin-missing-key-matches"),
        pytest.param("app", LABELS, True, id="exists"),
        pytest.param("zone", LABELS, False, id="exists-missing"),
        pytest.param("!zone", LABELS, True, id="does-not-exist"),
        pytest.param("!app", LABELS, False, id="does-not-exist-present"),
        pytest.param("replicas>2", LABELS, True, id="greater-than"),
        pytest.param("replicas<3", LABELS, False, id="less-than"),
        pytest.param("app>2", LABELS, False, id="greater-than-non-integer-label"),
        pytest.param("app=web,tier=front", LABELS, True, id="and"),
        pytest.param("app=web,tier=back", LABELS, False, id="and-one-fails"),
        pytest.param("  app = web ,  tier in ( front , back )  ", LABELS, True, id="whitespace"),
        pytest.param("example.com/owner=ops", LABELS, True, id="prefixed-key"),
        pytest.param("empty=", LABELS, True, id="empty-value"),
        pytest.param("empty in ()", LABELS, True, id="empty-set-holds-empty-string"),
        pytest.param("empty in (,x)", LABELS, True, id="leading-comma-is-empty-string"),
        pytest.param("app in (in,notin)", {"app": "notin"}, True, id="keywords-as-values"),
        pytest.param("in=notin", {"in": "notin"}, True, id="keywords-as-key-and-value"),
        pytest.param("app", {}, False, id="no-labels"),
    ],
)
def test_label_selector_matches(text: str, labels: Mapping[str, str], expected: bool) -> None:
    assert selectors.parse_label_selector(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
            id="missing-operator",
        ),
        pytest.param(
            "a@b",
            f'unable to parse requirement: <nil>: Invalid value: "a@b": name part {NAME_RULE}',
            id="bad-key",
        ),
        pytest.param(
            "a/b/c",
            'unable to parse requirement: <nil>: Invalid value: "a/b/c": a valid label key '
            f"{NAME_RULE} with an optional DNS subdomain prefix and '/' "
            "(e.g. 'example.com/MyName')",
            id="two-slashes",
        ),
        pytest.param(
            "/a",
            'unable to parse requirement: <nil>: Invalid value: "/a": '
            "prefix part must be non-empty",
            id="empty-prefix",
        ),
        pytest.param(
            "x" * 64,
            f'unable to parse requirement: <nil>: Invalid value: "{"x" * 64}": '
            "name part must be no more than 63 characters",
            id="key-too-long",
        ),
        pytest.param(
            "a=b@",
            f'unable to parse requirement: values[0][a]: Invalid value: "b@": {VALUE_RULE}',
            id="bad-value",
        ),
        pytest.param(
            "a in (y@,x@)",
            f'unable to parse requirement: [values[0][a]: Invalid value: "x@": {VALUE_RULE}, '
            f'values[1][a]: Invalid value: "y@": {VALUE_RULE}]',
            id="several-bad-values-sorted",
        ),
        pytest.param(
            "a>x",
            'unable to parse requirement: values[0]: Invalid value: "x": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
            id="gt-not-integer",
        ),
        pytest.param("!a=b", "found '=', expected: ',' or 'end of string'", id="not-with-value"),
        pytest.param("a=b,", "found '', expected: identifier after ','", id="trailing-comma"),
        pytest.param(
            ",a", "found ',', expected: !, identifier, or 'end of string'", id="lead-comma"
        ),
        pytest.param(
            "a in (b", "unable to parse requirement: found '', expected: ',' or ')'", id="open"
        ),
        pytest.param(
            "a in b", "unable to parse requirement: found 'b' expected: '('", id="no-paren"
        ),
        pytest.param(
            "a in (=)",
            "unable to parse requirement: found '=', expected: ',', ')' or identifier",
            id="operator-in-set",
        ),
        pytest.param(
            "a=(", "unable to parse requirement: found '(', expected: identifier", id="eq"
        ),
        pytest.param(
            "!!a", "unable to parse requirement: found '!', expected: identifier", id="!!"
        ),
    ],
)
def test_label_selector_errors_read_as_apimachinery(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as raised:
        selectors.parse_label_selector(text)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        pytest.param("b=1,a in (z,y),!c", "a in (y,z),b=1,!c", id="sorted-by-key"),
        pytest.param("a==1, b != 2 ,c", "a==1,b!=2,c", id="operators-kept"),
        pytest.param("x in (foo,,baz)", "x in (,baz,foo)", id="empty-value-in-set"),
        pytest.param("n>5,m<10", "m<10,n>5", id="gt-lt"),
    ],
)
def test_label_selector_string_is_canonical(text: str, canonical: str) -> None:
    assert str(selectors.parse_label_selector(text)) == canonical


def test_requirements_are_exposed_sorted_by_key() -> None:
    selector = selectors.parse_label_selector("b in (2,1), a")
    assert selector.requirements == (
        selectors.Requirement("a", Operator.EXISTS),
        selectors.Requirement("b", Operator.IN, ("1", "2")),
    )


@pytest.mark.parametrize(
    ("obj", "labels", "expected"),
    [
        pytest.param(None, {"a": "1"}, False, id="nil-selects-nothing"),
        pytest.param({}, {"a": "1"}, True, id="empty-selects-everything"),
        pytest.param({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True, id="match-labels"),
        pytest.param({"matchLabels": {"a": "1"}}, {"a": "2"}, False, id="match-labels-differ"),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]},
            {"a": "2"},
            True,
            id="in",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]},
            {},
            True,
            id="notin-missing",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True, id="exists"
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]},
            {"a": ""},
            False,
            id="does-not-exist",
        ),
        pytest.param(
            {"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]},
            {"a": "1"},
            False,
            id="labels-and-expressions",
        ),
    ],
)
def test_label_selector_object(obj: Any, labels: Mapping[str, str], expected: bool) -> None:
    assert selectors.from_label_selector_object(obj).matches(labels) is expected


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
            '"Gt" is not a valid label selector operator',
            id="bad-operator",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, "
            "values set can't be empty",
            id="in-without-values",
        ),
        pytest.param(
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            'values: Invalid value: []string{"x"}: values set must be empty for exists and '
            "does not exist",
            id="exists-with-values",
        ),
        pytest.param(
            {"matchLabels": {"a b": "1"}},
            f'key: Invalid value: "a b": name part {NAME_RULE}',
            id="bad-key",
        ),
    ],
)
def test_label_selector_object_errors(obj: Any, message: str) -> None:
    with pytest.raises(SelectorError) as raised:
        selectors.from_label_selector_object(obj)
    assert str(raised.value) == message


def test_label_errors_for_metadata_validation() -> None:
    assert selectors.label_key_errors("example.com/app") == []
    assert selectors.label_key_errors("Example.com/app") == [
        "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
        "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
        "'example.com', regex used for validation is "
        r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    ]
    assert selectors.label_value_errors("") == []
    assert selectors.label_value_errors("-x") == [VALUE_RULE]


# --- properties ------------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "app", "x.io/c"])
VALUES = st.sampled_from(["", "1", "2", "web", "in"])
SPACE = st.sampled_from(["", " ", "  "])


@st.composite
def requirements(draw: st.DrawFn) -> tuple[str, str, list[str]]:
    op = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!", ">", "<"]))
    if op in (">", "<"):
        values = [draw(st.sampled_from(["0", "1", "2", "10"]))]
    elif op in ("in", "notin"):
        # unique: apimachinery refuses two empty values in a row before ")", as in "(,,)"
        values = draw(st.lists(VALUES, min_size=1, max_size=3, unique=True))
    elif op in ("exists", "!"):
        values = []
    else:
        values = [draw(VALUES)]
    return draw(KEYS), op, values


def render(requirement: tuple[str, str, list[str]], space: str) -> str:
    key, op, values = requirement
    if op == "exists":
        return key
    if op == "!":
        return f"!{space}{key}"
    if op in ("in", "notin"):
        return f"{key} {op}{space}({space}{(space + ',' + space).join(values)}{space})"
    return f"{key}{space}{op}{space}{values[0]}"


def reference(requirement: tuple[str, str, list[str]], labels: Mapping[str, str]) -> bool:
    """The meaning of each requirement, spelled out independently of the parser."""
    key, op, values = requirement
    if op == "exists":
        return key in labels
    if op == "!":
        return key not in labels
    if op in ("=", "==", "in"):
        return key in labels and labels[key] in values
    if op in ("!=", "notin"):
        return key not in labels or labels[key] not in values
    if key not in labels or not labels[key].lstrip("-").isdigit():
        return False
    have, want = int(labels[key]), int(values[0])
    return have > want if op == ">" else have < want


@given(
    st.lists(requirements(), max_size=4),
    st.dictionaries(KEYS, st.sampled_from(["", "1", "2", "web", "in", "-1", "x"]), max_size=4),
    SPACE,
)
def test_label_selector_agrees_with_reference(
    reqs: list[tuple[str, str, list[str]]], labels: dict[str, str], space: str
) -> None:
    text = f"{space},{space}".join(render(r, space) for r in reqs)
    parsed = selectors.parse_label_selector(text)
    assert parsed.matches(labels) is all(reference(r, labels) for r in reqs)
    # The canonical form parses back to a selector that selects the same objects.
    assert selectors.parse_label_selector(str(parsed)).matches(labels) is parsed.matches(labels)


@given(st.text(max_size=40))
def test_label_parser_raises_only_selector_errors(text: str) -> None:
    with contextlib.suppress(SelectorError):
        selectors.parse_label_selector(text)
