"""End to end: `kvd local up` (API server, node, and kvd installed from its chart) driven the
way a user does, with `kubectl apply -f` of KubeVirt manifests, `kubectl get`, `kubectl logs` and
`kubectl delete`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.local.node.conftest import Cluster, new_cluster
from tests.support import metrics
from tests.support.waiting import wait_for

Json = dict[str, Any]


def vmi_manifest(
    name: str,
    *,
    marker: str,
    api_version: str = "kubevirt.io/v1",
    image: str = "kvd-demo",
    cloud_init_disk: bool = True,
) -> str:
    """A KubeVirt VMI on the demo guest whose cloud-init script prints `marker`, as YAML."""
    disks: list[Json] = [{"name": "containerdisk", "disk": {"bus": "virtio"}}]
    if cloud_init_disk:
        disks.append({"name": "cloudinitdisk", "disk": {"bus": "virtio"}})
    manifest = {
        "apiVersion": api_version,
        "kind": "VirtualMachineInstance",
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 10,
            "domain": {
                "resources": {"requests": {"memory": "128Mi"}},
                "devices": {"disks": disks},
            },
            "volumes": [
                {"name": "containerdisk", "containerDisk": {"image": image}},
                {
                    "name": "cloudinitdisk",
                    "cloudInitNoCloud": {"userData": f"#!/bin/sh\necho {marker}\n"},
                },
            ],
        },
    }
    return yaml.safe_dump(manifest)


@dataclass
class E2E:
    cluster: Cluster

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> Any:
        return self.cluster.kubectl(*args, stdin=stdin, check=check, timeout=120)

    def apply(self, manifest: str) -> None:
        self.kubectl("apply", "-f", "-", stdin=manifest)

    def vmi(self, name: str) -> Json | None:
        done = self.kubectl("get", "vmi", name, "-o", "json", check=False)
        if done.returncode != 0:
            assert "NotFound" in done.stderr, done.stderr
            return None
        found: Json = json.loads(done.stdout)
        return found

    def wait_vmi(self, name: str, phase: str, *, timeout: float = 120) -> Json:
        def in_phase() -> Json | None:
            vmi = self.vmi(name) or {}
            return vmi if (vmi.get("status") or {}).get("phase") == phase else None

        found: Json = wait_for(
            f"VMI {name} to be {phase}",
            in_phase,
            timeout=timeout,
            interval=0.2,
            diagnose=lambda: (
                f"VMI {name} status: {(self.vmi(name) or {}).get('status')}\n"
                f"controller log:\n{self.log_tail('controller')}"
            ),
        )
        return found

    def pods_of(self, vmi: Json) -> list[Json]:
        uid = vmi["metadata"]["uid"]
        done = self.kubectl("get", "pods", "-l", f"kubevirt.io/created-by={uid}", "-o", "json")
        items: list[Json] = json.loads(done.stdout)["items"]
        return items

    def log_tail(self, component: str, lines: int = 30) -> str:
        """The last lines of kvd's `component` (its pods' logs, through kubectl)."""
        return self.cluster.daemon_log(component, lines)

    def scrape(self, component: str) -> metrics.Samples:
        """`GET /metrics` of the Ready `component` pod."""
        host, port = self.listening(component, "metrics")
        return metrics.scrape(port, host=host)

    def listening(self, component: str, port: str) -> tuple[str, int]:
        """(pod IP, port) of the Ready `component` pod's named port ("metrics", "grpc")."""
        host, _, number = self.cluster.daemon_address(component, port).rpartition(":")
        return host, int(number)

    @property
    def launcher_dir(self) -> Path:
        return self.cluster.data_dir / "launchers"


@pytest.fixture(scope="module")
def e2e() -> Iterator[E2E]:
    cluster = new_cluster()
    try:
        cluster.up()
        yield E2E(cluster)
    finally:
        cluster.down()
        leftovers = cluster.leftovers()
        if os.environ.get("KVD_KEEP_TEST_DIRS") is None:
            shutil.rmtree(cluster.data_dir, ignore_errors=True)
    assert leftovers == []
