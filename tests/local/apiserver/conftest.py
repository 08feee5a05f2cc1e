"""A real `kvd local apiserver` process per test, and clients for it: the official
`kubernetes` client and real `kubectl` (from the venv), both reading its kubeconfig."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.local import kubectl

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


def start_server(data_dir: Path, *extra: str) -> Server:
    log = data_dir.parent / f"{data_dir.name}.log"
    out = open(log, "a")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        [KVD, "local", "apiserver", "--data-dir", str(data_dir), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=out,
        text=True,
    )
    out.close()
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    url = kubeconfig = None
    while kubeconfig is None:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"apiserver exited {proc.wait()}:\n{log.read_text()}")
        if m := re.search(r"serving (https://\S+)", line):
            url = m.group(1)
        if m := re.search(r"kubeconfig: (\S+)", line):
            kubeconfig = Path(m.group(1))
        assert time.monotonic() < deadline, "apiserver did not start"
    assert url is not None
    return Server(data_dir, proc, url, kubeconfig, log)


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
