"""A real `kvd controller` process against a real `kvd local apiserver`, with no node, for the
controller's integration tests: `env` (one per test module) starts both; the tests play the
node's and the handler's parts where needed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvd.api import crds
from kvd.kube import client
from tests.local.apiserver.conftest import KVD, Server, start_server
from tests.support import metrics
from tests.support.waiting import wait_for

Json = dict[str, Any]
VMIS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"
PODS = "/api/v1/namespaces/default/pods"
CONFIG = "/api/v1/namespaces/kvd/configmaps"


class Env:
    def __init__(self, server: Server, launcher_dir: Path, log: Path) -> None:
        self.server = server
        self.raw = client.Raw(client.connect(server.kubeconfig))
        self.launcher_dir = launcher_dir
        self.log = log  # the controller's stderr: its JSON log
        self.metrics_port = 0  # the controller's metrics listener, once it runs

    def cached_phases(self) -> dict[str, float]:
        """How many VMIs the controller's informer cache holds in each phase (its metrics)."""
        samples = metrics.scrape(self.metrics_port)
        return metrics.by_label(samples, "kvd_controller_vmis", "phase")

    def vmi(self, name: str) -> Json:
        found: Json = self.raw.get(f"{VMIS}/{name}")
        return found

    def create_vmi(self, name: str, **spec: Any) -> Json:
        body = {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": name},
            "spec": {
                "domain": {"resources": {"requests": {"memory": "128Mi"}}, "devices": {}},
                **spec,
            },
        }
        created: Json = self.raw.create(VMIS, body)
        return created

    def logged(self, event: str) -> list[Json]:
        """The controller's log entries for `event`, oldest first."""
        entries = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("event") == event:
                entries.append(entry)
        return entries

    def pods_of(self, vmi: Json) -> list[Json]:
        uid = vmi["metadata"]["uid"]
        items: list[Json] = self.raw.get(PODS, {"labelSelector": f"kubevirt.io/created-by={uid}"})[
            "items"
        ]
        return items

    def the_pod(self, vmi: Json) -> Json:
        pods = wait_for("one launcher pod", lambda: self.pods_of(vmi))
        assert len(pods) == 1, pods
        return pods[0]

    def condition(self, name: str, kind: str) -> Json | None:
        conditions = (self.vmi(name).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == kind), None)

    def events(self, name: str) -> list[Json]:
        items: list[Json] = self.raw.get(
            "/api/v1/namespaces/default/events",
            {"fieldSelector": f"involvedObject.name={name}"},
        )["items"]
        return items

    def pod_status(self, pod: Json, status: Json, *, node: str = "") -> None:
        """What the node would write."""
        name = pod["metadata"]["name"]
        if node:
            self.raw.create(
                f"{PODS}/{name}/binding",
                {
                    "apiVersion": "v1",
                    "kind": "Binding",
                    "metadata": {"name": name},
                    "target": {"kind": "Node", "name": node},
                },
            )
        self.raw.merge_patch(f"{PODS}/{name}/status", {"status": status})


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("controller")
    server = start_server(base / "api")
    e = Env(server, base / "launchers", base / "controller.log")
    for crd in crds.all_crds():  # the controller watches DataVolumes too
        e.raw.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    e.raw.create("/api/v1/namespaces", {"metadata": {"name": "kvd"}})
    wait_for("CRDs served", lambda: _served(e.raw))
    log = e.log.open("w")
    args = [
        KVD, "controller", "--kubeconfig", str(server.kubeconfig), "--namespace", "kvd",
        "--launcher-dir", str(e.launcher_dir), "--identity", "test",
        "--node-heartbeat-timeout", "3", "--metrics-listen", "127.0.0.1:0",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        ready = re.fullmatch(
            r"kvd controller: ready test \(leading\) \(metrics on port (\d+)\)\n", line
        )
        assert ready, f"{line!r}:\n{(base / 'controller.log').read_text()}"
        e.metrics_port = int(ready.group(1))
        yield e
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout=20)
        finally:
            log.close()
            server.stop()  # also when the controller did not stop cleanly
    assert code == 0, f"kvd controller exited {code} on SIGTERM"


def _served(raw: client.Raw) -> bool:
    try:
        raw.get(VMIS)
    except client.ApiError:
        return False
    return True
