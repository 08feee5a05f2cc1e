"""`kvd local up | down | status | node`: the local cluster as a whole, and its node."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kvd.cli import program

DEFAULT_DATA_DIR = Path(os.environ.get("KVD_LOCAL_DIR", "/var/lib/kvd/local"))


def add_parsers(local: program.Subparsers) -> None:
    up = local.add_parser(
        "up",
        help="start the local cluster: API server, CRDs, node, and kvd from its chart",
        description="Starts the API server and the local node as processes, installs kvd's "
        "Helm chart (the controller and handler then run as pods in kvd-system), prints one "
        "line per component as it becomes ready, then the KUBECONFIG to use. Stays in the "
        "foreground (Ctrl-C stops everything) unless --detach.",
    )
    data_dir_option(up)
    up.add_argument("--port", type=int, default=6443, help="API server port (0: any free one)")
    up.add_argument("--detach", action="store_true", help="return once ready; stop with `down`")
    node_options(up)
    up.set_defaults(run=run_up)

    down = local.add_parser(
        "down", help="stop the local cluster and remove every pod, network and mount it made"
    )
    data_dir_option(down)
    down.set_defaults(run=run_down)

    status = local.add_parser("status", help="what of the local cluster runs")
    data_dir_option(status)
    status.set_defaults(run=run_status)

    node = local.add_parser(
        "node",
        help="run the local node (kubelet + scheduler for the embedded API server)",
        description="Registers a Node for this machine and runs the pods bound to it as "
        "processes in their own network and mount namespaces. SIGTERM leaves pods running; a "
        "restarted node adopts them. --teardown removes everything it runs instead.",
    )
    data_dir_option(node)
    node_options(node)
    node.add_argument("--teardown", action="store_true", help="remove all pods, the bridge; exit")
    node.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="the node's credentials (default DATA_DIR/kubeconfig, the admin's; `kvd local up` "
        "gives it its own, DATA_DIR/credentials/node.kubeconfig)",
    )
    node.set_defaults(run=run_node)


def data_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)


def node_options(parser: argparse.ArgumentParser) -> None:
    from kvd.local.node.registration import default_node_name  # noqa: PLC0415 - lazy

    parser.add_argument("--node-name", default=default_node_name())
    parser.add_argument("--bridge", default="kvd0", help="host bridge for pod veths")
    parser.add_argument("--pod-cidr", default="10.88.0.0/16", help="pod IPs; gateway = first")
    parser.add_argument("--image-store", type=Path, default=None, help="local image store")
    parser.add_argument("--cgroup-parent", default="kvd", help="cgroup under which pods run")


def node_args_of(args: argparse.Namespace) -> tuple[str, ...]:
    out = [
        "--node-name",
        args.node_name,
        "--bridge",
        args.bridge,
        "--pod-cidr",
        args.pod_cidr,
        "--cgroup-parent",
        args.cgroup_parent,
    ]
    if args.image_store is not None:
        out += ["--image-store", str(args.image_store.absolute())]
    return tuple(out)


def run_up(args: argparse.Namespace) -> int:
    from kvd.local import cluster  # noqa: PLC0415 - loads the client only for this

    data = args.data_dir.absolute()
    options = cluster.Options(
        data_dir=data, port=args.port, node_name=args.node_name, node_args=node_args_of(args)
    )
    components = cluster.up(options)  # a failure is one line, by program.run
    if args.detach:
        print(f"detached; stop with: kvd local down --data-dir {data}")
        return 0
    print("running in the foreground; Ctrl-C stops the cluster")
    return cluster.wait(data, components)


def run_down(args: argparse.Namespace) -> int:
    from kvd.local import cluster  # noqa: PLC0415

    stopped = cluster.down(args.data_dir.absolute())
    print(f"kvd local down: stopped {', '.join(stopped) or 'nothing (was not running)'}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from kvd.local import cluster, install  # noqa: PLC0415

    found = cluster.status(args.data_dir.absolute())
    if not found:
        print(f"kvd local: not running ({args.data_dir})")
        return 3
    print(f"{'COMPONENT':<12}{'PID':>8}  STATE    LOG")
    for component, alive in found:
        state = "running" if alive else "exited"
        print(f"{component.name:<12}{component.pid:>8}  {state:<8} {component.log}")
    healthy = all(alive for _, alive in found)
    if not any(c.name == "apiserver" and alive for c, alive in found):
        print("kvd's daemons: unknown (the API server is not running)")
        return 1
    daemons = cluster.daemons(args.data_dir.absolute())
    if isinstance(daemons, str):
        print(f"kvd's daemons: unknown ({daemons})")
        return 1
    print(f"\n{'DAEMON':<12}{'READY':<7}{'PHASE':<10}POD (namespace {install.NAMESPACE})")
    for d in daemons:
        leading = " (leading)" if d.leading else ""
        ready = "yes" if d.ready else "no"
        print(f"{d.component:<12}{ready:<7}{d.phase:<10}{d.pod or '-'}{leading}")
    return 0 if healthy and all(d.ready for d in daemons) else 1


def run_node(args: argparse.Namespace) -> int:
    refused = program.raise_priority()  # before any thread or child starts
    from kvd.local import cluster  # noqa: PLC0415
    from kvd.local.node import main  # noqa: PLC0415

    cluster.require_root("it runs pods in their own namespaces, on a bridge, in cgroups")
    program.configure_logging()
    program.log_priority(refused)
    data = args.data_dir.absolute()
    if args.teardown:
        return main.tear_down(data)
    return main.run(
        data_dir=data,
        node_name=args.node_name,
        bridge=args.bridge,
        cidr=args.pod_cidr,
        image_store=args.image_store,
        cgroup_parent=args.cgroup_parent,
        kubeconfig=args.kubeconfig.absolute() if args.kubeconfig else data / "kubeconfig",
    )
