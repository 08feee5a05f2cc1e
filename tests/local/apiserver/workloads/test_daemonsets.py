"""DaemonSets with real kubectl against a real API server with two Node objects (a stand-in
writes the pods' readiness; the pods are not bound, since no node runs here): one pod per
eligible node, pinned as kube pins it, taints honoured, rolling updates and undo through
ControllerRevisions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.local.apiserver.conftest import Server
from tests.local.apiserver.workloads.kubelet_double import KubeletDouble
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]  # each starts an API server

Json = dict[str, Any]


def _node(name: str, **spec: Any) -> str:
    return json.dumps(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}
    )


DAEMONSET = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {"name": "agent"},
    "spec": {
        "selector": {"matchLabels": {"app": "agent"}},
        "template": {
            "metadata": {"labels": {"app": "agent"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1"}]},
        },
    },
}


def _get(server: Server, *what: str) -> Json:
    found: Json = json.loads(server.kubectl("get", *what, "-o", "json").stdout)
    return found


def _pods(server: Server) -> list[Json]:
    items = _get(server, "pods", "-l", "app=agent")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def _pinned_to(pod: Json) -> str:
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    [term] = terms["nodeSelectorTerms"]
    [field] = term["matchFields"]
    assert (field["key"], field["operator"]) == ("metadata.name", "In")
    return str(field["values"][0])


def _rolled_out(server: Server) -> None:
    done = server.kubectl("rollout", "status", "ds/agent", "--timeout=90s", timeout=120)
    assert 'daemon set "agent" successfully rolled out' in done.stdout


def test_one_pod_per_eligible_node_and_rolling_updates(server: Server) -> None:
    server.kubectl("create", "-f", "-", stdin=_node("n1"))
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    server.kubectl("create", "-f", "-", stdin=_node("n2", taints=[taint]))
    with KubeletDouble(server.api()):
        server.kubectl("apply", "-f", "-", stdin=json.dumps(DAEMONSET))
        _rolled_out(server)
        [pod] = _pods(server)
        assert _pinned_to(pod) == "n1", "the tainted node gets no pod"
        tolerated = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
        assert ("node.kubernetes.io/not-ready", "NoExecute") in tolerated
        assert ("node.kubernetes.io/unschedulable", "NoSchedule") in tolerated
        first_hash = pod["metadata"]["labels"]["controller-revision-hash"]
        status = _get(server, "ds/agent")["status"]
        assert {
            k: status[k]
            for k in (
                "desiredNumberScheduled",
                "currentNumberScheduled",
                "numberReady",
                "updatedNumberScheduled",
                "numberAvailable",
            )
        } == dict.fromkeys(
            (
                "desiredNumberScheduled",
                "currentNumberScheduled",
                "numberReady",
                "updatedNumberScheduled",
                "numberAvailable",
            ),
            1,
        )
        ds = _get(server, "ds/agent")
        assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1

        server.kubectl("set", "image", "ds/agent", "c=busybox:2")
        _rolled_out(server)
        [pod] = wait_for(
            "the old pod replaced",
            lambda: (
                p
                if len(p := _pods(server)) == 1
                and p[0]["spec"]["containers"][0]["image"] == "busybox:2"
                else None
            ),
        )
        assert pod["metadata"]["labels"]["controller-revision-hash"] != first_hash
        revisions = _get(server, "controllerrevisions")["items"]
        assert sorted(r["revision"] for r in revisions) == [1, 2]

        server.kubectl("rollout", "undo", "ds/agent")
        _rolled_out(server)
        wait_for(
            "the first template back",
            lambda: [p["spec"]["containers"][0]["image"] for p in _pods(server)] == ["busybox:1"],
        )
        revisions = {
            r["metadata"]["labels"]["controller-revision-hash"]: r["revision"]
            for r in _get(server, "controllerrevisions")["items"]
        }
        assert revisions[first_hash] == 3

        # tolerating the taint makes the second node eligible
        patch = {
            "spec": {
                "template": {"spec": {"tolerations": [{"key": "dedicated", "operator": "Exists"}]}}
            }
        }
        server.kubectl("patch", "ds/agent", "--type=merge", "-p", json.dumps(patch))
        _rolled_out(server)
        assert sorted(_pinned_to(p) for p in _pods(server)) == ["n1", "n2"]
        table = server.kubectl("get", "ds", "agent").stdout.splitlines()
        assert table[0].split()[:7] == [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE",
        ]
        assert table[1].split()[:6] == ["agent", "2", "2", "2", "2", "2"]

        server.kubectl("delete", "ds/agent")
        wait_for(
            "its pods and revisions collected",
            lambda: not _get(server, "pods,controllerrevisions")["items"],
        )


def test_on_delete_waits_for_the_user(server: Server) -> None:
    server.kubectl("create", "-f", "-", stdin=_node("n1"))
    on_delete = json.loads(json.dumps(DAEMONSET))
    on_delete["spec"]["updateStrategy"] = {"type": "OnDelete"}
    with KubeletDouble(server.api()):
        server.kubectl("apply", "-f", "-", stdin=json.dumps(on_delete))
        # (kubectl's rollout status only follows RollingUpdate)
        wait_for(
            "the pod ready",
            lambda: _get(server, "ds/agent").get("status", {}).get("numberReady") == 1,
        )
        [first] = _pods(server)
        server.kubectl("set", "image", "ds/agent", "c=busybox:2")
        wait_for(
            "the status to see the change",
            lambda: _get(server, "ds/agent")["status"].get("observedGeneration") == 2,
        )
        assert [p["metadata"]["name"] for p in _pods(server)] == [first["metadata"]["name"]]
        assert "updatedNumberScheduled" not in _get(server, "ds/agent")["status"]
        server.kubectl("delete", "pod", first["metadata"]["name"])
        [second] = wait_for(
            "a pod of the new template",
            lambda: (
                p
                if len(p := _pods(server)) == 1
                and p[0]["metadata"]["name"] != first["metadata"]["name"]
                else None
            ),
        )
        assert second["spec"]["containers"][0]["image"] == "busybox:2"


def test_history_beyond_the_limit_goes(server: Server) -> None:
    server.kubectl("create", "-f", "-", stdin=_node("n1"))
    limited = json.loads(json.dumps(DAEMONSET))
    limited["spec"]["revisionHistoryLimit"] = 1
    with KubeletDouble(server.api()):
        server.kubectl("apply", "-f", "-", stdin=json.dumps(limited))
        for image in ("busybox:2", "busybox:3"):
            _rolled_out(server)
            server.kubectl("set", "image", "ds/agent", f"c={image}")
        _rolled_out(server)

        def revisions() -> list[int]:
            return sorted(r["revision"] for r in _get(server, "controllerrevisions")["items"])

        wait_for("one old revision kept besides the current", lambda: revisions() == [2, 3])
