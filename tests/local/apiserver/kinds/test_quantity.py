"""Quantities parse as apimachinery's resource.ParseQuantity parses them."""

from __future__ import annotations

from fractions import Fraction

import pytest

from kvd.local.apiserver.kinds import quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("1", Fraction(1), id="plain"),
        pytest.param("100m", Fraction(1, 10), id="milli"),
        pytest.param("1Gi", Fraction(2**30), id="binary"),
        pytest.param("1.5G", Fraction(1_500_000_000), id="decimal-fraction"),
        pytest.param("1e3", Fraction(1000), id="exponent"),
        pytest.param("2E-2", Fraction(2, 100), id="negative-exponent"),
        pytest.param("-1Mi", Fraction(-(2**20)), id="negative"),
        pytest.param("+.5", Fraction(1, 2), id="leading-dot"),
        pytest.param("5.", Fraction(5), id="trailing-dot"),
    ],
)
def test_quantities_parse(text: str, value: Fraction) -> None:
    assert quantity.parse(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", quantity.FORMAT_WRONG, id="empty"),
        pytest.param("lots", quantity.FORMAT_WRONG, id="word"),
        pytest.param("1 Gi", quantity.FORMAT_WRONG, id="space"),
        pytest.param(".", quantity.FORMAT_WRONG, id="dot-only"),
        pytest.param("1Gb", quantity.FORMAT_WRONG, id="unknown-unit"),
        pytest.param("1KiB", quantity.FORMAT_WRONG, id="bytes-suffix"),
        pytest.param("1mM", quantity.SUFFIX_WRONG, id="two-suffixes"),
        pytest.param("1e", quantity.SUFFIX_WRONG, id="bare-exponent"),
    ],
)
def test_what_does_not_parse_says_why(text: str, message: str) -> None:
    with pytest.raises(quantity.QuantityError) as caught:
        quantity.parse(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        pytest.param(2, Fraction(2), id="int"),
        pytest.param(0.5, Fraction(1, 2), id="float"),
        pytest.param(1e21, Fraction(10**21), id="big-float"),
    ],
)
def test_json_numbers_are_quantities(value: float, parsed: Fraction) -> None:
    assert quantity.parse_json(value) == parsed


@pytest.mark.parametrize("value", [True, None, [], {}], ids=["bool", "null", "list", "object"])
def test_other_json_is_not(value: object) -> None:
    with pytest.raises(quantity.QuantityError):
        quantity.parse_json(value)
