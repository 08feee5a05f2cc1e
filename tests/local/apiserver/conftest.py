"""A real `kvd local apiserver` process per test, and clients for it: the official
`kubernetes` client and real `kubectl` (from the venv), both reading its kubeconfig."""

from __future__ import annotations

import re
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.local import kubectl
from tests.support.console import Transcript

BIN = Path(sys.executable).parent
KVD = str(BIN / "kvd")
KUBECTL = kubectl.KUBECTL
CRDS = Path(__file__).resolve().parents[3] / "charts" / "kvd" / "crds"


@dataclass
class Server:
    data_dir: Path
    proc: subprocess.Popen[str]
    url: str
    kubeconfig: Path
    log: Path

    def api(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 60,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return kubectl.run(
            self.kubeconfig,
            self.data_dir,
            *args,
            stdin=stdin,
            check=check,
            timeout=timeout,
            env=env,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(data_dir: Path, *extra: str, memory_limit: int | None = None) -> Server:
    """`memory_limit`: bytes of address space the server may map (a test that sends hostile
    bodies caps it, so a regression fails with MemoryError instead of exhausting the machine)."""
    log = data_dir.parent / f"{data_dir.name}.log"
    out = open(log, "a")  # noqa: SIM115 - handed to the child

    proc = subprocess.Popen(
        [KVD, "local", "apiserver", "--data-dir", str(data_dir), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=out,
        text=True,
    )
    out.close()
    if memory_limit is not None:
        # Set from here, not by a preexec_fn: that makes subprocess fork() where it would
        # vfork(), and a test process that has used grpc then runs grpc's fork handlers in the
        # child, whose poller thread dies on the descriptors the child closes before its exec
        # ("epoll_wait error: Bad file descriptor"), and the server never starts.
        resource.prlimit(proc.pid, resource.RLIMIT_AS, (memory_limit, memory_limit))
    assert proc.stdout is not None
    # read to its end (and so never blocking the server on a full pipe), on a thread
    said = Transcript(proc.stdout, what="the apiserver's stdout", diagnose=log.read_text)
    kubeconfig = said.wait_match(r"kubeconfig: (\S+)", timeout=30)
    url = re.search(r"serving (https://\S+)", said.text)
    assert url is not None, said.text
    return Server(data_dir, proc, url.group(1), Path(kubeconfig.group(1)), log)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = start_server(tmp_path / "data")
    yield s
    s.stop()


@pytest.fixture
def with_crds(server: Server) -> Server:
    server.kubectl("apply", "-f", str(CRDS))
    server.kubectl("wait", "--for=condition=established", "--timeout=30s", "crd", "--all")
    return server
