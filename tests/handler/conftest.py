"""A local cluster (`kvd local up`: API server, node, the node's handler and the controller).
A test creates a VMI; the controller gives it its launcher pod and brings it to Scheduled, and
from there the handler, which these tests are about, takes over."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.launcher.harness import vmi_manifest
from tests.local.node.conftest import Cluster, kill, new_cluster

Json = dict[str, Any]
VMIS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"


@dataclass
class HandlerProcess:
    """The handler `kvd local up` runs for the cluster's node."""

    cluster: Cluster

    @property
    def launcher_dir(self) -> Path:
        return self.cluster.data_dir / "launchers"

    @property
    def state_dir(self) -> Path:
        return self.cluster.data_dir / "handler"

    @property
    def log(self) -> Path:
        return self.cluster.data_dir / "logs" / "handler.log"

    @property
    def pid(self) -> int:
        return self.cluster.components()["handler"]

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def kill(self) -> None:
        kill(self.pid)

    def restart(self) -> None:
        """`kvd local up` brings back what is not running: the handler."""
        self.cluster.up()


@dataclass
class Env:
    cluster: Cluster
    handler: HandlerProcess

    def create_vmi(
        self,
        name: str,
        *,
        user_data: str = "#!/bin/sh\necho hello\n",
        grace: int = 30,
        acpi: bool = True,
        network: str | None = None,
    ) -> Json:
        """The VMI (the kvd-demo containerDisk, cloud-init `user_data`); returns it once the
        controller has scheduled it."""
        manifest = vmi_manifest(namespace="default", name=name, uid="", user_data=user_data)
        del manifest["metadata"]["uid"]
        manifest["spec"]["terminationGracePeriodSeconds"] = grace
        if network is not None:  # the binding: "bridge", or one the launcher refuses
            manifest["spec"]["domain"]["devices"]["interfaces"] = [{"name": "default", network: {}}]
            manifest["spec"]["networks"] = [{"name": "default", "pod": {}}]
        if not acpi:
            manifest["spec"]["domain"]["features"] = {"acpi": {"enabled": False}}
        self.cluster.raw.create(VMIS, manifest)
        deadline = time.monotonic() + 120
        while not ((vmi := self.vmi(name) or {}).get("status") or {}).get("activePods"):
            assert time.monotonic() < deadline, f"VMI {name} not scheduled: {vmi.get('status')}"
            time.sleep(0.1)
        return vmi

    def vmi(self, name: str) -> Json | None:
        from kvd.kube import client  # noqa: PLC0415

        try:
            found: Json = self.cluster.raw.get(f"{VMIS}/{name}")
        except client.ApiError as exc:
            if exc.not_found:
                return None
            raise
        return found

    def wait_vmi(self, name: str, phase: str, *, timeout: float = 120) -> Json:
        deadline = time.monotonic() + timeout
        last: Json | None = None
        while time.monotonic() < deadline:
            last = self.vmi(name)
            if last is not None and (last.get("status") or {}).get("phase") == phase:
                return last
            time.sleep(0.2)
        raise AssertionError(
            f"VMI {name} not {phase} in {timeout}s: {(last or {}).get('status')}\n"
            f"handler log:\n{self.handler.tail()}"
        )

    def wait_vmi_condition(
        self, name: str, kind: str, status: str, *, timeout: float = 120
    ) -> Json:
        deadline = time.monotonic() + timeout
        last: Json | None = None
        while time.monotonic() < deadline:
            last = self.vmi(name)
            conditions = ((last or {}).get("status") or {}).get("conditions") or []
            if any(c["type"] == kind and c["status"] == status for c in conditions):
                return last or {}
            time.sleep(0.2)
        raise AssertionError(
            f"VMI {name}: condition {kind} not {status} in {timeout}s: "
            f"{(last or {}).get('status')}\nhandler log:\n{self.handler.tail()}"
        )

    def wait_vmi_gone(self, name: str, *, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.vmi(name) is not None:
            assert time.monotonic() < deadline, f"VMI {name} still there after {timeout}s"
            time.sleep(0.2)

    def wait_launcher_gone(self, vmi: Json, *, timeout: float = 60) -> None:
        """The launcher exited and the handler removed its run dir and its record of the VMI."""
        run_dir = self.handler.launcher_dir / self.launcher_pod_of(vmi)
        record = self.handler.state_dir / "vmis" / f"{vmi['metadata']['uid']}.json"
        deadline = time.monotonic() + timeout
        while run_dir.exists() or record.exists():
            assert time.monotonic() < deadline, (
                f"{run_dir} or {record} still there after {timeout}s:\n{self.handler.tail()}"
            )
            time.sleep(0.2)

    def launcher_pod_name(self, vmi: Json) -> str:
        uid = self.launcher_pod_of(vmi)
        pods = self.cluster.raw.get("/api/v1/namespaces/default/pods")["items"]
        return str(next(p["metadata"]["name"] for p in pods if p["metadata"]["uid"] == uid))

    def launcher_pod_of(self, vmi: Json) -> str:
        return str(next(iter((vmi.get("status") or {}).get("activePods") or {})))


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    cluster = new_cluster()
    try:
        cluster.up()
        yield Env(cluster, HandlerProcess(cluster))
    finally:
        cluster.down()
        if os.environ.get("KVD_KEEP_TEST_DIRS") is None:
            shutil.rmtree(cluster.data_dir, ignore_errors=True)
