"""What `kvd` and `kvdctl` share: a parser made of subcommands, and running the chosen one.

Every failure of a command ends the same way, here: one line on stderr, `PROG COMMAND: what went
wrong`, and exit status 1 (2 for usage errors, which argparse reports itself; 130 when
interrupted). kvd's own error types carry a message written for the person at the terminal
(`describe` lists them), and so do the environment's (a file that cannot be read, a gRPC status).
Anything else is a bug: the line says so and where the traceback is — in the log, for a daemon
writing one, or else by running the command again with `--debug`, which lets the exception
through. Commands raise; they print their own failures only to add context a generic
line cannot know.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeAlias

from kvd import logs, settings, version

if TYPE_CHECKING:  # subscriptable only for the type checker
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction

FAILED = 1
INTERRUPTED = 130
# kvd's error types whose message is the whole story, by module: a command loads its modules
# lazily (`kvd --help` loads neither the cluster client nor grpc), and an exception can only be
# an instance of a class whose module is loaded, so they are looked up, never imported, here.
OWN_ERRORS = (
    ("kvd.local.cluster", "ClusterError"),
    ("kvd.kube.client", "ConfigError"),
    ("kvd.rpc_auth", "TokenError"),
    ("kvd.address_file", "AddressFileError"),
    ("kvd.local.images", "ImageError"),
    ("kvd.local.images", "ImageNotFound"),
)


class CommandError(Exception):
    """A command cannot go on; the message says why, for the person who ran it."""


def parser(
    prog: str, description: str, commands: Sequence[Callable[[Subparsers], None]]
) -> argparse.ArgumentParser:
    """A parser whose subcommands are registered by `commands` (each module's `add_parser`)."""
    top = argparse.ArgumentParser(prog=prog, description=description)
    top.set_defaults(prog_name=prog, debug=False)
    subparsers = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in commands:
        add(subparsers)
    for each in _parsers(top):
        # on every (sub)command, so that it works wherever it is written on the command line
        each.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="on an unexpected error, show the traceback",
        )
        # on every (sub)command too, so that `kvd controller --version` is each daemon's own
        # answer (a container image whose entry point is the daemon is asked exactly that)
        each.add_argument(
            "--version",
            action="version",
            version=f"{each.prog} {version.kvd_version()} (Python {platform.python_version()})",
            help="print the kvd version and exit",
        )
        each.set_defaults(command_name=each.prog)  # the innermost one chosen wins
    return top


def add_address_file_option(parser: argparse.ArgumentParser) -> None:
    """`--address-file`, for a daemon that tells tools on its host where it listens."""
    parser.add_argument(
        "--address-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="once listening, write where (JSON: pid and HOST:PORT per listener) to FILE, for "
        "tools on this host; removed on a clean stop",
    )


def run(top: argparse.ArgumentParser, argv: list[str] | None) -> int:
    args = top.parse_args(argv)
    name: str = args.command_name
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return fail(name, "interrupted", code=INTERRUPTED)
    except Exception as exc:
        message = describe(exc)
        if message is not None:
            return fail(name, message)
        if args.debug:
            raise
        if logs.is_configured() and not sys.stderr.isatty():  # a daemon's log file
            logs.get_logger(__name__).error("command_crashed", exc_info=True)
            hint = "its traceback is in the log above"
        else:
            hint = "run it again with --debug to see the traceback"
        return fail(name, f"unexpected error: {type(exc).__name__}: {exc} (a bug; {hint})")
    return code


def fail(name: str, message: str, *, code: int = FAILED) -> int:
    """Say on one line that command `name` failed, and why; returns the exit status."""
    line = " ".join(message.split())  # one line, whatever the message holds
    print(f"{name}: {line}", file=sys.stderr, flush=True)
    return code


def describe(exc: BaseException) -> str | None:
    """The line for an error kvd expects; None for one it does not (a bug)."""
    if isinstance(exc, CommandError) or _is_loaded(exc, OWN_ERRORS):
        return str(exc)
    if _is_loaded(exc, (("kvd.kube.client", "ApiError"),)):
        status, reason = getattr(exc, "status", 0), getattr(exc, "reason", "")
        if not status:
            return f"cannot reach the API server: {exc}"
        return f"the API server answered {status} {reason}: {exc}"
    if _is_loaded(exc, (("grpc", "RpcError"),)):
        code, details = getattr(exc, "code", None), getattr(exc, "details", None)
        if callable(code) and callable(details):  # a grpc.Call: every RpcError a stub raises
            return f"{getattr(code(), 'name', 'UNKNOWN')}: {details()}"
        return str(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        hint = " (are you root?)" if isinstance(exc, PermissionError) and os.geteuid() else ""
        return f"{where}{exc.strerror or exc}{hint}"
    return None


def raise_priority() -> str | None:
    """A daemon of the control path outweighs the guests (kvd/priority.py): call first, before
    any thread or child starts. None when done, else why not, for `log_priority`."""
    from kvd import priority  # noqa: PLC0415

    return priority.raise_control()


def log_priority(refused: str | None) -> None:
    """Say, once logging is set up, what `raise_priority` did."""
    from kvd import priority  # noqa: PLC0415

    log = logs.get_logger("kvd.priority")
    if refused is None:  # debug: a daemon's usage error must stay the one line it prints
        log.debug("control_priority_raised", nice=priority.CONTROL_NICE)
    else:  # it keeps the weight of any other process, as the guests do
        log.warning("control_priority_unchanged", error=refused)


def configure_logging() -> None:
    """Daemons log as `KVD_LOG_LEVEL` / `KVD_LOG_JSON` say (settings.LoggingSettings)."""
    chosen = settings.from_env(settings.LoggingSettings, os.environ)
    logs.configure(level=chosen.log_level, json=chosen.log_json)


def exit_daemon(code: int) -> NoReturn:
    """End a daemon now, once its own shutdown is done. Its informers' watch threads are daemon
    threads that may still be logging; letting the interpreter finalize under them can abort
    the process (SIGABRT on the stderr lock) and turn a clean stop into a crash."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _is_loaded(exc: BaseException, types: Sequence[tuple[str, str]]) -> bool:
    for module, name in types:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def _parsers(top: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """`top` and every parser below it, each once (aliases share a parser)."""
    seen: set[int] = set()
    pending = [top]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        # argparse keeps its subcommands only in its (private) actions
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())
