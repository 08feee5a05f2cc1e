"""`kvd controller`: the cluster's VMI controller (leader-elected; run one or more replicas)."""

from __future__ import annotations

import argparse
from pathlib import Path

from kvd.cli import program


def add_parser(subparsers: program.Subparsers) -> None:
    parser = subparsers.add_parser(
        "controller",
        help="run the VMI controller (launcher pods, phases up to Scheduled, node watchdog)",
        description="Gives each VirtualMachineInstance one launcher pod and moves it through "
        "Pending, Scheduling and Scheduled; deletes the pods of deleted VMIs; fails the VMIs of "
        "nodes whose handler stopped beating. Replicas elect a leader on the Lease "
        "NAMESPACE/kvd-controller; only the leader works. Settings: the ConfigMap "
        "NAMESPACE/kvd-config, read live.",
    )
    parser.add_argument("--kubeconfig", type=Path, default=None, help="default: in-cluster/env")
    parser.add_argument(
        "--namespace",
        default="kvd-system",
        help="kvd's namespace (the chart's): its Lease and ConfigMap (default %(default)s)",
    )
    parser.add_argument(
        "--launcher-dir",
        default="/var/run/kvd/launchers",
        help="the host directory the handlers watch for launcher sockets (their --launcher-dir)",
    )
    parser.add_argument("--identity", default="", help="the Lease holder name; default host_pid")
    parser.add_argument(
        "--metrics-listen", default=None, help="serve Prometheus metrics on HOST:PORT"
    )
    parser.add_argument(
        "--listen",
        default=None,
        metavar="HOST:PORT",
        help="serve ControllerService (users' console; later start/stop/pause) over TLS on "
        "HOST:PORT (port 0: any free one); needs the four files below",
    )
    parser.add_argument(
        "--api-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve the aggregated API subresources.kubevirt.io (start, stop, restart, pause, "
        "console, vnc, as KubeVirt's virt-api) over HTTPS on HOST:PORT, for the API server to "
        "proxy to; same certificate and files as --listen",
    )
    parser.add_argument(
        "--tls-cert-file",
        type=Path,
        default=None,
        help="ControllerService's certificate (PEM, signed by the cluster CA users' kubeconfigs "
        "trust); read again when it changes",
    )
    parser.add_argument("--tls-key-file", type=Path, default=None, help="its private key (PEM)")
    parser.add_argument(
        "--handler-ca-file",
        type=Path,
        default=None,
        help="the CA bundle (PEM) that signed the handlers' HandlerService certificates",
    )
    parser.add_argument(
        "--handler-token-file",
        type=Path,
        default=None,
        help="the controller's ServiceAccount token for the audience kvd-handler, presented to "
        "the handlers (a projected token; read again when it changes)",
    )
    parser.add_argument(
        "--handler-server-name",
        default="",
        metavar="NAME",
        help="the name every handler's certificate carries (the chart's: kvd-handler.NAMESPACE."
        "svc), checked instead of the address dialled; default: the address's host",
    )
    program.add_address_file_option(parser)
    parser.add_argument(
        "--node-heartbeat-timeout",
        type=float,
        default=300.0,
        help="seconds without a handler heartbeat before a node is unresponsive",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lease-seconds", type=float, default=15.0)
    parser.add_argument("--renew-seconds", type=float, default=10.0)
    parser.add_argument("--retry-seconds", type=float, default=2.0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kvd.controller import main  # noqa: PLC0415 - loads the client only for this
    from kvd.controller.app import ControllerSettings  # noqa: PLC0415

    program.configure_logging()
    serving = None
    if args.listen or args.api_listen:
        files = {
            "--tls-cert-file": args.tls_cert_file,
            "--tls-key-file": args.tls_key_file,
            "--handler-ca-file": args.handler_ca_file,
            "--handler-token-file": args.handler_token_file,
        }
        missing = [flag for flag, value in files.items() if value is None]
        if missing:
            flag = "--listen" if args.listen else "--api-listen"
            raise program.CommandError(f"{flag} needs {', '.join(missing)}")
        serving = main.ServiceSettings(
            listen=args.listen,
            cert_file=args.tls_cert_file.absolute(),
            key_file=args.tls_key_file.absolute(),
            handler_ca_file=args.handler_ca_file.absolute(),
            handler_token_file=args.handler_token_file.absolute(),
            handler_server_name=args.handler_server_name,
            api_listen=args.api_listen,
        )
    code = main.run(
        ControllerSettings(
            namespace=args.namespace,
            launcher_host_dir=str(Path(args.launcher_dir).absolute()),
            kubeconfig=args.kubeconfig,
            identity=args.identity,
            workers=args.workers,
            node_heartbeat_timeout=args.node_heartbeat_timeout,
            watchdog_period=min(30.0, args.node_heartbeat_timeout / 3),
            lease_seconds=args.lease_seconds,
            renew_seconds=args.renew_seconds,
            retry_seconds=args.retry_seconds,
        ),
        metrics_listen=args.metrics_listen,
        address_path=args.address_file.absolute() if args.address_file else None,
        serving=serving,
    )
    return program.exit_daemon(code)
