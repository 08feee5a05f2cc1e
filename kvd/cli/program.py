"""What `kvd` and `kvdctl` share: a parser made of subcommands, and running the chosen one."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn, TypeAlias

from kvd import logs, settings

if TYPE_CHECKING:  # subscriptable only for the type checker
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction


def parser(
    prog: str, description: str, commands: Sequence[Callable[[Subparsers], None]]
) -> argparse.ArgumentParser:
    """A parser whose subcommands are registered by `commands` (each module's `add_parser`)."""
    top = argparse.ArgumentParser(prog=prog, description=description)
    top.set_defaults(prog_name=prog)
    subparsers = top.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in commands:
        add(subparsers)
    return top


def run(top: argparse.ArgumentParser, argv: list[str] | None) -> int:
    args = top.parse_args(argv)
    code: int = args.run(args)
    return code


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
