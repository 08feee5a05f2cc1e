"""The skip gate, run on small test suites of its own through pytest's `pytester`."""

from __future__ import annotations

import pytest

PLUGIN = ("-p", "tests.support.skipgate")

SUITE = """
import pytest

def test_passes():
    pass

def test_skips():
    pytest.skip("no frobnicator on this machine")

@pytest.mark.xfail(reason="bug 12")
def test_xfails():
    assert False

@pytest.mark.xfail(reason="bug 13")
def test_xpasses():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A suite under tests/ with the allowlist configured, run with CI unset."""
    monkeypatch.delenv("CI", raising=False)
    pytester.makeini("[pytest]\ntestpaths = tests\nskip_allowlist = tests/allowed-skips.toml\n")
    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_a.py").write_text(SUITE)
    allow(pytester)
    return pytester


def allow(pytester: pytest.Pytester, *entries: tuple[str, str]) -> None:
    text = "# allowed\n" + "".join(
        f'[[skip]]\ntest = "{test}"\nreason = "{reason}"\n' for test, reason in entries
    )
    (pytester.path / "tests" / "allowed-skips.toml").write_text(text)


def test_a_skip_fails_a_strict_run_and_names_test_and_reason(suite: pytest.Pytester) -> None:
    result = suite.runpytest(*PLUGIN, "--strict-skips")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*skip gate: FAILED*",
            "*SKIPPED tests/test_a.py::test_skips: no frobnicator on this machine",
            "*XFAILED tests/test_a.py::test_xfails: bug 12",
            "*XPASSED tests/test_a.py::test_xpasses: bug 13 (remove its xfail marker)",
        ]
    )
    result.assert_outcomes(passed=1, skipped=1, xfailed=1, xpassed=1)


def test_ci_true_is_strict_and_a_plain_run_only_reports(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    lenient = suite.runpytest(*PLUGIN)
    assert lenient.ret == pytest.ExitCode.OK
    lenient.stdout.fnmatch_lines(["*skip gate: report only*", "*SKIPPED*test_skips*", "*not fail*"])

    monkeypatch.setenv("CI", "true")
    assert suite.runpytest(*PLUGIN).ret == pytest.ExitCode.TESTS_FAILED


def test_allowlisted_skips_and_xfails_pass(suite: pytest.Pytester) -> None:
    allow(
        suite,
        ("tests/test_a.py::test_skips", "frobnicators are not sold for CI machines"),
        ("tests/test_a.py::test_xf*", "bug 12, upstream"),
    )
    result = suite.runpytest(
        *PLUGIN, "--strict-skips", "--deselect", "tests/test_a.py::test_xpasses"
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*skip gate*")


def test_an_xpass_fails_even_when_allowlisted(suite: pytest.Pytester) -> None:
    allow(suite, ("tests/test_a.py::test_x*", "flaky"), ("tests/test_a.py::test_skips", "none"))
    result = suite.runpytest(*PLUGIN, "--strict-skips")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*XPASSED tests/test_a.py::test_xpasses*"])
    result.stdout.no_fnmatch_line("*SKIPPED tests/*")


def test_stale_entries_are_reported(suite: pytest.Pytester) -> None:
    allow(
        suite,
        ("tests/test_a.py::test_skips", "none"),
        ("tests/test_a.py::test_xfails", "bug 12"),
        ("tests/test_a.py::test_passes", "it used to need a frobnicator"),  # runs: stale
        ("tests/test_gone.py::*", "a module since deleted"),  # matches nothing: stale
    )
    result = suite.runpytest(
        *PLUGIN, "--strict-skips", "--deselect", "tests/test_a.py::test_xpasses"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*Stale entries in allowed-skips.toml*",
            "*STALE tests/test_a.py::test_passes: 1 matching test(s) ran without skipping",
        ]
    )
    # --deselect makes the run partial: an entry matching no test may belong to the rest.
    result.stdout.no_fnmatch_line("*test_gone*")

    whole = suite.runpytest(*PLUGIN, "--strict-skips")
    whole.stdout.fnmatch_lines(["*STALE tests/test_gone.py::*: it matches no test of the suite"])


def test_a_module_skipped_at_collection_is_caught(suite: pytest.Pytester) -> None:
    (suite.path / "tests" / "test_a.py").write_text("def test_passes(): pass\n")
    (suite.path / "tests" / "test_b.py").write_text(
        "import pytest\npytest.importorskip('no_such_module_kvd')\ndef test_x(): pass\n"
    )
    result = suite.runpytest(*PLUGIN, "--strict-skips")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*SKIPPED tests/test_b.py: *no_such_module_kvd*"])


def test_a_failing_run_keeps_its_status(suite: pytest.Pytester) -> None:
    (suite.path / "tests" / "test_c.py").write_text("def test_fails(): assert False\n")
    result = suite.runpytest(*PLUGIN, "--strict-skips")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=1, skipped=1, xfailed=1, xpassed=1)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('[[skip]]\ntest = "tests/test_a.py::test_skips"\n', id="no-reason"),
        pytest.param('[[skip]]\ntest = "x"\nreason = "  "\n', id="blank-reason"),
        pytest.param('[[skip]]\nreason = "why"\n', id="no-test"),
        pytest.param('[skips]\ntest = "x"\n', id="unknown-table"),
        pytest.param("[[skip]\n", id="not-toml"),
    ],
)
def test_a_malformed_allowlist_is_a_usage_error(suite: pytest.Pytester, text: str) -> None:
    (suite.path / "tests" / "allowed-skips.toml").write_text(text)
    result = suite.runpytest(*PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*skip allowlist*allowed-skips.toml*"])


def test_the_repositorys_allowlist_loads(pytestconfig: pytest.Config) -> None:
    from tests.support import skipgate  # noqa: PLC0415 - the module under test, loaded as a plugin

    path = pytestconfig.rootpath / pytestconfig.getini("skip_allowlist")
    assert path.is_file()
    for entry in skipgate.load(path):
        assert entry.reason


def test_collect_only_is_left_alone(suite: pytest.Pytester) -> None:
    allow(suite, ("tests/test_a.py::test_skips", "none"))
    result = suite.runpytest(*PLUGIN, "--strict-skips", "--collect-only")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.no_fnmatch_line("*skip gate*")
