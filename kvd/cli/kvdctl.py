"""`kvdctl`: the user's CLI for VMs: `console` (start, stop, … arrive with the VM controller)."""

from __future__ import annotations

import sys

from kvd.cli import console, program, version

COMMANDS = (console.add_parser, version.add_parser)


def main(argv: list[str] | None = None) -> int:
    return program.run(program.parser("kvdctl", "Control kvd virtual machines.", COMMANDS), argv)


if __name__ == "__main__":
    sys.exit(main())
