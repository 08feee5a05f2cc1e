"""Deployments and ReplicaSets driven with real kubectl against a real API server, a stand-in
writing the pods' readiness (`KubeletDouble`): rollout status, scale, rolling update, undo,
Recreate, adoption and cascading deletion, as on kube."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.local.apiserver.conftest import Server
from tests.local.apiserver.workloads.kubelet_double import KubeletDouble
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]  # each starts an API server

Json = dict[str, Any]

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: "busybox:1", command: [sleep, "3600"]}]
"""


def _get(server: Server, *what: str) -> Json:
    found: Json = json.loads(server.kubectl("get", *what, "-o", "json").stdout)
    return found


def _replicasets(server: Server) -> list[Json]:
    items: list[Json] = _get(server, "rs", "-l", "app=web")["items"]
    return sorted(
        items, key=lambda rs: rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
    )


def _images(server: Server) -> set[str]:
    pods = _get(server, "pods", "-l", "app=web")["items"]
    return {
        p["spec"]["containers"][0]["image"]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    }


def _rolled_out(server: Server) -> None:
    done = server.kubectl("rollout", "status", "deploy/web", "--timeout=90s", timeout=120)
    assert 'deployment "web" successfully rolled out' in done.stdout


def test_rollout_scale_update_undo_and_cascade(server: Server) -> None:
    with KubeletDouble(server.api()):
        server.kubectl("apply", "-f", "-", stdin=DEPLOYMENT)
        _rolled_out(server)
        again = server.kubectl("apply", "-f", "-", stdin=DEPLOYMENT)
        assert "deployment.apps/web unchanged" in again.stdout
        d = _get(server, "deploy/web")
        assert d["spec"]["strategy"]["rollingUpdate"] == {
            "maxSurge": "25%",
            "maxUnavailable": "25%",
        }
        status = d["status"]
        assert (status["replicas"], status["readyReplicas"], status["availableReplicas"]) == (
            3,
            3,
            3,
        )
        assert status["observedGeneration"] == d["metadata"]["generation"]
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Available"]["reason"] == "MinimumReplicasAvailable"
        assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"
        [rs] = _replicasets(server)
        pod_hash = rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"]
        assert rs["metadata"]["name"] == f"web-{pod_hash}"
        events = _get(server, "events", "--field-selector", "involvedObject.kind=Deployment")
        assert [(e["reason"], e["message"]) for e in events["items"]] == [
            ("ScalingReplicaSet", f"Scaled up replica set web-{pod_hash} from 0 to 3")
        ]
        events = _get(server, "events", "--field-selector", "involvedObject.kind=ReplicaSet")
        assert sorted({e["reason"] for e in events["items"]}) == ["SuccessfulCreate"]
        pods = _get(server, "pods", "-l", "app=web")["items"]
        assert len(pods) == 3
        for pod in pods:
            assert pod["metadata"]["name"].startswith(f"web-{pod_hash}-")
            [ref] = pod["metadata"]["ownerReferences"]
            assert (ref["kind"], ref["name"], ref["controller"]) == (
                "ReplicaSet",
                rs["metadata"]["name"],
                True,
            )

        server.kubectl("scale", "deploy/web", "--replicas=5")
        _rolled_out(server)
        table = server.kubectl("get", "deploy", "web").stdout.splitlines()
        assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        assert table[1].split()[:4] == ["web", "5/5", "5", "5"]

        server.kubectl("set", "image", "deploy/web", "c=busybox:2")
        _rolled_out(server)
        old, new = _replicasets(server)
        assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 5)
        assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        wait_for("old pods to go", lambda: _images(server) == {"busybox:2"})

        server.kubectl("rollout", "undo", "deploy/web")
        _rolled_out(server)
        wait_for("the first template's pods back", lambda: _images(server) == {"busybox:1"})
        d = _get(server, "deploy/web")
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
        assert len(_replicasets(server)) == 2, "rolling back reuses the first ReplicaSet"

        server.kubectl("delete", "deploy/web")
        wait_for(
            "the ReplicaSets and pods to be collected",
            lambda: not _get(server, "rs,pods", "-l", "app=web")["items"],
        )


