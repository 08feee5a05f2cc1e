"""`kvd local …`: the local cluster's parts, run on this machine."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from kvd.cli import cluster, program


def add_parser(subparsers: program.Subparsers) -> None:
    parser = subparsers.add_parser("local", help="the local cluster (no Kubernetes needed)")
    local = parser.add_subparsers(dest="local_command", metavar="COMMAND", required=True)
    api = local.add_parser(
        "apiserver",
        help="run the embedded Kubernetes-compatible API server",
        description="Serves the Kubernetes API on loopback with a bearer token; objects persist "
        "in DATA_DIR/state.db. Writes DATA_DIR/kubeconfig and prints its path.",
    )
    cluster.data_dir_option(api)
    api.add_argument("--port", type=int, default=6443, help="0 picks a free port")
    api.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    api.add_argument(
        "--history",
        type=int,
        default=100_000,
        help="watch events kept; a watch from an older resourceVersion gets 410 Gone",
    )
    api.add_argument(
        "--kubelet-socket",
        type=Path,
        default=None,
        help="the local node's API socket, to which pods/log and pods/exec are proxied "
        "(default DATA_DIR/node/kubelet.sock)",
    )
    api.add_argument(
        "--audit-log-path",
        type=Path,
        default=None,
        help="append an audit.k8s.io/v1 Event (level Metadata) per request to this file",
    )
    api.set_defaults(run=run_apiserver)
    cluster.add_parsers(local)


def run_apiserver(args: argparse.Namespace) -> int:
    from kvd.local.apiserver.serve import serve  # noqa: PLC0415 - loads aiohttp only for this

    program.configure_logging()
    socket = args.kubelet_socket.absolute() if args.kubelet_socket else None
    asyncio.run(
        serve(
            args.data_dir.absolute(),
            host=args.host,
            port=args.port,
            history=args.history,
            kubelet_socket=socket,
            audit_log=args.audit_log_path.absolute() if args.audit_log_path else None,
        )
    )
    return 0
