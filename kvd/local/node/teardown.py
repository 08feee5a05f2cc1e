"""Remove everything a local node runs: `kvd local down`, and `kvd local node --teardown`.

The node records the settings that name its host-global things (bridge, pod CIDR, cgroup parent)
in `STATE_DIR/node.json` when it starts, so a teardown — possibly by another process, after the
node crashed — removes exactly those: every pod's processes (through their cgroups), network
namespace, veth and IP allocation, then the Services' nftables table and the bridge, then the
loop devices of its Block volumes (their data stays), then the state directory's pod files.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from kvd import logs
from kvd.local.node import containers, network, proxy
from kvd.local.storage.backing import STORAGE_DIR, Backing

log = logs.get_logger(__name__)

SETTINGS_FILE = "node.json"


@dataclass(frozen=True, kw_only=True)
class HostNames:
    """The host-global names a node uses, kept so another process can remove them."""

    bridge: str
    cidr: str
    cgroup_parent: str

    def save(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / SETTINGS_FILE
        path.write_text(
            json.dumps(
                {"bridge": self.bridge, "cidr": self.cidr, "cgroup_parent": self.cgroup_parent}
            )
        )

    @classmethod
    def load(cls, state_dir: Path) -> HostNames | None:
        try:
            raw = json.loads((state_dir / SETTINGS_FILE).read_text())
        except FileNotFoundError:
            return None
        return cls(bridge=raw["bridge"], cidr=raw["cidr"], cgroup_parent=raw["cgroup_parent"])


def everything(state_dir: Path) -> list[str]:
    """Remove every pod the node at `state_dir` runs, and its bridge; returns the pod uids."""
    names = HostNames.load(state_dir)
    if names is None:
        return []
    runtime = containers.Containers(state_dir / "pods", cgroup_parent=names.cgroup_parent)
    net = network.Network(
        network.NetworkConfig(bridge=names.bridge, cidr=ipaddress.IPv4Network(names.cidr)),
        state_dir / "network",
    )
    uids = sorted(set(runtime.pods()) | set(net.attached()))
    for uid in uids:
        runtime.remove(uid)
        net.detach(uid)
    proxy.remove(names.bridge)
    net.remove_bridge()
    # after the pods, which held them open: the volumes' data stays, their devices go
    Backing(state_dir / STORAGE_DIR).detach_all()
    shutil.rmtree(state_dir / "records", ignore_errors=True)
    log.info("node_torn_down", pods=len(uids), bridge=names.bridge)
    return uids
