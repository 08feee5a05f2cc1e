"""The one label-requirement matcher, at the edges where kvd's three copies used to disagree.

Expectations follow apimachinery's `labels.Requirement.Matches` and `labels.NewRequirement`.
Before kvd.api.labels, the scheduler treated Gt/Lt as never met and accepted Exists with values;
kvd.api's replica-set check accepted Exists with values and In without; only the API server had
kube's meaning. The callers are checked against these cases in their own tests
(tests/local/node/test_scheduler.py, tests/api/test_load.py, tests/local/apiserver/selectors).
"""

from __future__ import annotations

import pytest

from kvd.api import labels
from kvd.api.labels import InvalidRequirement, Operator, Requirement

LABELS = {"app": "web", "tier": "", "size": "10", "neg": "-3", "word": "ten"}


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        pytest.param(Requirement("app", Operator.IN, ("web", "db")), True, id="in"),
        pytest.param(Requirement("app", Operator.IN, ("db",)), False, id="in-other-value"),
        pytest.param(Requirement("nope", Operator.IN, ("",)), False, id="in-absent-key"),
        pytest.param(Requirement("tier", Operator.IN, ("",)), True, id="in-empty-value-present"),
        pytest.param(Requirement("app", Operator.NOT_IN, ("db",)), True, id="notin"),
        pytest.param(Requirement("app", Operator.NOT_IN, ("web",)), False, id="notin-same-value"),
        pytest.param(Requirement("nope", Operator.NOT_IN, ("x",)), True, id="notin-absent-key"),
        pytest.param(Requirement("app", Operator.EQUALS, ("web",)), True, id="equals"),
        pytest.param(Requirement("nope", Operator.NOT_EQUALS, ("x",)), True, id="!=-absent-key"),
        pytest.param(Requirement("tier", Operator.EXISTS), True, id="exists-empty-value"),
        pytest.param(Requirement("nope", Operator.EXISTS), False, id="exists-absent"),
        pytest.param(Requirement("nope", Operator.DOES_NOT_EXIST), True, id="does-not-exist"),
        pytest.param(Requirement("app", Operator.DOES_NOT_EXIST), False, id="does-exist"),
        pytest.param(Requirement("size", Operator.GREATER_THAN, ("9",)), True, id="gt-numeric"),
        pytest.param(Requirement("size", Operator.LESS_THAN, ("9",)), False, id="lt-not-text"),
        pytest.param(Requirement("neg", Operator.LESS_THAN, ("-2",)), True, id="lt-negative"),
        pytest.param(Requirement("size", Operator.GREATER_THAN, ("10",)), False, id="gt-equal"),
        pytest.param(Requirement("size", Operator.GREATER_THAN, ("+9",)), True, id="gt-plus"),
        pytest.param(Requirement("nope", Operator.GREATER_THAN, ("1",)), False, id="gt-absent"),
        pytest.param(Requirement("nope", Operator.LESS_THAN, ("1",)), False, id="lt-absent"),
        pytest.param(
            Requirement("word", Operator.GREATER_THAN, ("1",)), False, id="gt-label-not-integer"
        ),
        pytest.param(
            Requirement("size", Operator.GREATER_THAN, ("1.5",)), False, id="gt-value-not-integer"
        ),
        pytest.param(
            Requirement("size", Operator.GREATER_THAN, ("1", "2")), False, id="gt-two-values"
        ),
    ],
)
def test_requirement_matches_as_apimachinery(requirement: Requirement, expected: bool) -> None:
    assert requirement.matches(LABELS) is expected


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("10", 10, id="plain"),
        pytest.param("+5", 5, id="plus"),
        pytest.param("-3", -3, id="minus"),
        pytest.param("007", 7, id="leading-zeros"),
        pytest.param("1_000", None, id="underscores"),
        pytest.param(" 5", None, id="space"),
        pytest.param("", None, id="empty"),
        pytest.param("1e3", None, id="exponent"),
        pytest.param(str(2**63 - 1), 2**63 - 1, id="int64-max"),
        pytest.param(str(2**63), None, id="overflow"),
        pytest.param(str(-(2**63)), -(2**63), id="int64-min"),
    ],
)
def test_int64_reads_as_go_parseint(text: str, value: int | None) -> None:
    assert labels.int64(text) == value


