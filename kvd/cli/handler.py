"""`kvd handler`: the node agent that drives the launchers of the VMIs on its node."""

from __future__ import annotations

import argparse
from pathlib import Path

from kvd.cli import program

# the controller's ServiceAccount in kvd's default namespace (kvd.api.rbac names it)
DEFAULT_CALLER = "system:serviceaccount:kvd:kvd-controller"


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
        metavar="HOST:PORT",
        help="serve HandlerService (the controller's node API: console, pause) over TLS on "
        "HOST:PORT, e.g. 0.0.0.0:8186; needs --tls-cert-file and --tls-key-file",
    )
    parser.add_argument(
        "--tls-cert-file",
        type=Path,
        default=None,
        help="HandlerService's certificate (PEM, signed by the CA the controller trusts, naming "
        "the advertised address); read again when it changes",
    )
    parser.add_argument("--tls-key-file", type=Path, default=None, help="its private key (PEM)")
    parser.add_argument(
        "--advertise-address",
        default=None,
        metavar="HOST",
        help="the address the controller dials, published on the node as kvd.io/handler-address "
        "(default: --listen's host; required when that is a wildcard)",
    )
    parser.add_argument(
        "--allowed-user",
        action="append",
        default=None,
        metavar="USER",
        help="a user HandlerService admits (repeatable); default: "
        f"{DEFAULT_CALLER}, the controller's ServiceAccount",
    )
    parser.add_argument(
        "--token-audience",
        default=None,
        metavar="AUDIENCE",
        help="the audience callers' tokens must be issued for (TokenReview); default: kvd-handler",
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
    refused = program.raise_priority()  # before any thread or child starts
    from kvd import rpc_auth  # noqa: PLC0415 - grpc only for this
    from kvd.handler import main  # noqa: PLC0415 - loads the client and grpc only for this
    from kvd.handler.agent import HandlerSettings  # noqa: PLC0415

    program.configure_logging()
    program.log_priority(refused)
    serving = None
    if args.listen:
        if args.tls_cert_file is None or args.tls_key_file is None:
            raise program.CommandError(
                "--listen needs --tls-cert-file and --tls-key-file: HandlerService serves TLS only"
            )
        serving = main.ServiceSettings(
            listen=args.listen,
            cert_file=args.tls_cert_file.absolute(),
            key_file=args.tls_key_file.absolute(),
            allowed_users=tuple(args.allowed_user or (DEFAULT_CALLER,)),
            audience=args.token_audience or rpc_auth.HANDLER_AUDIENCE,
            advertise_host=args.advertise_address,
        )
    code = main.run(
        HandlerSettings(
            node_name=args.node_name,
            kubeconfig=args.kubeconfig,
            launcher_dir=args.launcher_dir.absolute(),
            state_dir=args.state_dir.absolute(),
            heartbeat_seconds=args.heartbeat_seconds,
            resync_seconds=args.resync_seconds,
        ),
        serving=serving,
        metrics_listen=args.metrics_listen,
        address_path=args.address_file.absolute() if args.address_file else None,
    )
    return program.exit_daemon(code)
