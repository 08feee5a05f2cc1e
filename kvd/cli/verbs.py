"""`kvdctl start|stop|restart|pause|unpause|version`: virtctl's verbs, with virtctl's names and
flags, over the aggregated API `subresources.kubevirt.io` with nothing but a kubeconfig.

Each verb is one PUT through the API server (which authenticates the user and proxies to kvd's
controller, which authorizes the user for the verb's subresource and acts). They return once the
change is recorded, as virtctl's do ("VM x was scheduled to stop"); the VM's and VMI's status
show the progress. The kubeconfig is found as kubectl finds it (`--kubeconfig`, `$KUBECONFIG`,
`~/.kube/config`), else the local cluster's; `--context` and `-n` as kubectl's. Also here: the
options every kvdctl command shares, and the connection they make.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path
from typing import Any

from kvd.cli import cluster, program
from kvd.version import kvd_version

VM, VMI = "virtualmachines", "virtualmachineinstances"


def user_options(parser: argparse.ArgumentParser) -> None:
    """`-n`, `--kubeconfig`, `--context`, as kubectl's (and `--data-dir` for the local
    cluster's kubeconfig when no other is found)."""
    parser.add_argument(
        "-n", "--namespace", default=None, help="default: the context's namespace, else default"
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="default: $KUBECONFIG, ~/.kube/config, else the local cluster's (DATA_DIR/kubeconfig)",
    )
    parser.add_argument("--context", default=None, help="the kubeconfig context to use")
    cluster.data_dir_option(parser)


def kubeconfig(args: argparse.Namespace) -> Path:
    if args.kubeconfig is not None:
        return Path(args.kubeconfig)
    found = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if found:
        return Path(found)
    home = Path.home() / ".kube" / "config"
    if home.is_file():
        return home
    local = Path(args.data_dir).absolute()
    if not (local / "kubeconfig").is_file():
        raise program.CommandError(
            f"no kubeconfig: none was given (--kubeconfig, $KUBECONFIG, ~/.kube/config) and the "
            f"local cluster in {local} is not running (start it with `kvd local up`)"
        )
    return local / "kubeconfig"


def connect(args: argparse.Namespace) -> tuple[Any, str]:
    """The user's API client, and the namespace the command is about."""
    from kvd.kube import subresources  # noqa: PLC0415 - the client only for these commands

    where = kubeconfig(args)
    api = subresources.connect(where, context=args.context)
    return api, args.namespace or subresources.namespace(where, context=args.context)


def refused(exc: Any) -> program.CommandError:
    """An `ApiError` as one line: the server's message says who, what and why."""
    if exc.status == 0:
        return program.CommandError(f"cannot reach the API server: {exc.message}")
    return program.CommandError(exc.message)


# --- start, stop, restart, pause, unpause -----------------------------------------------------


def add_parsers(subparsers: program.Subparsers) -> None:
    for verb, what in (
        ("start", "start a VirtualMachine"),
        ("stop", "stop a VirtualMachine (its guest shuts down within its grace period)"),
        ("restart", "restart a VirtualMachine (a new VMI replaces the running one)"),
    ):
        parser = subparsers.add_parser(verb, help=what, description=f"{what[0].upper()}{what[1:]}.")
        parser.add_argument("name", help="the VirtualMachine")
        if verb != "start":
            parser.add_argument(
                "--grace-period",
                type=int,
                default=-1,
                help="with --force: seconds the guest gets to shut down (0: at once)",
            )
            parser.add_argument(
                "--force", action="store_true", help="stop now, with --grace-period"
            )
        parser.add_argument("--dry-run", action="store_true", help="check, change nothing")
        user_options(parser)
        parser.set_defaults(run=_lifecycle, verb=verb)
    for verb in ("pause", "unpause"):
        parser = subparsers.add_parser(
            verb,
            help=f"{verb} a VM's or VMI's guest",
            description=f"{verb.capitalize()}s the guest of a VirtualMachineInstance (`vmi`), "
            "or of a VirtualMachine's (`vm`: the VMI of the same name).",
        )
        parser.add_argument("kind", choices=("vm", "vmi"))
        parser.add_argument("name")
        parser.add_argument("--dry-run", action="store_true", help="check, change nothing")
        user_options(parser)
        parser.set_defaults(run=_pausing, verb=verb)
    parser = subparsers.add_parser("version", help="print the client's and the server's version")
    user_options(parser)
    parser.set_defaults(run=_version)


def options(args: argparse.Namespace) -> dict[str, Any]:
    """The verb's body: KubeVirt's StopOptions (`gracePeriod`) or RestartOptions
    (`gracePeriodSeconds`), and `dryRun`; a grace period only with --force, as virtctl."""
    body: dict[str, Any] = {}
    grace = getattr(args, "grace_period", -1)
    if grace != -1 and not args.force:
        raise program.CommandError("--grace-period needs --force")
    if grace < -1:
        raise program.CommandError(f"--grace-period must be 0 or more, not {grace}")
    if getattr(args, "force", False):
        seconds = 0 if grace == -1 else grace
        body["gracePeriodSeconds" if args.verb == "restart" else "gracePeriod"] = seconds
    if args.dry_run:
        body["dryRun"] = ["All"]
    return body


def _lifecycle(args: argparse.Namespace) -> int:
    from kvd.kube import client, subresources  # noqa: PLC0415

    body = options(args)
    api, ns = connect(args)
    try:
        subresources.put(api, subresources.path(ns, VM, args.name, args.verb), body)
    except client.ApiError as exc:
        raise refused(exc) from None
    print(f"VM {args.name} was scheduled to {args.verb}{' (dry run)' if args.dry_run else ''}")
    return 0


def _pausing(args: argparse.Namespace) -> int:
    from kvd.kube import client, subresources  # noqa: PLC0415

    api, ns = connect(args)
    try:
        subresources.put(
            api,
            subresources.path(ns, VMI, args.name, args.verb),
            {"dryRun": ["All"]} if args.dry_run else {},
        )
    except client.ApiError as exc:
        raise refused(exc) from None
    kind = "VMI" if args.kind == "vmi" else "VM"
    print(f"{kind} {args.name} was scheduled to {args.verb}")
    return 0


def _version(args: argparse.Namespace) -> int:
    from kvd.kube import client, subresources  # noqa: PLC0415

    print(f"Client Version: kvdctl {kvd_version()} (Python {platform.python_version()})")
    api, _ = connect(args)
    try:
        server = subresources.server_version(api)
    except client.ApiError as exc:
        raise program.CommandError(f"Server Version: unknown: {refused(exc)}") from None
    print(f"Server Version: {server.get('gitVersion')} ({server.get('platform', '')})")
    return 0
