"""`kvd handler`: the node agent that drives the launchers of the VMIs on its node."""

from __future__ import annotations

import argparse
from pathlib import Path

from kvd.cli import program


def add_parser(subparsers: program.Subparsers) -> None:
    parser = subparsers.add_parser(
        "handler",
        help="run the handler of one node (drives its launchers, reports VMI phases)",
        description="Watches the VMIs labelled kubevirt.io/nodeName=NODE, tells their launchers "
        "(at LAUNCHER_DIR/<pod uid>/launcher.sock) to define, start and stop domains, and "
        "writes phase, interfaces and conditions back. Labels the node "
        "kubevirt.io/schedulable=true while it runs.",
    )
    parser.add_argument("--node-name", required=True, help="the node this handler serves")
    parser.add_argument("--kubeconfig", type=Path, default=None, help="default: in-cluster/env")
    parser.add_argument(
        "--launcher-dir",
        type=Path,
        default=Path("/var/run/kvd/launchers"),
        help="where launcher pods put their run dirs, one per pod uid",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("/var/lib/kvd/handler"),
        help="the handler's records (one per VMI it drives)",
    )
    parser.add_argument(
        "--listen",
        default=None,
        help="serve HandlerService (console for the controller) on HOST:PORT, e.g. 0.0.0.0:8186",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="the bearer token HandlerService callers must present (e.g. from a Secret)",
    )
    parser.add_argument(
        "--metrics-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics (port 0: any free port); "
        "default: off",
    )
    program.add_address_file_option(parser)
    parser.add_argument("--heartbeat-seconds", type=float, default=60.0)
    parser.add_argument("--resync-seconds", type=float, default=30.0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kvd.handler import main  # noqa: PLC0415 - loads the client and grpc only for this
    from kvd.handler.agent import HandlerSettings  # noqa: PLC0415

    program.configure_logging()
    code = main.run(
        HandlerSettings(
            node_name=args.node_name,
            kubeconfig=args.kubeconfig,
            launcher_dir=args.launcher_dir.absolute(),
            state_dir=args.state_dir.absolute(),
            heartbeat_seconds=args.heartbeat_seconds,
            resync_seconds=args.resync_seconds,
        ),
        listen=args.listen,
        token_file=args.token_file,
        metrics_listen=args.metrics_listen,
        address_path=args.address_file.absolute() if args.address_file else None,
    )
    return program.exit_daemon(code)
