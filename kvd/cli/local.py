"""`kvd local …`: the local cluster's parts, run on this machine."""

from __future__ import annotations

import argparse
import asyncio
import re
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
    token = local.add_parser(
        "token",
        help="mint a bearer token for a user of the local cluster (to try RBAC by hand)",
        description="Prints a token the local API server accepts for USER, in each GROUP and "
        "system:authenticated, until it expires: kubectl --token $(kvd local token --user "
        "alice) …. It is signed with the cluster's service-account key (DATA_DIR/pki/sa.key), "
        "so the API server need not be running, but must have run once there.",
    )
    cluster.data_dir_option(token)
    token.add_argument("--user", required=True, help="the user's name")
    token.add_argument(
        "--group", action="append", default=[], help="a group of the user (repeatable)"
    )
    token.add_argument(
        "--duration",
        type=duration,
        default=duration("24h"),
        help="how long the token is valid, as Go writes durations (90m, 24h, 1h30m; default 24h)",
    )
    token.set_defaults(run=run_token)


def run_apiserver(args: argparse.Namespace) -> int:
    refused = program.raise_priority()  # before any thread or child starts
    from kvd.local.apiserver.serve import serve  # noqa: PLC0415 - loads aiohttp only for this

    program.configure_logging()
    program.log_priority(refused)
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


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def duration(text: str) -> int:
    """Whole seconds of a Go duration ("24h", "1h30m", "90s"), as kubectl's --duration reads."""
    parts = _DURATION.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use e.g. 90m, 24h, 1h30m")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds < 1 or seconds != int(seconds):
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: must be a positive whole number of seconds"
        )
    return int(seconds)


def run_token(args: argparse.Namespace) -> int:
    from kvd.local.apiserver import serviceaccounts  # noqa: PLC0415 - loads cryptography
    from kvd.local.apiserver.serviceaccounts import jwt  # noqa: PLC0415

    try:
        token = serviceaccounts.user_token(
            args.data_dir.absolute(), args.user, args.group, seconds=args.duration
        )
    except (jwt.KeyMissing, ValueError) as exc:
        raise program.CommandError(str(exc)) from None
    print(token)
    return 0