@pytest.mark.parametrize(
    ("key", "operator", "values", "operators", "message"),
    [
        pytest.param(
            "a",
            "Exists",
            ["x"],
            labels.SELECTOR_OPERATORS,
            "values set must be empty",
            id="exists-with-values",
        ),
        pytest.param(
            "a",
            "DoesNotExist",
            ["x"],
            labels.SELECTOR_OPERATORS,
            "values set must be empty",
            id="does-not-exist-with-values",
        ),
        pytest.param(
            "a",
            "In",
            [],
            labels.SELECTOR_OPERATORS,
            "values set can't be empty",
            id="in-without-values",
        ),
        pytest.param(
            "a",
            "NotIn",
            None,
            labels.SELECTOR_OPERATORS,
            "values set can't be empty",
            id="notin-without-values",
        ),
        pytest.param(
            "a",
            "Gt",
            ["1"],
            labels.SELECTOR_OPERATORS,
            '"Gt" is not a valid operator',
            id="gt-not-in-a-label-selector",
        ),
        pytest.param(
            "a",
            "Gt",
            ["x"],
            labels.NODE_SELECTOR_OPERATORS,
            "the value must be an integer",
            id="gt-non-integer",
        ),
        pytest.param(
            "a",
            "Lt",
            ["1", "2"],
            labels.NODE_SELECTOR_OPERATORS,
            "exactly one value",
            id="lt-two-values",
        ),
        pytest.param(
            "a",
            "in",
            ["x"],
            labels.SELECTOR_OPERATORS,
            '"in" is not a valid operator',
            id="lowercase-operator",
        ),
    ],
)
def test_requirements_kube_refuses_are_refused(
    key: str,
    operator: str,
    values: list[str] | None,
    operators: dict[str, Operator],
    message: str,
) -> None:
    with pytest.raises(InvalidRequirement, match=message):
        labels.requirement(key, operator, values, operators=operators)


def test_node_selector_operators_build_what_they_say() -> None:
    gt = labels.requirement("size", "Gt", ["9"], operators=labels.NODE_SELECTOR_OPERATORS)
    assert gt == Requirement("size", Operator.GREATER_THAN, ("9",))
    assert gt.matches(LABELS)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param(labels.label_selector({}, []), True, id="empty-selects-everything"),
        pytest.param(labels.NOTHING, False, id="nil-selects-nothing"),
        pytest.param(labels.label_selector({"app": "web"}, []), True, id="match-labels"),
        pytest.param(labels.label_selector({"app": "db"}, []), False, id="match-labels-unmet"),
        pytest.param(
            labels.label_selector({"app": "web"}, [("tier", "Exists", None)]),
            True,
            id="labels-and-expressions",
        ),
        pytest.param(
            labels.label_selector({"app": "web"}, [("nope", "Exists", None)]),
            False,
            id="anded",
        ),
        pytest.param(
            labels.label_selector({}, [("nope", "NotIn", ["x"])]), True, id="notin-absent"
        ),
    ],
)
def test_label_selector(selector: labels.Selector, expected: bool) -> None:
    assert selector.matches(LABELS) is expected


def test_empty_and_nil_selectors_differ_only_in_what_they_select() -> None:
    assert labels.EVERYTHING.empty and not labels.NOTHING.empty
    assert labels.label_selector({}, []) is labels.EVERYTHING
    assert not labels.NOTHING.matches({})


def test_a_selector_is_its_requirements_sorted_by_key() -> None:
    built = labels.label_selector({"b": "1"}, [("a", "In", ["y", "x"])])
    assert [r.key for r in built.requirements] == ["a", "b"]
    assert str(built) == "a in (x,y),b=1"
