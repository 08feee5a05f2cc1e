"""`kvd`: one entry point; each daemon and tool is a subcommand registered only when it works."""

from __future__ import annotations

import argparse
import sys

from kvd.cli import launcher, validate, version


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kvd", description="KubeVirt-compatible VMs, in Python.")
    parser.set_defaults(prog_name="kvd")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    launcher.add_parser(subparsers)
    validate.add_parser(subparsers)
    version.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
