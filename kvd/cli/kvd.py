"""`kvd`: one entry point; each daemon and tool is a subcommand registered only when it works."""

from __future__ import annotations

import sys

from kvd.cli import (
    controller,
    demo,
    handler,
    image,
    importer,
    launcher,
    local,
    program,
    validate,
    version,
)

COMMANDS = (
    controller.add_parser,
    demo.add_parser,
    handler.add_parser,
    image.add_parser,
    importer.add_parser,
    launcher.add_parser,
    local.add_parser,
    validate.add_parser,
    version.add_parser,
)


def main(argv: list[str] | None = None) -> int:
    top = program.parser("kvd", "KubeVirt-compatible VMs, in Python.", COMMANDS)
    return program.run(top, argv)


if __name__ == "__main__":
    sys.exit(main())