def test_replicaset_adopts_releases_and_replaces(server: Server) -> None:
    orphan = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "orphan", "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    server.kubectl("create", "-f", "-", stdin=json.dumps(orphan))
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": orphan["spec"]},
        },
    }
    server.kubectl("create", "-f", "-", stdin=json.dumps(rs))

    def owned() -> list[str]:
        pods = _get(server, "pods", "-l", "app=db")["items"]
        return sorted(
            p["metadata"]["name"]
            for p in pods
            if any(r["name"] == "db" for r in p["metadata"].get("ownerReferences") or [])
        )

    names = wait_for(
        "two pods, the orphan adopted",
        lambda: n if len(n := owned()) == 2 and "orphan" in n else None,
    )
    made = next(n for n in names if n != "orphan")
    assert made.startswith("db-") and len(made) == len("db-") + 5
    # relabelled: released, and replaced
    server.kubectl("label", "pod", "orphan", "app=other", "--overwrite")
    wait_for("a replacement", lambda: len(n := owned()) == 2 and "orphan" not in n)
    released = _get(server, "pod/orphan")
    assert not released["metadata"].get("ownerReferences")
    rs_status = wait_for(
        "the ReplicaSet's status",
        lambda: (s := _get(server, "rs/db").get("status") or {}).get("replicas") == 2 and s,
    )
    assert rs_status["fullyLabeledReplicas"] == 2
    assert rs_status["observedGeneration"] == 1
    # scaled down: the not-ready pods go before ready ones
    with KubeletDouble(server.api()) as kubelet:
        kubelet.unready.add(made)
        wait_for("pods marked", lambda: _get(server, "rs/db")["status"].get("readyReplicas") == 1)
        server.kubectl("scale", "rs/db", "--replicas=1")
        wait_for("the not-ready pod deleted", lambda: made not in owned() and len(owned()) == 1)


def test_recreate_and_refusals(server: Server) -> None:
    recreate = DEPLOYMENT.replace("replicas: 3", "replicas: 2\n  strategy: {type: Recreate}")
    with KubeletDouble(server.api()):
        server.kubectl("apply", "-f", "-", stdin=recreate)
        _rolled_out(server)
        server.kubectl("set", "image", "deploy/web", "c=busybox:2")
        _rolled_out(server)
        assert _images(server) == {"busybox:2"}
    changed = server.kubectl(
        "patch", "deploy/web", "--type=merge", "-p",
        '{"spec":{"selector":{"matchLabels":{"app":"web","v":"2"}},'
        '"template":{"metadata":{"labels":{"app":"web","v":"2"}}}}}',
        check=False,
    )  # fmt: skip
    assert changed.returncode != 0
    assert "spec.selector: Invalid value: v1.LabelSelector" in changed.stderr
    assert "field is immutable" in changed.stderr
    bad = DEPLOYMENT.replace("name: web", "name: bad").replace(
        "selector: {matchLabels: {app: web}}", "selector: {matchLabels: {app: other}}"
    )
    refused = server.kubectl("apply", "-f", "-", stdin=bad, check=False)
    assert refused.returncode != 0
    assert "`selector` does not match template `labels`" in refused.stderr


def test_pause_restart_history_and_deadline(server: Server) -> None:
    limited = DEPLOYMENT.replace("replicas: 3", "replicas: 1\n  revisionHistoryLimit: 1")
    with KubeletDouble(server.api()):
        server.kubectl("apply", "-f", "-", stdin=limited)
        _rolled_out(server)
        server.kubectl("rollout", "pause", "deploy/web")
        server.kubectl("set", "image", "deploy/web", "c=busybox:2")
        progressing = wait_for(
            "the paused condition",
            lambda: next(
                (
                    c
                    for c in _get(server, "deploy/web")["status"]["conditions"]
                    if c["type"] == "Progressing" and c["reason"] == "DeploymentPaused"
                ),
                None,
            ),
        )
        assert (progressing["status"], progressing["message"]) == (
            "Unknown",
            "Deployment is paused",
        )
        assert len(_replicasets(server)) == 1, "a paused Deployment does not roll"
        server.kubectl("rollout", "resume", "deploy/web")
        _rolled_out(server)
        server.kubectl("rollout", "restart", "deploy/web")
        _rolled_out(server)
        # three templates so far, one kept besides the current one
        kept = wait_for(
            "history trimmed to one", lambda: r if len(r := _replicasets(server)) == 2 else None
        )
        assert [
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in kept
        ] == ["2", "3"]
        restarted = _get(server, "deploy/web")["spec"]["template"]["metadata"]["annotations"]
        assert "kubectl.kubernetes.io/restartedAt" in restarted
    # with nobody making the pods ready, a short deadline passes
    server.kubectl(
        "patch", "deploy/web", "--type=merge", "-p", '{"spec":{"progressDeadlineSeconds":2}}'
    )
    server.kubectl("set", "image", "deploy/web", "c=busybox:3")
    failed = server.kubectl(
        "rollout", "status", "deploy/web", "--timeout=60s", check=False, timeout=90
    )
    assert failed.returncode != 0
    assert 'deployment "web" exceeded its progress deadline' in failed.stderr
    [condition] = [
        c for c in _get(server, "deploy/web")["status"]["conditions"] if c["type"] == "Progressing"
    ]
    assert (condition["status"], condition["reason"]) == ("False", "ProgressDeadlineExceeded")
