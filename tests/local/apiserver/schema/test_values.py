"""JSON values as Go prints them in kube's messages."""

from __future__ import annotations

import pytest

from kvd.local.apiserver.schema import values as schema_values

GO_FLOATS = [(1.0, "1"), (2.5, "2.5"), (-0.5, "-0.5"), (123456.0, "123456"), (1e6, "1e+06")]
GO_FLOATS += [(1.5e-7, "1.5e-07"), (0.0001, "0.0001"), (1e21, "1e+21"), (float("inf"), "+Inf")]


@pytest.mark.parametrize(("value", "printed"), GO_FLOATS, ids=[p for _, p in GO_FLOATS])
def test_numbers_print_as_go_prints_float64(value: float, printed: str) -> None:
    assert schema_values.go_float(value) == printed
