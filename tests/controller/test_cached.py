"""What the controller caches of a launcher pod (kvd.controller.cached): everything its readers
read gives the same answer on the trimmed pod as on the whole one, and the rest is gone."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kvd.controller import cached, phase, render, vmi, watchdog
from kvd.kube import transforms
from tests.controller.test_render import CONFIG
from tests.controller.test_render import vmi as a_vmi

Json = dict[str, Any]


def whole_pod(status: Json, *, deleting: bool = False) -> Json:
    """A launcher pod as the server returns it: rendered, then what the server and node add."""
    pod = render.launcher_pod(a_vmi(), CONFIG)
    pod["metadata"].update(
        name="virt-launcher-demo-abcde",
        uid="p-1",
        resourceVersion="42",
        creationTimestamp="2026-12-07T12:00:00Z",
        managedFields=[{"manager": "kvd-controller", "operation": "Update", "fieldsV1": {}}],
    )
    pod["metadata"].setdefault("annotations", {})[transforms.LAST_APPLIED] = "{}"
    if deleting:
        pod["metadata"]["deletionTimestamp"] = "2026-12-07T12:05:00Z"
    pod["spec"]["nodeName"] = "n1"
    pod["status"] = status
    return pod


def container(name: str, state: Json) -> Json:
    return {
        "name": name,
        "image": "kvd:1",
        "imageID": "sha256:0",
        "containerID": "kvd://0",
        "restartCount": 0,
        "ready": "running" in state,
        "started": "running" in state,
        "state": state,
        "lastState": {},
    }


STATUSES = [
    pytest.param({"phase": "Pending"}, id="new"),
    pytest.param(
        {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient cpu.",
                }
            ],
        },
        id="unschedulable",
    ),
    pytest.param(
        {
            "phase": "Pending",
            "containerStatuses": [
                container("compute", {"waiting": {"reason": "ErrImagePull", "message": "no"}})
            ],
        },
        id="image-error",
    ),
    pytest.param(
        {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                container("compute", {"running": {"startedAt": "2026-12-07T12:00:01Z"}}),
                container("guest-console-log", {"running": {}}),
            ],
        },
        id="running",
    ),
    pytest.param(
        {
            "phase": "Failed",
            "initContainerStatuses": [container("init", {"terminated": {"exitCode": 0}})],
            "containerStatuses": [
                container("compute", {"terminated": {"exitCode": 3, "reason": "Error"}})
            ],
        },
        id="launcher-exited",
    ),
    pytest.param(
        {"phase": "Failed", "reason": "Evicted", "message": "the node was low on memory"},
        id="evicted",
    ),
]


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("deleting", [False, True])
def test_every_reader_sees_the_same_on_the_cached_pod(status: Json, deleting: bool) -> None:
    whole = whole_pod(status, deleting=deleting)
    trimmed = copy.deepcopy(whole)
    cached.launcher_pod(trimmed)
    assert phase.view(trimmed) == phase.view(whole)
    assert vmi.created_by(trimmed) == vmi.created_by(whole) != []
    assert vmi.owner_key(trimmed) == vmi.owner_key(whole) == "ns/demo"
    running = {"status": {"phase": "Running"}}
    assert watchdog.orphaned(running, [trimmed]) == watchdog.orphaned(running, [whole])


def test_the_cached_pod_keeps_none_of_the_rest() -> None:
    whole = whole_pod(STATUSES[3].values[0])
    trimmed = copy.deepcopy(whole)
    cached.launcher_pod(trimmed)
    assert trimmed["spec"] == {"nodeName": "n1"}
    assert set(trimmed["metadata"]) <= set(cached.POD_METADATA)
    assert "managedFields" not in trimmed["metadata"]
    assert "annotations" not in trimmed["metadata"]
    assert "podIP" not in trimmed["status"]
    for c in trimmed["status"]["containerStatuses"]:
        assert set(c) == {"name", "state"}
    assert len(json.dumps(trimmed)) * 3 < len(json.dumps(whole))
    again = copy.deepcopy(trimmed)
    cached.launcher_pod(again)
    assert again == trimmed  # idempotent
