"""A local cluster (`kvd local up`: API server, node, and kvd's chart: the node's handler and
the controller as pods).
A test creates a VMI; the controller gives it its launcher pod and brings it to Scheduled, and
from there the handler, which these tests are about, takes over."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kvd.local import install
from tests.launcher.harness import vmi_manifest
from tests.local.node.conftest import Cluster, kill, new_cluster
from tests.support.waiting import wait_for

Json = dict[str, Any]
VMIS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"


@dataclass
class HandlerProcess:
    """The handler `kvd local up` runs for the cluster's node: the chart's DaemonSet pod."""

    cluster: Cluster

    @property
    def launcher_dir(self) -> Path:
        return self.cluster.data_dir / "launchers"

    @property
    def state_dir(self) -> Path:
        return self.cluster.data_dir / "handler"

    @property
    def pid(self) -> int:
        return self.cluster.daemon_pid("handler")

    def metrics_address(self) -> tuple[str, int]:
        """(pod IP, port) of its metrics listener."""
        host, _, port = self.cluster.daemon_address("handler", "metrics").rpartition(":")
        return host, int(port)

    def tail(self, lines: int = 40) -> str:
        return self.cluster.daemon_log("handler", lines)

    def kill(self) -> None:
        """kill -9, and keep it down (its DaemonSet selects no node until `restart`): the node
        would otherwise start it again at once."""
        kill(self.pid)
        self._select('{"kvd.test/no-node": "x"}')

    def stop(self) -> None:
        """Down the way a DaemonSet takes its pod away: SIGTERM, with its grace period."""
        self._select('{"kvd.test/no-node": "x"}')

    def restart(self) -> None:
        """Its DaemonSet selects the node again; returns once the new pod is Ready."""
        self._select("null")
        self.cluster.wait_daemon("handler")

    def _select(self, selector: str) -> None:
        patch = f'{{"spec":{{"template":{{"spec":{{"nodeSelector":{selector}}}}}}}}}'
        self.cluster.kubectl(
            "patch", "daemonset", "kvd-handler", "-n", install.NAMESPACE, "--type=merge",
            "-p", patch,
        )  # fmt: skip
        if selector != "null":
            wait_for(
                "the handler pod gone",
                lambda: not install.daemon_pods(self.cluster.raw, "handler"),
                timeout=60,
            )


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
        firmware: Json | None = None,
    ) -> Json:
        """The VMI (the kvd-demo containerDisk, cloud-init `user_data`); returns it once the
        controller has scheduled it."""
        manifest = vmi_manifest(namespace="default", name=name, uid="", user_data=user_data)
        del manifest["metadata"]["uid"]
        manifest["spec"]["terminationGracePeriodSeconds"] = grace
        if network is not None:  # the binding: "bridge" or "masquerade"
            manifest["spec"]["domain"]["devices"]["interfaces"] = [{"name": "default", network: {}}]
            manifest["spec"]["networks"] = [{"name": "default", "pod": {}}]
        if not acpi:
            manifest["spec"]["domain"]["features"] = {"acpi": {"enabled": False}}
        if firmware is not None:
            manifest["spec"]["domain"]["firmware"] = firmware
        self.cluster.raw.create(VMIS, manifest)

        def scheduled() -> Json | None:
            vmi = self.vmi(name) or {}
            return vmi if (vmi.get("status") or {}).get("activePods") else None

        found: Json = wait_for(
            f"VMI {name} to be scheduled", scheduled, timeout=120, diagnose=self.status(name)
        )
        return found

    def vmi(self, name: str) -> Json | None:
        from kvd.kube import client  # noqa: PLC0415

        try:
            found: Json = self.cluster.raw.get(f"{VMIS}/{name}")
        except client.ApiError as exc:
            if exc.not_found:
                return None
            raise
        return found

    def status(self, name: str) -> Callable[[], str]:
        """What a failed wait on VMI `name` shows: its status and the handler's last words."""
        return lambda: (
            f"VMI {name} status: {((self.vmi(name) or {}).get('status'))}\n"
            f"handler log:\n{self.handler.tail()}"
        )

    def wait_vmi(self, name: str, phase: str, *, timeout: float = 120) -> Json:
        def in_phase() -> Json | None:
            vmi = self.vmi(name) or {}
            return vmi if (vmi.get("status") or {}).get("phase") == phase else None

        found: Json = wait_for(
            f"VMI {name} to be {phase}",
            in_phase,
            timeout=timeout,
            interval=0.2,
            diagnose=self.status(name),
        )
        return found

    def wait_vmi_condition(
        self, name: str, kind: str, status: str, *, timeout: float = 120
    ) -> Json:
        def with_condition() -> Json | None:
            vmi = self.vmi(name) or {}
            conditions = (vmi.get("status") or {}).get("conditions") or []
            found = any(c["type"] == kind and c["status"] == status for c in conditions)
            return vmi if found else None

        found: Json = wait_for(
            f"VMI {name} to have condition {kind}={status}",
            with_condition,
            timeout=timeout,
            interval=0.2,
            diagnose=self.status(name),
        )
        return found

    def wait_vmi_gone(self, name: str, *, timeout: float = 60) -> None:
        wait_for(
            f"VMI {name} to be gone", lambda: self.vmi(name) is None, timeout=timeout, interval=0.2
        )

    def wait_launcher_gone(self, vmi: Json, *, timeout: float = 60) -> None:
        """The launcher exited and the handler removed its run dir and its record of the VMI."""
        run_dir = self.handler.launcher_dir / self.launcher_pod_of(vmi)
        record = self.handler.state_dir / "vmis" / f"{vmi['metadata']['uid']}.json"
        wait_for(
            f"{run_dir} and {record} to be removed",
            lambda: not run_dir.exists() and not record.exists(),
            timeout=timeout,
            interval=0.2,
            diagnose=lambda: f"handler log:\n{self.handler.tail()}",
        )

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
