"""`kvd handler --metrics-listen` against a real `kvd local apiserver`, without a node runtime or
guests: the ready line names the port, and a scrape counts the node's VMIs by phase and its
reconciles by outcome."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvd import address_file
from kvd.api import crds, kinds
from kvd.kube import client
from tests.local.apiserver.conftest import KVD, Server, start_server
from tests.support import metrics
from tests.support.waiting import wait_for

# Starts a kvd local apiserver and kvd handler processes.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
NODE = "node-m"
VMIS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"
READY = re.compile(r"^kvd handler: ready (\S+) \(metrics on port (\d+)\)$")
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("handler-metrics") / "api")
    raw = client.Raw(client.connect(s.kubeconfig))
    raw.create(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        crds.crd(kinds.KINDS["VirtualMachineInstance"]),
    )
    raw.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}})
    wait_for("the VMI CRD to be served", lambda: raw.get(VMIS), ignoring=(client.ApiError,))
    try:
        yield s
    finally:
        s.stop()


def create_vmi(raw: client.Raw, name: str, *, node: str = NODE, **status: Any) -> None:
    raw.create(
        VMIS,
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": name, "labels": {"kubevirt.io/nodeName": node}},
            "spec": {"domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}},
            "status": status,  # KubeVirt's VMI has no status subresource
        },
    )


def handler(server: Server, tmp: Path, *args: str) -> subprocess.Popen[str]:
    """`kvd handler` of NODE, its log in `tmp/handler.log`."""
    command = [
        KVD, "handler", "--node-name", NODE, "--kubeconfig", str(server.kubeconfig),
        "--launcher-dir", str(tmp / "launchers"), "--state-dir", str(tmp / "state"), *args,
    ]  # fmt: skip
    with open(tmp / "handler.log", "a") as log:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)


def test_a_scrape_counts_the_nodes_vmis_and_reconciles(server: Server, tmp_path: Path) -> None:
    raw = client.Raw(client.connect(server.kubeconfig))
    create_vmi(raw, "fresh")  # no phase yet: Pending
    create_vmi(raw, "running-a", phase="Running")
    create_vmi(raw, "running-b", phase="Running")
    create_vmi(raw, "failed", phase="Failed")
    create_vmi(raw, "elsewhere", node="node-other", phase="Running")  # not this node's
    # scheduled here, but its launcher never answers: reconciled again and again (requeue)
    create_vmi(raw, "starting", phase="Scheduled", activePods={"pod-uid-1": NODE})
    addresses = tmp_path / "handler" / "address.json"
    proc = handler(
        server, tmp_path, "--metrics-listen", "127.0.0.1:0", "--address-file", str(addresses)
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        ready = READY.match(line)
        assert ready, f"{line!r}:\n{(tmp_path / 'handler.log').read_text()}"
        assert ready.group(1) == NODE
        port = int(ready.group(2))
        # what tools read says the same as the line for people, from the handler itself
        listening = address_file.read(addresses)
        assert listening.pid == proc.pid
        assert listening.addresses == {"metrics": f"127.0.0.1:{port}"}

        expected = {
            "Pending": 1,
            "Scheduling": 0,
            "Scheduled": 1,
            "Running": 2,
            "Succeeded": 0,
            "Failed": 1,
            "Unknown": 0,
        }

        def counted() -> tuple[metrics.Samples, dict[str, float]] | None:
            samples = metrics.scrape(port)
            vmis = metrics.by_label(samples, "kvd_handler_vmis", "phase")
            count = metrics.by_label(
                samples, "kvd_handler_reconcile_duration_seconds_count", "outcome"
            )
            done = vmis == expected and count["ok"] >= 4 and count["requeue"] >= 1
            return (samples, count) if done else None

        samples, count = wait_for(
            "the node's 5 VMIs by phase, and 4 ok and 1 requeue reconciles",
            counted,
            timeout=TIMEOUT,
            interval=0.1,
            diagnose=lambda: metrics.scrape(port),
        )
        assert count["error"] == 0
        assert ("kvd_handler_workqueue_depth", ()) in samples
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not addresses.exists()  # a clean stop takes it away


def test_a_taken_metrics_port_fails_the_start(server: Server, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = handler(server, tmp_path, "--metrics-listen", f"127.0.0.1:{port}")
        assert proc.wait(timeout=60) == 1
    log = (tmp_path / "handler.log").read_text()
    assert f"kvd handler: cannot start: cannot listen on 127.0.0.1:{port}" in log
