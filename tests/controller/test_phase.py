"""The controller's phase table: (VMI phase, deleting, launcher pods) → next step, and how a
launcher pod's status reads to it."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.controller import phase
from kvd.controller.phase import Condition, Pod, Step, decide, view


def pod(phase_: str = "Pending", **kw: Any) -> Pod:
    return Pod(name=kw.pop("name", "virt-launcher-a-x"), uid="u1", phase=phase_, **kw)


RUNNING = pod("Running", node="n1", created="2026-01-01T00:00:00Z")
ENDED = pod("Failed", node="n1", failure=("OOMKilled", "out of memory"))


@pytest.mark.parametrize(
    ("vmi_phase", "pods", "kw", "expected"),
    [
        pytest.param("", [], {}, Step(phase="Scheduling", create_pod=True), id="new-creates"),
        pytest.param(
            "Pending", [], {}, Step(phase="Scheduling", create_pod=True), id="pending-creates"
        ),
        pytest.param(
            "Pending",
            [pod()],
            {},
            Step(phase="Scheduling"),
            id="pending-with-pod-from-before-a-restart-does-not-create",
        ),
        pytest.param("Scheduling", [pod()], {}, Step(phase="Scheduling"), id="pod-pending-waits"),
        pytest.param(
            "Scheduling",
            [pod(unschedulable="0/1 nodes are available")],
            {},
            Step(
                phase="Scheduling",
                conditions=(
                    Condition("PodScheduled", False, "Unschedulable", "0/1 nodes are available"),
                ),
            ),
            id="unschedulable-is-a-condition",
        ),
        pytest.param(
            "Scheduling",
            [pod(container_error=("ErrImagePull", 'image "x" not found'))],
            {},
            Step(
                phase="Scheduling",
                conditions=(
                    Condition("Synchronized", False, "ErrImagePull", 'image "x" not found'),
                ),
            ),
            id="image-error-is-a-condition",
        ),
        pytest.param(
            "Scheduling",
            [RUNNING],
            {},
            Step(phase="Scheduled", scheduled_on=RUNNING),
            id="pod-running-schedules",
        ),
        pytest.param(
            "Pending",
            [RUNNING],
            {},
            Step(phase="Scheduled", scheduled_on=RUNNING),
            id="pending-pod-running-schedules",
        ),
        pytest.param(
            "Scheduling",
            [pod("Running")],
            {},
            Step(phase="Scheduling"),
            id="running-without-node-waits",
        ),
        pytest.param(
            "Scheduling",
            [ENDED],
            {},
            Step(phase="Failed", reason="OOMKilled", message="out of memory"),
            id="pod-failed-carries-its-reason",
        ),
        pytest.param(
            "Scheduling",
            [pod("Succeeded")],
            {},
            Step(
                phase="Failed",
                reason="LauncherPodFailed",
                message="launcher pod virt-launcher-a-x ended Succeeded",
            ),
            id="pod-ended-before-scheduled-fails",
        ),
        pytest.param(
            "Scheduling",
            [],
            {},
            Step(phase="Failed", reason="LauncherPodDeleted", message="the launcher pod is gone"),
            id="pod-gone-fails",
        ),
        pytest.param(
            "Scheduled",
            [],
            {},
            Step(phase="Failed", reason="LauncherPodDeleted", message="the launcher pod is gone"),
            id="scheduled-pod-gone-fails",
        ),
        pytest.param(
            "Scheduled", [RUNNING], {}, Step(phase="Scheduled", owned=False), id="scheduled-waits"
        ),
        pytest.param(
            "Scheduled",
            [pod("Running", node="n1", launcher_exited=True, failure=("Error", "exit 1"))],
            {},
            Step(phase="Failed", reason="Error", message="exit 1"),
            id="scheduled-launcher-exited-fails-though-the-pod-runs",
        ),
        pytest.param(
            "Scheduling",
            [pod("Running", node="n1", launcher_exited=True, failure=("Error", "exit 1"))],
            {},
            Step(phase="Failed", reason="Error", message="exit 1"),
            id="scheduling-launcher-exited-fails",
        ),
        pytest.param("Running", [], {}, Step(phase="Running", owned=False), id="running-handler"),
        # Unknown says nothing of where the VMI is: the pods decide, and no pod is ever created
        pytest.param(
            "Unknown",
            [],
            {},
            Step(phase="Failed", reason="LauncherPodDeleted", message="the launcher pod is gone"),
            id="unknown-pod-gone-fails",
        ),
        pytest.param(
            "Unknown",
            [RUNNING],
            {},
            Step(phase="Scheduled", scheduled_on=RUNNING),
            id="unknown-pod-running-schedules",
        ),
        pytest.param(
            "Succeeded", [ENDED], {}, Step(phase="Succeeded", owned=False), id="final-keeps-pod"
        ),
        # deletion
        pytest.param(
            "Scheduling",
            [pod(name="p1")],
            {"deleting": True},
            Step(phase="Scheduling", delete_pods=("p1",)),
            id="delete-before-scheduled-deletes-pods",
        ),
        pytest.param(
            "Scheduling",
            [pod(deleting=True)],
            {"deleting": True},
            Step(phase="Scheduling"),
            id="delete-waits-for-pod-to-go",
        ),
        pytest.param(
            "Pending",
            [],
            {"deleting": True},
            Step(
                phase="Failed",
                reason="Deleted",
                message="deleted before it ran",
                remove_finalizer=True,
            ),
            id="delete-without-pods-ends-and-releases",
        ),
        pytest.param(
            "Running",
            [RUNNING],
            {"deleting": True},
            Step(phase="Running", owned=False, delete_pods=(RUNNING.name,)),
            id="delete-running-deletes-pods-handler-keeps-status",
        ),
        pytest.param(
            "Running",
            [phase.Pod(name="p", uid="u", phase="Running", deleting=True)],
            {"deleting": True},
            Step(phase="Running", owned=False),
            id="delete-running-waits-for-launcher",
        ),
        pytest.param(
            "Scheduled",
            [],
            {"deleting": True},
            Step(
                phase="Failed",
                reason="Deleted",
                message="deleted; its launcher pod is gone and no handler ended it",
                remove_finalizer=True,
            ),
            id="delete-launcher-gone-unended-ends-it",
        ),
        pytest.param(
            "Succeeded",
            [ENDED],
            {"deleting": True},
            Step(phase="Succeeded", delete_pods=(ENDED.name,)),
            id="delete-final-deletes-pods",
        ),
        pytest.param(
            "Succeeded",
            [],
            {"deleting": True},
            Step(phase="Succeeded", remove_finalizer=True),
            id="delete-final-no-pods-releases",
        ),
    ],
)
def test_decide(vmi_phase: str, pods: list[Pod], kw: dict[str, Any], expected: Step) -> None:
    assert decide(vmi_phase, pods, **kw) == expected


def test_oldest_live_pod_counts() -> None:
    older = pod("Running", name="old", node="n1", created="2026-01-01T00:00:00Z")
    newer = pod("Failed", name="new", node="n1", created="2026-01-01T00:00:05Z")
    assert decide("Scheduling", [newer, older]).scheduled_on == older


def launcher(status: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "uid": "u", "creationTimestamp": "t", **meta},
        "spec": {"nodeName": "n1"},
        "status": status,
    }


@pytest.mark.parametrize(
    ("status", "meta", "expected"),
    [
        pytest.param(
            {"phase": "Running"},
            {},
            Pod(name="p", uid="u", phase="Running", node="n1", created="t"),
            id="running",
        ),
        pytest.param(
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes",
                    }
                ],
            },
            {},
            Pod(name="p", uid="u", node="n1", created="t", unschedulable="0/1 nodes"),
            id="unschedulable",
        ),
        pytest.param(
            {
                "phase": "Pending",
                "containerStatuses": [
                    {"name": "compute", "state": {"waiting": {"reason": "ContainerCreating"}}},
                    {
                        "name": "guest-console-log",
                        "state": {"waiting": {"reason": "ErrImagePull", "message": "no image y"}},
                    },
                ],
            },
            {},
            Pod(
                name="p",
                uid="u",
                node="n1",
                created="t",
                container_error=("ErrImagePull", "no image y"),
            ),
            id="image-error",
        ),
        pytest.param(
            {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": "compute",
                        "state": {
                            "waiting": {
                                "reason": "CreateContainerConfigError",
                                "message": 'configmap "c" not found',
                            }
                        },
                    },
                ],
            },
            {},
            Pod(
                name="p",
                uid="u",
                node="n1",
                created="t",
                container_error=("CreateContainerConfigError", 'configmap "c" not found'),
            ),
            id="config-error",
        ),
        pytest.param(
            {
                "phase": "Failed",
                "containerStatuses": [
                    {"name": "compute", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}}
                ],
            },
            {},
            Pod(
                name="p",
                uid="u",
                phase="Failed",
                node="n1",
                created="t",
                failure=("Error", "the launcher exited with code 2"),
                launcher_exited=True,
            ),
            id="launcher-exit",
        ),
        pytest.param(
            {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "compute",
                        "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
                    },
                    {"name": "guest-console-log", "state": {"running": {}}},
                ],
            },
            {},
            Pod(
                name="p",
                uid="u",
                phase="Running",
                node="n1",
                created="t",
                failure=("Error", "the launcher exited with code 1"),
                launcher_exited=True,
            ),
            id="launcher-exit-console-runs-on",
        ),
        pytest.param(
            {"phase": "Failed", "reason": "Evicted", "message": "low on memory"},
            {"deletionTimestamp": "t2"},
            Pod(
                name="p",
                uid="u",
                phase="Failed",
                node="n1",
                created="t",
                deleting=True,
                failure=("Evicted", "low on memory"),
            ),
            id="pod-reason-first",
        ),
    ],
)
def test_view(status: dict[str, Any], meta: dict[str, Any], expected: Pod) -> None:
    assert view(launcher(status, **meta)) == expected
