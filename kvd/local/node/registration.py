"""The Node object and its Lease: how the local node tells the cluster it exists and lives.

As the kubelet does: register the Node once (create, or on a restart merge our labels and status
into the one that exists, keeping labels others set — the handler's `kubevirt.io/schedulable`),
renew a Lease in `kube-node-lease` every 10 s (the cheap heartbeat), and patch the Node's status
only when it changes or every `status_period` (the kubelet's nodeStatusReportFrequency).
Capacity comes from the host (`os.cpu_count`, MemTotal, the state dir's filesystem); allocatable
keeps a reserve back for the host, like `--system-reserved`.
"""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kvd.version import kvd_version

Json = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
SYSTEM_RESERVED_MEMORY = 512 * 2**20
MAX_PODS = 110


def default_node_name() -> str:
    return socket.gethostname().split(".")[0].lower() or "localhost"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, kw_only=True)
class HostFacts:
    cpus: int
    memory: int
    storage: int
    address: str
    hostname: str

    @classmethod
    def probe(cls, *, state_dir: Path, address: str) -> HostFacts:
        stat = os.statvfs(state_dir)
        return cls(
            cpus=os.cpu_count() or 1,
            memory=_mem_total(),
            storage=stat.f_blocks * stat.f_frsize,
            address=address,
            hostname=socket.gethostname(),
        )


def labels(name: str) -> dict[str, str]:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch,
    }


def node_status(facts: HostFacts, *, ready: bool, previous: Json | None) -> Json:
    """`status` for the Node; condition transition times carried over from `previous`."""
    capacity = {
        "cpu": str(facts.cpus),
        "memory": f"{facts.memory // 1024}Ki",
        "ephemeral-storage": f"{facts.storage // 1024}Ki",
        "pods": str(MAX_PODS),
    }
    allocatable = {
        **capacity,
        "memory": f"{max(0, facts.memory - SYSTEM_RESERVED_MEMORY) // 1024}Ki",
    }
    stamp = now()
    old = {c["type"]: c for c in ((previous or {}).get("conditions") or [])}

    def condition(kind: str, status: bool, reason: str, message: str) -> Json:
        text = "True" if status else "False"
        before = old.get(kind)
        since = before["lastTransitionTime"] if before and before.get("status") == text else stamp
        return {
            "type": kind,
            "status": text,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": since,
        }

    return {
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": [
            condition(
                "MemoryPressure",
                False,
                "KubeletHasSufficientMemory",
                "kvd local node has sufficient memory available",
            ),
            condition(
                "DiskPressure",
                False,
                "KubeletHasNoDiskPressure",
                "kvd local node has no disk pressure",
            ),
            condition(
                "PIDPressure",
                False,
                "KubeletHasSufficientPID",
                "kvd local node has sufficient PID available",
            ),
            condition(
                "Ready",
                ready,
                "KubeletReady" if ready else "KubeletNotReady",
                "kvd local node is posting ready status" if ready else "kvd local node is stopping",
            ),
        ],
        "addresses": [
            {"type": "InternalIP", "address": facts.address},
            {"type": "Hostname", "address": facts.hostname},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": _read("/etc/machine-id"),
            "systemUUID": _read("/sys/class/dmi/id/product_uuid"),
            "bootID": _read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": platform.release(),
            "osImage": _os_image(),
            "containerRuntimeVersion": f"kvd://{kvd_version()}",
            "kubeletVersion": f"v0.0.0-kvd-{kvd_version()}",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": labels("x")["kubernetes.io/arch"],
        },
    }


def same_status(a: Json, b: Json) -> bool:
    """Equal but for heartbeat times: only then may a status patch be skipped."""

    def strip(status: Json) -> Json:
        conditions = [
            {k: v for k, v in c.items() if k != "lastHeartbeatTime"}
            for c in status.get("conditions") or []
        ]
        return {**status, "conditions": conditions}

    return strip(a) == strip(b)


def lease(name: str, *, uid: str | None, renewed: str) -> Json:
    owner = (
        [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}] if uid is not None else []
    )
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "ownerReferences": owner},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": renewed,
        },
    }


def _mem_total() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("MemTotal missing from /proc/meminfo")


def _os_image() -> str:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME", "Linux")
    except OSError:
        return "Linux"


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""
