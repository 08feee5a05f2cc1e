"""A real local cluster per test module: `kvd local up --detach` (API server + local node as
separate processes), with host-global names (bridge, pod CIDR, cgroup parent, node name) unique
to the run, so that nothing here touches a cluster a developer has up; `kvd local down` at the
end, after which `leftovers()` must find nothing."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kvd.kube import client
from kvd.local import install
from tests.local import kubectl
from tests.support.waiting import wait_for

BIN = Path(sys.executable).parent
KVD = str(BIN / "kvd")
KUBECTL = kubectl.KUBECTL

Json = dict[str, Any]


@dataclass
class Cluster:
    data_dir: Path
    bridge: str
    cidr: str
    cgroup_parent: str
    node_name: str
    image_store: Path | None = None  # None: kvd's default store (/var/lib/kvd/images)

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def node_args(self) -> list[str]:
        return [
            "--node-name", self.node_name, "--bridge", self.bridge, "--pod-cidr", self.cidr,
            "--cgroup-parent", self.cgroup_parent,
        ]  # fmt: skip

    def up(self) -> subprocess.CompletedProcess[str]:
        args = [KVD, "local", "up", "--data-dir", str(self.data_dir), "--port", "0", "--detach"]
        if self.image_store is not None:
            args += ["--image-store", str(self.image_store)]
        done = subprocess.run(
            [*args, *self.node_args()], capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, f"kvd local up failed:\n{done.stdout}\n{done.stderr}"
        self.raw = client.Raw(client.connect(self.kubeconfig))
        return done

    def down(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KVD, "local", "down", "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )

    def components(self) -> dict[str, int]:
        state = json.loads((self.data_dir / "cluster.json").read_text())
        return {c["name"]: c["pid"] for c in state["components"]}

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return kubectl.run(
            self.kubeconfig, self.data_dir, *args, stdin=stdin, check=check, timeout=timeout
        )

    def create_pod(self, manifest: Json) -> Json:
        manifest = {"apiVersion": "v1", "kind": "Pod", **manifest}
        created: Json = self.raw.create("/api/v1/namespaces/default/pods", manifest)
        return created

    def pod(self, name: str) -> Json | None:
        try:
            found: Json = self.raw.get(f"/api/v1/namespaces/default/pods/{name}")
        except client.ApiError as exc:
            if exc.not_found:
                return None
            raise
        return found

    def wait_pod(
        self, name: str, check: Callable[[Json], bool], *, timeout: float = 60, what: str = ""
    ) -> Json:
        """Poll until `check(pod)` holds; fails with the pod's last status otherwise."""

        def matching() -> Json | None:
            pod = self.pod(name)
            return pod if pod is not None and check(pod) else None

        found: Json = wait_for(
            f"pod {name} to be {what or 'as expected'}",
            matching,
            timeout=timeout,
            interval=0.1,
            diagnose=lambda: json.dumps((self.pod(name) or {}).get("status"), indent=1),
        )
        return found

    def wait_phase(self, name: str, phase: str, *, timeout: float = 60) -> Json:
        return self.wait_pod(
            name, lambda p: p.get("status", {}).get("phase") == phase, timeout=timeout, what=phase
        )

    def wait_gone(self, name: str, *, timeout: float = 60) -> None:
        wait_for(f"pod {name} to be gone", lambda: self.pod(name) is None, timeout=timeout)

    # --- kvd's daemons: the chart's pods in kvd-system -------------------------------------

    def daemon_pod(self, component: str) -> Json | None:
        """The running, Ready pod of kvd's `component` (for the controller, the Lease holder's)."""
        pods = [p for p in install.daemon_pods(self.raw, component) if install.is_ready(p)]
        if component == "controller":
            holder = install.leader(self.raw)
            pods = [p for p in pods if p["metadata"]["name"] == holder]
        return pods[0] if pods else None

    def wait_daemon(
        self, component: str, *, not_pid: int | None = None, timeout: float = 90
    ) -> Json:
        """Until `component` has a Ready pod (the leader, for the controller) whose process is
        not `not_pid` (one that was killed or replaced)."""

        def ready() -> Json | None:
            pod = self.daemon_pod(component)
            if pod is None or (not_pid is not None and self.daemon_pid(pod) == not_pid):
                return None
            return pod

        found: Json = wait_for(
            f"kvd's {component} Ready", ready, timeout=timeout, interval=0.2,
            diagnose=lambda: json.dumps(
                [p.get("status") for p in install.daemon_pods(self.raw, component)], indent=1
            ),
        )  # fmt: skip
        return found

    def daemon_pid(self, pod: Json | str) -> int:
        """The pid of the daemon's process in `pod` (or the Ready pod of that component), from
        the node's record of the container's latest attempt."""
        if isinstance(pod, str):
            found = self.daemon_pod(pod)
            assert found is not None, f"no Ready {pod} pod"
            pod = found
        name = pod["spec"]["containers"][0]["name"]
        attempts = self.data_dir / "node" / "pods" / pod["metadata"]["uid"] / "containers" / name
        # an attempt's record is written once it runs: the latest one that has it
        recorded = [a for a in attempts.iterdir() if (a / "record.json").exists()]
        latest = max(recorded, key=lambda p: int(p.name))
        return int(json.loads((latest / "record.json").read_text())["main"][0])

    def daemon_address(self, component: str, port: str) -> str:
        """HOST:PORT of the Ready `component` pod's named container port ("metrics", "grpc")."""
        pod = self.wait_daemon(component)
        return f"{pod['status']['podIP']}:{install.ports(pod)[port]}"

    def daemon_log(self, component: str, lines: int = 30) -> str:
        done = self.kubectl(
            "logs", "-n", install.NAMESPACE, "-l", f"{install.COMPONENT_LABEL}={component}",
            f"--tail={lines}", check=False,
        )  # fmt: skip
        return done.stdout + done.stderr

    def netns(self, pod: Json) -> str:
        return f"{self.bridge}_{pod['metadata']['uid']}"

    def leftovers(self) -> list[str]:
        """Whatever of this cluster is still on the host: processes, network namespaces, links,
        mounts, cgroups."""
        marker = str(self.data_dir)
        found = [f"process {p}" for p in processes_mentioning(marker)]
        namespaces = subprocess.run(
            ["ip", "netns"], capture_output=True, text=True, check=True
        ).stdout
        found += [f"netns {n}" for n in namespaces.split() if n.startswith(f"{self.bridge}_")]
        links = subprocess.run(
            ["ip", "-o", "link"], capture_output=True, text=True, check=True
        ).stdout
        found += [f"link {line[:120]}" for line in links.splitlines() if self.bridge in line]
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            if marker in line or f"/run/netns/{self.bridge}_" in line:
                found.append(f"mount {line[:200]}")
        for root in Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}"):
            found.append(f"cgroup {root}")
        tables = subprocess.run(
            ["nft", "list", "tables"], capture_output=True, text=True, check=True
        ).stdout
        found += [
            f"nft {line}" for line in tables.splitlines() if line.endswith(f"kvd-{self.bridge}")
        ]
        return found


def processes_mentioning(*needles: str) -> list[str]:
    """`pid: command line` of each process whose command line contains one of `needles`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(n in cmdline for n in needles):
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def new_cluster() -> Cluster:
    """Names unique to this run. The data dir is short (under /tmp, not pytest's deep tmp_path):
    the node's API socket lives in it and unix socket paths are at most 107 bytes."""
    tag = secrets.token_hex(3)
    return Cluster(
        data_dir=Path(tempfile.mkdtemp(prefix=f"kvt{tag}-")),
        bridge=f"kvt{tag}",
        cidr=f"10.{100 + secrets.randbelow(100)}.0.0/16",
        cgroup_parent=f"kvdt-{tag}",
        node_name=f"node-{tag}",
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = new_cluster()
    try:
        c.up()
        yield c
    finally:
        c.down()
        shutil.rmtree(c.data_dir, ignore_errors=True)


def kill(pid: int) -> None:
    """SIGKILL `pid` and wait until it is dead (reaped, or a zombie its parent will reap)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return

    def dead() -> bool:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.rpartition(") ")[2].startswith("Z")

    wait_for(f"process {pid} to die of SIGKILL", dead, timeout=10)
