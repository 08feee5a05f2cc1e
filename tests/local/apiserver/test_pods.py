"""A new Pod as kube-apiserver stores it: Pending, with its QoS class and defaulted requests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from kvd.local.apiserver import pods
from kvd.local.apiserver.registry import Registry
from tests.local.apiserver.conftest import Server

pytestmark = pytest.mark.timeout(120)


def _container(name: str, requests: dict[str, str] | None, limits: dict[str, str] | None) -> Any:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": name, "image": "busybox", "resources": resources}


BOTH = {"cpu": "500m", "memory": "64Mi"}


@pytest.mark.parametrize(
    ("containers", "init", "qos"),
    [
        pytest.param([_container("a", None, None)], [], "BestEffort", id="nothing"),
        pytest.param([_container("a", {"cpu": "0"}, None)], [], "BestEffort", id="zero-request"),
        pytest.param(
            [_container("a", {"ephemeral-storage": "1Gi"}, None)],
            [],
            "BestEffort",
            id="only-other-resources",
        ),
        pytest.param([_container("a", BOTH, BOTH)], [], "Guaranteed", id="requests-are-limits"),
        pytest.param(
            [_container("a", {"cpu": "0.5", "memory": "65536Ki"}, BOTH)],
            [],
            "Guaranteed",
            id="equal-in-other-units",
        ),
        pytest.param([_container("a", None, BOTH)], [], "Guaranteed", id="limits-only"),
        pytest.param([_container("a", {"cpu": "100m"}, None)], [], "Burstable", id="request-only"),
        pytest.param(
            [_container("a", {"cpu": "100m", "memory": "64Mi"}, BOTH)],
            [],
            "Burstable",
            id="request-below-limit",
        ),
        pytest.param([_container("a", None, {"cpu": "1"})], [], "Burstable", id="cpu-limit-only"),
        pytest.param(
            [_container("a", None, BOTH), _container("b", None, None)],
            [],
            "Burstable",
            id="one-container-unlimited",
        ),
        pytest.param(
            [_container("a", None, BOTH)],
            [_container("i", {"cpu": "100m"}, None)],
            "Burstable",
            id="init-container-counts",
        ),
    ],
)
def test_qos_class_is_kubernetes(containers: list[Any], init: list[Any], qos: str) -> None:
    obj = {"spec": {"containers": containers, "initContainers": init}}
    pods.PodDefaults().on_create(_pods_resource(), obj)
    assert obj["status"]["qosClass"] == qos


def test_pod_level_resources_decide_the_qos_class_when_set() -> None:
    spec = {
        "resources": {"requests": BOTH, "limits": BOTH},
        "containers": [_container("a", {"cpu": "100m"}, None)],
    }
    assert pods.qos_class(spec) == "Guaranteed"
    assert pods.qos_class({**spec, "resources": {"requests": BOTH}}) == "Burstable"


def _pods_resource() -> Any:
    resource = Registry().get("", "pods")
    assert resource is not None
    return resource


def test_a_new_pod_is_pending_whatever_status_it_was_sent_with(server: Server) -> None:
    core = client.CoreV1Api(server.api())
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [_container("c", None, BOTH)]},
        "status": {"phase": "Running", "podIP": "10.0.0.1"},
    }
    created = core.create_namespaced_pod("default", body, _preload_content=False)
    stored = json.loads(created.data)
    assert stored["status"] == {"phase": "Pending", "qosClass": "Guaranteed"}
    # the limits were copied into the requests, as kube's defaults do
    assert stored["spec"]["containers"][0]["resources"]["requests"] == BOTH

    server.kubectl("run", "other", "--image=busybox", "--restart=Never")
    pending = server.kubectl(
        "get", "pods", "--field-selector=status.phase=Pending", "-o", "name"
    ).stdout.split()
    assert pending == ["pod/other", "pod/p"]
    # the node's report goes through /status and changes what the selector finds
    core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running"}})
    pending = server.kubectl(
        "get", "pods", "--field-selector=status.phase=Pending", "-o", "name"
    ).stdout.split()
    assert pending == ["pod/other"]


def test_scheduling_gates_hold_a_pod_with_kubes_condition(server: Server) -> None:
    core = client.CoreV1Api(server.api())
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "gated"},
        "spec": {
            "schedulingGates": [{"name": "example.com/wait"}],
            "containers": [_container("c", None, None)],
        },
    }
    created = json.loads(core.create_namespaced_pod("default", body, _preload_content=False).data)
    assert created["status"]["qosClass"] == "BestEffort"
    (condition,) = created["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "PodScheduled",
        "False",
        "SchedulingGated",
    )
    assert condition["message"] == pods.SCHEDULING_GATED
