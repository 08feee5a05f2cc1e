"""`kvdctl`: the user's CLI for VMs (console, start, stop, … arrive with the controller)."""

from __future__ import annotations

import argparse
import sys

from kvd.cli import version


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kvdctl", description="Control kvd virtual machines.")
    parser.set_defaults(prog_name="kvdctl")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    version.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
