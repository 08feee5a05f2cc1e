"""The handler starts the launchers of many VMIs at once, not a few at a time.

A real handler (in this process) against a real API server, each VMI's launcher played by a small
LauncherService served over gRPC on its own unix socket, where the handler looks for it. Every
stand-in launcher holds its DefineDomain until all of them have received theirs (a barrier): the
VMIs reach Running only if the handler sends the defines concurrently. A handler that drives two
launchers at a time breaks the barrier, its defines fail, and no VMI runs. Events, not a clock,
decide: the barrier counts arrivals.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from kvd.api import crds, keys
from kvd.handler.agent import Handler, HandlerSettings
from kvd.kube import client
from tests.handler.standin import StandIn, serve
from tests.local.apiserver.conftest import start_server
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration  # an API server process and gRPC servers

Json = dict[str, Any]
VMIS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"
NODE = "node-starts"
STARTING_AT_ONCE = 8  # well above the two workers the handler once had
BARRIER_TIMEOUT = 30.0  # only ends the test when the handler does not start them together


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[client.Raw, Path]]:
    """An API server (its audit log in tmp_path/audit.log) serving VMIs, and this node."""
    server = start_server(tmp_path / "api", "--audit-log-path", str(tmp_path / "audit.log"))
    try:
        raw = client.Raw(client.connect(server.kubeconfig))
        for crd in crds.all_crds():
            raw.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        raw.create("/api/v1/nodes", {"metadata": {"name": NODE}})
        wait_for("VMIs served", lambda: _served(raw))
        yield raw, server.kubeconfig
    finally:
        server.stop()


def _served(raw: client.Raw) -> bool:
    try:
        raw.get(VMIS)
    except client.ApiError:
        return False
    return True


def _scheduled_vmi(raw: client.Raw, name: str, pod_uid: str) -> Json:
    """A VMI as the controller leaves it: labelled with this node, Scheduled, its pod here."""
    created: Json = raw.create(
        VMIS,
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": name, "labels": {keys.NODE_NAME: NODE}},
            "spec": {"domain": {"resources": {"requests": {"memory": "64Mi"}}, "devices": {}}},
        },
    )
    status = {"phase": "Scheduled", "nodeName": NODE, "activePods": {pod_uid: NODE}}
    raw.merge_patch(f"{VMIS}/{name}", {"status": status})
    return created


def test_many_vmis_are_defined_and_launched_at_once(
    api: tuple[client.Raw, Path], tmp_path: Path
) -> None:
    raw, kubeconfig = api
    launcher_dir = tmp_path / "launchers"
    barrier = threading.Barrier(STARTING_AT_ONCE, timeout=BARRIER_TIMEOUT)
    servers: list[grpc.Server] = []
    stand_ins: list[StandIn] = []
    handler = None
    try:
        for i in range(STARTING_AT_ONCE):
            pod_uid = f"pod-{i}"
            created = _scheduled_vmi(raw, f"vmi-{i}", pod_uid)
            stand_in = StandIn(created["metadata"]["uid"], barrier)
            (launcher_dir / pod_uid).mkdir(parents=True)
            servers.append(serve(stand_in, launcher_dir / pod_uid / "launcher.sock"))
            stand_ins.append(stand_in)
        handler = Handler(
            HandlerSettings(
                node_name=NODE,
                launcher_dir=launcher_dir,
                state_dir=tmp_path / "state",
                kubeconfig=kubeconfig,
            )
        )
        handler.start()

        def phases() -> list[str]:
            items = raw.get(VMIS)["items"]
            return [(v.get("status") or {}).get("phase", "") for v in items]

        wait_for(
            f"{STARTING_AT_ONCE} VMIs Running",
            lambda: phases() == ["Running"] * STARTING_AT_ONCE,
            timeout=BARRIER_TIMEOUT + 30,
            diagnose=lambda: f"phases {phases()}, broken barrier: {barrier.broken}",
        )
        assert not barrier.broken
        assert [s.defines for s in stand_ins] == [1] * STARTING_AT_ONCE
    finally:
        if handler is not None:
            handler.stop(unschedulable=False)
        for server in servers:
            server.stop(grace=None)


class _WriteDuringDefine:
    """In place of the barrier: while the handler defines the domain, someone else writes the VMI
    (a label), so the status patch the handler then sends starts from a stale copy."""

    broken = False

    def __init__(self, raw: client.Raw, name: str) -> None:
        self.raw, self.name = raw, name

    def wait(self) -> None:
        self.raw.merge_patch(f"{VMIS}/{self.name}", {"metadata": {"labels": {"other": "writer"}}})


def test_a_vmi_written_by_someone_else_meanwhile_still_runs_without_a_get(
    api: tuple[client.Raw, Path], tmp_path: Path
) -> None:
    """The handler's role has no `get` on VMIs: after a 409 it waits for the watch's newer copy."""
    raw, kubeconfig = api
    handler = None
    grpc_server = None
    try:
        created = _scheduled_vmi(raw, "vmi-raced", "pod-raced")
        stand_in = StandIn(created["metadata"]["uid"], _WriteDuringDefine(raw, "vmi-raced"))  # type: ignore[arg-type]
        (tmp_path / "launchers" / "pod-raced").mkdir(parents=True)
        grpc_server = serve(stand_in, tmp_path / "launchers" / "pod-raced" / "launcher.sock")
        handler = Handler(
            HandlerSettings(
                node_name=NODE,
                launcher_dir=tmp_path / "launchers",
                state_dir=tmp_path / "state",
                kubeconfig=kubeconfig,
            )
        )
        handler.start()

        def vmi() -> Json:
            found: Json = raw.get(f"{VMIS}/vmi-raced")
            return found

        wait_for("the VMI Running", lambda: (vmi().get("status") or {}).get("phase") == "Running")
        assert vmi()["metadata"]["labels"]["other"] == "writer"
        events = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
        handlers = [
            (e["verb"], e["responseStatus"]["code"])
            for e in events
            if e["objectRef"].get("name") == "vmi-raced" and "kvd-handler" in e.get("userAgent", "")
        ]
        patches = [code for verb, code in handlers if verb == "patch"]
        assert 409 in patches, (
            f"the race was not provoked: the handler's patches answered {patches}"
        )
        assert [call for call in handlers if call[0] == "get"] == []
    finally:
        if handler is not None:
            handler.stop(unschedulable=False)
        if grpc_server is not None:
            grpc_server.stop(grace=None)
