"""`version`: which kvd this is, for bug reports and for the handler↔launcher handshake."""

from __future__ import annotations

import argparse
import platform

from kvd.cli import program
from kvd.version import kvd_version


def add_parser(subparsers: program.Subparsers) -> None:
    parser = subparsers.add_parser("version", help="print the kvd version")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(f"{args.prog_name} {kvd_version()} (Python {platform.python_version()})")
    return 0
