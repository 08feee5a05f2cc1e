"""`kvd local node`: run the local node until SIGTERM/SIGINT (pods keep running), or tear it
down."""

from __future__ import annotations

import ipaddress
import signal
import sys
import threading
from pathlib import Path

from kvd import logs
from kvd.kube import client
from kvd.local import images
from kvd.local.node import network, teardown
from kvd.local.node.agent import LocalNode, NodeSettings

log = logs.get_logger(__name__)


def run(
    *,
    data_dir: Path,
    node_name: str,
    bridge: str,
    cidr: str,
    image_store: Path | None,
    cgroup_parent: str,
    kubeconfig: Path,
) -> int:
    state_dir = data_dir / "node"
    names = teardown.HostNames(bridge=bridge, cidr=cidr, cgroup_parent=cgroup_parent)
    previous = teardown.HostNames.load(state_dir)
    if previous is not None and previous != names:
        # Pods from before still use the old bridge and addresses: changing them under running
        # pods would strand them. Say so rather than guess.
        raise SystemExit(
            f"kvd local node: {state_dir} was set up with {previous}; "
            "run `kvd local down` first to change the bridge, CIDR or cgroup parent"
        )
    names.save(state_dir)
    settings = NodeSettings(
        kubeconfig=kubeconfig,
        state_dir=state_dir,
        node_name=node_name,
        network=network.NetworkConfig(bridge=bridge, cidr=ipaddress.IPv4Network(cidr)),
        image_store=image_store or images.DEFAULT_ROOT,
        kubelet_socket=state_dir / "kubelet.sock",
        cgroup_parent=cgroup_parent,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    node = LocalNode(settings)
    try:
        node.start()
    except (OSError, TimeoutError, network.NetworkError, client.ApiError) as exc:
        node.stop()
        print(f"kvd local node: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"kvd local node: ready {node_name} (pods on {bridge} {cidr})", flush=True)
    stop.wait()
    log.info("node_stopping", node=node_name)
    node.stop()
    return 0


def tear_down(data_dir: Path) -> int:
    uids = teardown.everything(data_dir / "node")
    print(f"kvd local node: removed {len(uids)} pod(s) and the bridge", flush=True)
    return 0
