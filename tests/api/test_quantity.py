from __future__ import annotations

from decimal import Decimal

import pytest

from kvd.api.quantity import Quantity, QuantityError


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("128Mi", 128 * 2**20, id="Mi"),
        pytest.param("1024M", 1024 * 10**6, id="M"),
        pytest.param("1Gi", 2**30, id="Gi"),
        pytest.param("0.5Gi", 2**29, id="half-Gi"),
        pytest.param("500m", Decimal("0.5"), id="millicores"),
        pytest.param("2", 2, id="plain"),
        pytest.param(".5", Decimal("0.5"), id="leading-dot"),
        pytest.param("1e3", 1000, id="exponent"),
        pytest.param("1E-3", Decimal("0.001"), id="negative-exponent"),
        pytest.param("12k", 12000, id="k"),
        pytest.param("+4Ki", 4096, id="plus"),
        pytest.param(128, 128, id="integer"),
        pytest.param(0.5, Decimal("0.5"), id="float"),
    ],
)
def test_parse(text: str | int | float, value: int | Decimal) -> None:
    q = Quantity.parse(text)
    assert q.value == value
    assert q.text == str(text)


@pytest.mark.parametrize(
    "text",
    ["", "Mi", "1 Gi", "1GB", "1gi", "1.2.3", "--1", " 1", "1Ki ", "1e", "0x10", True],
)
def test_rejects(text: str | bool) -> None:
    with pytest.raises(QuantityError):
        Quantity.parse(text)


def test_bytes_and_millis_round_up() -> None:
    assert Quantity.parse("0.5Gi").bytes() == 2**29
    assert Quantity.parse("1.5").bytes() == 2
    assert Quantity.parse("500m").millis() == 500
    assert Quantity.parse("1").millis() == 1000


@pytest.mark.parametrize(
    ("count", "text"),
    [(2**27, "128Mi"), (2**30, "1Gi"), (1000, "1000"), (3 * 2**10, "3Ki"), (0, "0")],
)
def test_from_bytes_is_exact_and_short(count: int, text: str) -> None:
    q = Quantity.from_bytes(count)
    assert (q.text, q.value) == (text, count)
    assert Quantity.parse(q.text) == q


def test_equality_is_by_value() -> None:
    assert Quantity.parse("1Gi") == Quantity.parse("1024Mi")
    assert Quantity.parse("1G") < Quantity.parse("1Gi")
