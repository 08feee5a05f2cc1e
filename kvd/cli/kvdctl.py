"""`kvdctl`: the user's CLI for VMs, virtctl's verbs with virtctl's names and flags: `start`,
`stop`, `restart`, `pause`, `unpause`, `console`, `vnc`, `version`. Each talks to the API server
only (the aggregated API `subresources.kubevirt.io`), with the kubeconfig's credentials."""

from __future__ import annotations

import os
import sys

from kvd import logs
from kvd.cli import console, program, verbs, vnc

COMMANDS = (verbs.add_parsers, console.add_parser, vnc.add_parser)


def main(argv: list[str] | None = None) -> int:
    # stdout is the command's answer (`vnc --proxy-only` prints JSON) and a failure is one line
    # on stderr: the modules' logs are for debugging, asked for with KVD_LOG_LEVEL
    logs.configure(level=os.environ.get("KVD_LOG_LEVEL", "critical"), stream=sys.stderr)
    return program.run(program.parser("kvdctl", "Control kvd virtual machines.", COMMANDS), argv)


if __name__ == "__main__":
    sys.exit(main())
