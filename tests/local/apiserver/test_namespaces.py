"""A Namespace's life as kube-apiserver and its namespace controller lead it: Active, then
Terminating while its content goes (finalizers and grace periods honoured, with kube's
conditions), gone only when empty, and a name made again starts empty."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kvd.local.apiserver.serviceaccounts.controller import ROOT_CA
from tests.local.apiserver.conftest import Server, start_server

pytestmark = pytest.mark.timeout(120)
HOLD = "example.com/hold"


def _wait_for(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def _namespace(core: client.CoreV1Api, name: str) -> dict[str, Any] | None:
    try:
        answer = core.read_namespace(name, _preload_content=False)
    except ApiException as exc:
        assert exc.status == 404, exc
        return None
    parsed: dict[str, Any] = json.loads(answer.data)
    return parsed


def _conditions(ns: dict[str, Any] | None) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c["reason"], c["message"])
        for c in ((ns or {}).get("status") or {}).get("conditions") or []
    }


def _cm(name: str, finalizers: list[str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "finalizers": finalizers or []}, "data": {"k": "v"}}


def test_a_namespace_is_created_active_with_kubes_finalizer_and_name_label(server: Server) -> None:
    server.kubectl("create", "namespace", "fresh")
    core = client.CoreV1Api(server.api())
    ns = _namespace(core, "fresh")
    assert ns is not None
    assert ns["status"] == {"phase": "Active"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "fresh"}
    # only /finalize changes the spec's finalizers; an update keeps them
    core.patch_namespace("fresh", {"spec": {"finalizers": []}, "metadata": {"labels": None}})
    ns = _namespace(core, "fresh")
    assert ns is not None and ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "fresh"}
    assert "Active" in server.kubectl("get", "namespace", "fresh").stdout


def test_a_namespace_terminates_until_its_content_is_gone(server: Server) -> None:
    core = client.CoreV1Api(server.api())
    server.kubectl("create", "namespace", "doomed")
    core.create_namespaced_config_map("doomed", _cm("held", [HOLD]))
    core.create_namespaced_config_map("doomed", _cm("free"))
    server.kubectl("run", "p", "--image=busybox", "--restart=Never", "-n", "doomed")

    server.kubectl("delete", "namespace", "doomed", "--wait=false")

    def stuck() -> dict[str, Any] | None:
        ns = _namespace(core, "doomed")
        return ns if "NamespaceContentRemaining" in _conditions(ns) else None

    ns = _wait_for(stuck, "the namespace controller's first pass")
    assert ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert _conditions(ns) == {
        "NamespaceDeletionDiscoveryFailure": (
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered",
        ),
        "NamespaceDeletionGroupVersionParsingFailure": (
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed",
        ),
        "NamespaceDeletionContentFailure": (
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization",
        ),
        "NamespaceContentRemaining": (
            "True",
            "SomeResourcesRemain",
            "Some resources are remaining: configmaps. has 1 resource instances",
        ),
        "NamespaceFinalizersRemaining": (
            "True",
            "SomeFinalizersRemain",
            f"Some content in the namespace has finalizers remaining: {HOLD} in 1 resource "
            "instances",
        ),
    }
    assert "Terminating" in server.kubectl("get", "namespace", "doomed").stdout
    # what nothing held went; the held one waits for its finalizer
    (held,) = core.list_namespaced_config_map("doomed").items
    assert held.metadata.name == "held" and held.metadata.deletion_timestamp is not None
    assert core.list_namespaced_pod("doomed").items == []

    # nothing new gets in
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("doomed", _cm("late"))
    status = json.loads(caught.value.body)
    assert (caught.value.status, status["reason"]) == (403, "Forbidden")
    assert status["message"] == (
        'configmaps "late" is forbidden: unable to create new content in namespace doomed '
        "because it is being terminated"
    )
    assert status["details"]["causes"] == [
        {
            "reason": "NamespaceTerminating",
            "message": "namespace doomed is being terminated",
            "field": "metadata.namespace",
        }
    ]
    # another DELETE changes nothing
    again = json.loads(core.delete_namespace("doomed", _preload_content=False).data)
    assert again["metadata"]["resourceVersion"] == ns["metadata"]["resourceVersion"]

    # the finalizer goes, then the namespace (a restart in between: the controller resumes)
    server.stop()
    server = start_server(server.data_dir)
    try:
        core = client.CoreV1Api(server.api())
        core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": None}})
        server.kubectl("wait", "--for=delete", "namespace/doomed", "--timeout=30s")

        # the name made again starts empty
        server.kubectl("create", "namespace", "doomed")
        # (kube-root-ca.crt aside, which kube's publisher puts in every namespace)
        names = [c.metadata.name for c in core.list_namespaced_config_map("doomed").items]
        assert names in ([], [ROOT_CA])
        ns = _namespace(core, "doomed")
        assert ns is not None and ns["status"] == {"phase": "Active"}
    finally:
        server.stop()


def test_a_bound_pod_holds_its_namespace_until_its_node_confirms(server: Server) -> None:
    core = client.CoreV1Api(server.api())
    server.kubectl("create", "namespace", "nodes")
    pod = {
        "metadata": {"name": "bound"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i"}]},
    }
    core.create_namespaced_pod("nodes", pod)
    core.delete_namespace("nodes")

    def waiting() -> dict[str, Any] | None:
        ns = _namespace(core, "nodes")
        remaining = _conditions(ns).get("NamespaceContentRemaining")
        return ns if remaining and remaining[0] == "True" else None

    ns = _wait_for(waiting, "the pod to hold the namespace")
    assert _conditions(ns)["NamespaceContentRemaining"][2] == (
        "Some resources are remaining: pods. has 1 resource instances"
    )
    # a pod waiting for its grace period is not a failure
    assert _conditions(ns)["NamespaceDeletionContentFailure"][0] == "False"
    marked = core.read_namespaced_pod("bound", "nodes")
    assert marked.metadata.deletion_grace_period_seconds == 30

    core.delete_namespaced_pod("bound", "nodes", grace_period_seconds=0)  # the node confirms
    _wait_for(lambda: _namespace(core, "nodes") is None, "the namespace to go")


def test_the_system_namespaces_may_not_be_deleted(server: Server) -> None:
    done = server.kubectl("delete", "namespace", "kube-system", check=False)
    assert done.returncode != 0
    assert 'namespaces "kube-system" is forbidden: this namespace may not be deleted' in (
        done.stderr
    )
    core = client.CoreV1Api(server.api())
    ns = _namespace(core, "kube-system")
    assert ns is not None and not ns["metadata"].get("deletionTimestamp")
