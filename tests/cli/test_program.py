"""`program.run`, the one place a command's failure becomes a line and an exit status: a tiny
program whose command raises what it is told to, run in-process."""

from __future__ import annotations

import argparse
import errno
from importlib import metadata

import pytest
import structlog

from kvd import logs
from kvd.cli import kvd, program
from kvd.kube.client import ApiError
from kvd.local.cluster import ClusterError


def _program(error: BaseException | None) -> argparse.ArgumentParser:
    def add(subparsers: program.Subparsers) -> None:
        group = subparsers.add_parser("group").add_subparsers(dest="sub", required=True)
        leaf = group.add_parser("leaf")
        leaf.add_argument("--count", type=int, default=0)

        def run(args: argparse.Namespace) -> int:
            if error is not None:
                raise error
            return 0

        leaf.set_defaults(run=run)

    return program.parser("prog", "a test program", [add])


@pytest.mark.parametrize(
    ("error", "line"),
    [
        pytest.param(
            program.CommandError("the VMI is Pending,\nnot Running"),
            "prog group leaf: the VMI is Pending, not Running",
            id="own-error-on-one-line",
        ),
        pytest.param(
            ClusterError("must run as root (it creates a bridge)"),
            "prog group leaf: must run as root (it creates a bridge)",
            id="cluster",
        ),
        pytest.param(
            ApiError(403, "Forbidden", 'configmaps "x" is forbidden'),
            'prog group leaf: the API server answered 403 Forbidden: configmaps "x" is forbidden',
            id="api-refused",
        ),
        pytest.param(
            ApiError(0, "ConnectionError", "Connection refused"),
            "prog group leaf: cannot reach the API server: Connection refused",
            id="api-unreachable",
        ),
        pytest.param(
            FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/kubeconfig"),
            "prog group leaf: /x/kubeconfig: No such file or directory",
            id="file",
        ),
    ],
)
def test_an_expected_failure_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], error: Exception, line: str
) -> None:
    assert program.run(_program(error), ["group", "leaf"]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"{line}\n"
    assert captured.out == ""


def test_a_bug_is_one_line_with_the_way_to_its_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "is_configured", lambda: False)  # a command, not a daemon
    with structlog.testing.capture_logs() as logged:
        assert program.run(_program(ZeroDivisionError("by zero")), ["group", "leaf"]) == 1
    assert capsys.readouterr().err == (
        "prog group leaf: unexpected error: ZeroDivisionError: by zero "
        "(a bug; run it again with --debug to see the traceback)\n"
    )
    assert logged == []


def test_a_daemons_bug_puts_its_traceback_in_the_log(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "is_configured", lambda: True)  # stderr is its log (not a TTY)
    with structlog.testing.capture_logs() as logged:
        assert program.run(_program(ZeroDivisionError("by zero")), ["group", "leaf"]) == 1
    assert capsys.readouterr().err == (
        "prog group leaf: unexpected error: ZeroDivisionError: by zero "
        "(a bug; its traceback is in the log above)\n"
    )
    [entry] = logged
    assert entry["event"] == "command_crashed" and entry["exc_info"] is True


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--debug", "group", "leaf"], id="before"),
        pytest.param(["group", "leaf", "--debug"], id="after"),
    ],
)
def test_debug_lets_a_bug_through_wherever_it_is_written(argv: list[str]) -> None:
    with pytest.raises(ZeroDivisionError):
        program.run(_program(ZeroDivisionError("division by zero")), argv)


def test_debug_changes_nothing_for_an_expected_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    error = ClusterError("no local cluster in /x")
    assert program.run(_program(error), ["group", "leaf", "--debug"]) == 1
    assert capsys.readouterr().err == "prog group leaf: no local cluster in /x\n"


def test_interrupted_is_130(capsys: pytest.CaptureFixture[str]) -> None:
    assert program.run(_program(KeyboardInterrupt()), ["group", "leaf"]) == 130
    assert capsys.readouterr().err == "prog group leaf: interrupted\n"


def test_a_usage_error_stays_argparses_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        program.run(_program(None), ["group", "leaf", "--count", "many"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "prog group leaf: error: argument --count: invalid int value: 'many'"
    )


@pytest.mark.parametrize("command", ["controller", "handler", "launcher"])
def test_each_daemon_answers_version_before_its_required_options(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    # a container image whose entry point is `kvd <daemon>` is smoke-run with `--version` alone
    with pytest.raises(SystemExit) as caught:
        kvd.main([command, "--version"])
    assert caught.value.code == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"kvd {command} {metadata.version('kvd')} (Python ")
    assert captured.err == ""
