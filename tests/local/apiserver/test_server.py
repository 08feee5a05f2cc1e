"""Pieces of the server's HTTP side that need no running server."""

from __future__ import annotations

import pytest

from kvd.local.apiserver.server import warning_headers


@pytest.mark.parametrize(
    ("warnings", "headers"),
    [
        pytest.param([], [], id="none"),
        pytest.param(["plain"], ['299 - "plain"'], id="one"),
        pytest.param(["a", "b"], ['299 - "a"', '299 - "b"'], id="one-header-each"),
        pytest.param(["a", "b", "a"], ['299 - "a"', '299 - "b"'], id="duplicates-once"),
        pytest.param(['say "hi"'], ['299 - "say \\"hi\\""'], id="quotes-escaped"),
        pytest.param(["a\\b"], ['299 - "a\\\\b"'], id="backslash-escaped"),
        pytest.param(["naïve"], ['299 - "naïve"'], id="utf8-kept"),
        pytest.param(["two\nlines", "ok"], ['299 - "ok"'], id="control-characters-dropped"),
    ],
)
def test_warning_headers_are_kube_apiservers(warnings: list[str], headers: list[str]) -> None:
    assert warning_headers(warnings) == headers
