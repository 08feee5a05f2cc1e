"""`kvdctl`: the user's CLI for VMs (console, start, stop, … arrive with the controller)."""

from __future__ import annotations

import sys

from kvd.cli import program, version

COMMANDS = (version.add_parser,)


def main(argv: list[str] | None = None) -> int:
    return program.run(program.parser("kvdctl", "Control kvd virtual machines.", COMMANDS), argv)


if __name__ == "__main__":
    sys.exit(main())
