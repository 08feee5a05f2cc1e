"""A pytest plugin: in CI, a skipped test fails the run unless the allowlist says why it may skip.

A skip is how a missing setup step hides: the test that needs `xmllint` or `/run/libvirt` reports
"s" and CI stays green (CONVENTIONS.md: "Nothing is skipped in CI"). So at the end of the session
this plugin compares every test that did not simply pass or fail — skipped, xfailed, xpassed, or a
module skipped at collection — with the allowlist, the TOML file named by the `skip_allowlist`
ini option (tests/allowed-skips.toml):

    [[skip]]
    test = "tests/launcher/test_emulation.py::test_the_probe_*"  # a node id; `*` matches anything
    reason = "why this test may skip on a CI machine"

An entry covers skips and xfails of the tests it matches; an xpass is never covered (remove the
marker). An entry is *stale* when the tests it matches ran and none of them skipped, or, in a run of
the whole suite (no path, -k, -m or deselection), when it matches no test at all.

Strict mode (`--strict-skips`, which `make test` passes, or `CI=true` in the environment, which
.ci/run exports) turns an unexpected skip or a stale entry into a failed session (exit status 1)
with a summary naming each one and its reason. Otherwise (ad-hoc runs, `make unit`) the same
summary is printed and the exit status is left alone.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

STRICT_ENV = "CI"


@dataclass(frozen=True)
class Entry:
    test: str
    reason: str

    def matches(self, nodeid: str) -> bool:
        pattern = ".*".join(re.escape(part) for part in self.test.split("*"))
        return re.fullmatch(pattern, nodeid) is not None


@dataclass(frozen=True)
class Finding:
    nodeid: str
    outcome: str  # "skipped", "xfailed", "xpassed"
    reason: str


def load(path: Path) -> list[Entry]:
    """The allowlist's entries; a malformed file is a usage error, not an empty allowlist."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise pytest.UsageError(f"skip allowlist {path}: {e}") from None
    entries = data.pop("skip", [])
    if data or not isinstance(entries, list):
        raise pytest.UsageError(f"skip allowlist {path}: only [[skip]] tables belong here")
    found = []
    for i, entry in enumerate(entries):
        test, reason = entry.get("test"), entry.get("reason")
        if set(entry) != {"test", "reason"} or not isinstance(test, str) or not test:
            raise pytest.UsageError(f"skip allowlist {path}: entry {i + 1} needs test and reason")
        if not isinstance(reason, str) or not reason.strip():
            raise pytest.UsageError(f"skip allowlist {path}: entry {i + 1} ({test}) has no reason")
        found.append(Entry(test, reason.strip()))
    return found


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("skip_allowlist", "TOML file of the skips CI accepts (tests/support/skipgate.py)")
    parser.addoption(
        "--strict-skips",
        action="store_true",
        help=f"fail the run on a skip not in the skip allowlist (on when {STRICT_ENV}=true)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipGate(config), "kvd-skipgate")


def strict(config: pytest.Config) -> bool:
    env = os.environ.get(STRICT_ENV, "").strip().lower()
    return bool(config.getoption("strict_skips")) or env in {"1", "true", "yes"}


@dataclass(eq=False)  # hashable by identity: pluggy keeps plugins in a dict
class SkipGate:
    config: pytest.Config
    allowlist: Path | None = None
    entries: list[Entry] = field(default_factory=list)
    ran: set[str] = field(default_factory=set)
    findings: dict[str, Finding] = field(default_factory=dict)
    partial: bool = False
    unexpected: list[Finding] = field(default_factory=list)
    stale: list[tuple[Entry, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        name = self.config.getini("skip_allowlist")
        if name:
            self.allowlist = self.config.rootpath / name
            self.entries = load(self.allowlist)
        option = self.config.option
        narrowed = self.config.args_source != pytest.Config.ArgsSource.TESTPATHS
        self.partial = narrowed or bool(
            getattr(option, "keyword", "")
            or getattr(option, "markexpr", "")
            or getattr(option, "deselect", None)
            or getattr(option, "lf", False)
        )

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        if items:
            self.partial = True

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.skipped:  # a module skipped as a whole (allow_module_level, importorskip)
            self.ran.add(report.nodeid)
            self.findings[report.nodeid] = Finding(report.nodeid, "skipped", _reason(report))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.ran.add(report.nodeid)
        xfail = getattr(report, "wasxfail", None)
        if report.skipped:
            outcome, reason = ("xfailed", xfail) if xfail is not None else ("skipped", None)
            self.findings[report.nodeid] = Finding(
                report.nodeid, outcome, reason or _reason(report)
            )
        elif report.passed and xfail is not None and report.when == "call":
            self.findings[report.nodeid] = Finding(report.nodeid, "xpassed", xfail or "")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR):
            return
        if self.config.option.collectonly:  # nothing ran, so nothing skipped or went stale
            return
        complete = not (self.partial or session.shouldstop or session.shouldfail)
        self.unexpected = [
            f
            for f in self.findings.values()
            if f.outcome == "xpassed" or not any(e.matches(f.nodeid) for e in self.entries)
        ]
        for entry in self.entries:
            matched = [n for n in self.ran if entry.matches(n)]
            if any(n in self.findings for n in matched):
                continue
            if matched:
                self.stale.append((entry, f"{len(matched)} matching test(s) ran without skipping"))
            elif complete:
                self.stale.append((entry, "it matches no test of the suite"))
        if (self.unexpected or self.stale) and strict(self.config) and exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not (self.unexpected or self.stale):
            return
        where = self.allowlist.name if self.allowlist else "the skip allowlist (none configured)"
        on = strict(self.config)
        tr = terminalreporter
        tr.write_sep(
            "=", "skip gate: " + ("FAILED" if on else "report only"), red=on, yellow=not on
        )
        if self.unexpected:
            tr.write_line(f"Not in {where}: set up what the test needs, or allowlist it with why.")
            for f in sorted(self.unexpected, key=lambda f: f.nodeid):
                hint = " (remove its xfail marker)" if f.outcome == "xpassed" else ""
                tr.write_line(f"  {f.outcome.upper()} {f.nodeid}: {f.reason}{hint}")
        if self.stale:
            tr.write_line(f"Stale entries in {where}: remove them.")
            for entry, why in self.stale:
                tr.write_line(f"  STALE {entry.test}: {why}")
        if not on:
            tr.write_line(f"(not failing the run: --strict-skips or {STRICT_ENV}=true does)")


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)
