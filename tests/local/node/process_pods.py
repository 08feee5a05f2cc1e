"""Real processes standing in for pod containers, for testing the node API without the runtime.

Each pod gets its own network namespace (`ip netns`, a uniquely named one per test run) with a
veth (both ends inside) carrying the pod's address; each container attempt is a process started
in that namespace and in a private mount namespace (`unshare --mount`) whose output goes to a
log file, as the runtime does it. `ProcessPods` is the `PodLocator` the node API consumes: a
small adapter over these processes, not a fake of logs or exec. `close()` kills every process
and deletes the namespaces; the processes' mounts go with their mount namespaces.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kvd.local.node.kubelet_api import ContainerLog, ContainerUnavailable
from tests.support.waiting import wait_for

IP = shutil.which("ip") or "/usr/sbin/ip"
UNSHARE = ("unshare", "--mount", "--propagation", "private")


@dataclass
class Attempt:
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Pod:
    netns: str
    address: str
    workdir: Path
    containers: dict[str, list[Attempt]] = field(default_factory=dict)


class ProcessPods:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.prefix = f"kvdt{os.getpid() % 100000}{secrets.token_hex(2)}"
        self.pods: dict[tuple[str, str], Pod] = {}

    def add_pod(self, namespace: str, name: str, *, address: str) -> Pod:
        netns = f"{self.prefix}-{len(self.pods)}"
        subprocess.run([IP, "netns", "add", netns], check=True)
        pod = Pod(netns, address, self.workdir / f"{namespace}-{name}")
        self.pods[(namespace, name)] = pod  # from now on close() deletes the namespace
        for args in (
            # both ends stay inside the namespace: the pod has an eth0, the host sees nothing
            ["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"],
            ["addr", "add", address, "dev", "eth0"],
            ["link", "set", "peer0", "up"],
            ["link", "set", "eth0", "up"],
        ):
            subprocess.run([IP, "-n", netns, *args], check=True)
        pod.workdir.mkdir(parents=True)
        return pod

    def start(
        self,
        namespace: str,
        pod: str,
        container: str,
        script: str,
        *,
        env: dict[str, str] | None = None,
        ready: str | None = None,
    ) -> Attempt:
        """Start a new attempt of `container` running `sh -c script` in the pod's namespaces;
        with `ready`, wait until its log shows that text."""
        p = self.pods[(namespace, pod)]
        attempts = p.containers.setdefault(container, [])
        log = p.workdir / f"{container}-{len(attempts)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [IP, "netns", "exec", p.netns, *UNSHARE, "sh", "-c", script],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=p.workdir,
                env={"PATH": os.environ["PATH"], **(env or {})},
            )
        attempt = Attempt(proc, log)
        attempts.append(attempt)
        if ready is not None:
            wait_for(f"{container} to log {ready!r}", lambda: ready in log.read_text(), timeout=15)
        return attempt

    def close(self) -> None:
        for pod in self.pods.values():
            for attempts in pod.containers.values():
                for attempt in attempts:
                    if attempt.proc.poll() is None:
                        attempt.proc.kill()
                    attempt.proc.wait(timeout=10)
            subprocess.run([IP, "netns", "delete", pod.netns], check=False)
        self.pods.clear()

    # --- PodLocator --------------------------------------------------------------------------

    def container_log(
        self, namespace: str, pod: str, container: str | None, *, previous: bool
    ) -> ContainerLog:
        attempts = self._attempts(namespace, pod, container)
        if previous:
            if len(attempts) < 2:
                raise ContainerUnavailable(
                    f'previous terminated container "{container}" in pod "{pod}" not found'
                )
            attempt = attempts[-2]
        else:
            attempt = attempts[-1]
        return ContainerLog(path=attempt.log, running=lambda: attempt.proc.poll() is None)

    def container_pid(self, namespace: str, pod: str, container: str | None) -> int:
        attempt = self._attempts(namespace, pod, container)[-1]
        if attempt.proc.poll() is not None:
            raise ContainerUnavailable(f'container "{container}" in pod "{pod}" is not running')
        return attempt.proc.pid

    def _attempts(self, namespace: str, pod: str, container: str | None) -> list[Attempt]:
        p = self.pods.get((namespace, pod))
        if p is None:
            raise ContainerUnavailable(f'pods "{pod}" not found', status=404)
        attempts = p.containers.get(container or "")
        if not attempts:
            raise ContainerUnavailable(
                f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating'
            )
        return attempts


def command_running(*argv: str) -> bool:
    """Whether some process on this machine runs exactly `argv`."""
    wanted = "".join(f"{a}\0" for a in argv).encode()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == wanted:
                return True
        except OSError:
            continue
    return False


def leftovers(prefix: str) -> list[str]:
    """Network namespaces with `prefix` that still exist."""
    out = subprocess.run([IP, "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if line.startswith(prefix)]
