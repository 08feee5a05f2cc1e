"""Table cells from JSONPath results, as kube-apiserver's CRD table converter makes them."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.local.apiserver import jsonpath


@pytest.mark.parametrize(
    ("values", "column_type", "cell"),
    [
        pytest.param([], "string", None, id="nothing-is-none"),
        pytest.param(["Running"], "string", "Running", id="string"),
        pytest.param(["a", "b"], "string", "a", id="first-result-only"),
        pytest.param([2], "string", "2", id="integer-as-string"),
        pytest.param([1.5], "string", "1.5", id="float-as-string"),
        pytest.param([2.0], "string", "2", id="whole-float-as-go-prints-it"),
        pytest.param([1e6], "string", "1e+06", id="large-float-as-go-prints-it"),
        pytest.param([True], "string", "true", id="boolean-as-string"),
        pytest.param([None], "string", "<no value>", id="null-as-string"),
        pytest.param(
            [{"b": [1, 2.5e-7], "a": "<&>"}],
            "string",
            '{"a":"\\u003c\\u0026\\u003e","b":[1,2.5e-7]}',
            id="object-as-go-json",
        ),
        pytest.param([["x", 1]], "string", '["x",1]', id="list-as-json"),
        pytest.param([3], "integer", 3, id="integer"),
        pytest.param([3.9], "integer", 3, id="integer-truncates-float"),
        pytest.param(["3"], "integer", None, id="integer-from-string"),
        pytest.param([True], "integer", None, id="integer-from-boolean"),
        pytest.param([3], "number", 3.0, id="number-from-integer"),
        pytest.param([0.25], "number", 0.25, id="number"),
        pytest.param([False], "boolean", False, id="boolean"),
        pytest.param(["true"], "boolean", None, id="boolean-from-string"),
        pytest.param(["2024-05-01T10:00:00Z"], "date", "2024-05-01T10:00:00Z", id="date"),
        pytest.param(
            ["2024-05-01T10:00:00.5+02:00"], "date", "2024-05-01T10:00:00.5+02:00", id="d"
        ),
        pytest.param(["yesterday"], "date", "<invalid>", id="date-invalid"),
        pytest.param(["2024-02-30T10:00:00Z"], "date", "<invalid>", id="date-out-of-range"),
        pytest.param([""], "date", "<unknown>", id="date-empty"),
        pytest.param([5], "date", None, id="date-not-a-string"),
        pytest.param([None], "integer", None, id="null"),
        pytest.param(["x"], "uuid", None, id="unknown-type"),
    ],
)
def test_format_cell(values: list[Any], column_type: str, cell: Any) -> None:
    result = jsonpath.format_cell(values, column_type)
    assert result == cell
    assert type(result) is type(cell)
