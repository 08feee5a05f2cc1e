"""RBAC in a real `kvd local apiserver`: access reviews and their reasons, impersonated users'
groups, and the default roles across restarts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.local.apiserver import rawhttp
from tests.local.apiserver.conftest import Server, start_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]  # each starts an API server

AUTHZ = "/apis/authorization.k8s.io/v1"


def _review(server: Server, path: str, spec: dict[str, Any], **metadata: str) -> rawhttp.Answer:
    body = {"apiVersion": "authorization.k8s.io/v1", "metadata": metadata, "spec": spec}
    return rawhttp.request(server, "POST", path, json.dumps(body).encode())


def _pods(verb: str, namespace: str) -> dict[str, Any]:
    return {"resourceAttributes": {"verb": verb, "resource": "pods", "namespace": namespace}}


def test_access_reviews_answer_with_kubes_reasons(server: Server) -> None:
    server.kubectl("create", "namespace", "a")
    server.kubectl("create", "rolebinding", "v", "--clusterrole=view", "--user=alice", "-n", "a")
    sar = f"{AUTHZ}/subjectaccessreviews"

    allowed = _review(server, sar, {"user": "alice", **_pods("list", "a")})
    assert allowed.status == 201
    assert allowed.json()["status"] == {
        "allowed": True,
        "reason": 'RBAC: allowed by RoleBinding "v/a" of ClusterRole "view" to User "alice"',
    }
    assert _review(server, sar, {"user": "alice", **_pods("delete", "a")}).json()["status"] == {
        "allowed": False  # no reason, and never `denied`: RBAC has no deny rules
    }
    everyone = _review(server, sar, {"groups": ["system:authenticated"], **_pods("list", "a")})
    assert everyone.json()["status"] == {"allowed": False}

    # evaluated with exactly the groups given: the admin is powerful through its group only
    assert not _review(server, sar, {"user": "kvd-admin", **_pods("delete", "a")}).json()["status"][
        "allowed"
    ]
    masters = {"user": "kvd-admin", "groups": ["system:masters"], **_pods("delete", "a")}
    assert _review(server, sar, masters).json()["status"] == {"allowed": True}

    nobody = _review(server, sar, _pods("list", "a"))
    assert nobody.status == 422
    assert nobody.json()["message"] == (
        'SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": '
        "at least one of user or group must be specified"
    )


def test_a_local_review_is_about_its_own_namespace(server: Server) -> None:
    server.kubectl("create", "namespace", "a")
    server.kubectl("create", "rolebinding", "v", "--clusterrole=view", "--user=alice", "-n", "a")
    local = f"{AUTHZ}/namespaces/a/localsubjectaccessreviews"

    answer = _review(server, local, {"user": "alice", **_pods("get", "a")})
    assert answer.status == 201
    assert answer.json()["kind"] == "LocalSubjectAccessReview"
    assert answer.json()["metadata"]["namespace"] == "a"
    assert answer.json()["status"]["allowed"] is True

    elsewhere = _review(server, local, {"user": "alice", **_pods("get", "b")})
    assert elsewhere.status == 422
    assert elsewhere.json()["message"] == (
        'LocalSubjectAccessReview.authorization.k8s.io "" is invalid: '
        'spec.resourceAttributes.namespace: Invalid value: "b": must match metadata.namespace'
    )
    moved = _review(server, local, {"user": "alice", **_pods("get", "b")}, namespace="b")
    assert (moved.status, moved.json()["message"]) == (
        400,
        "the namespace of the provided object does not match the namespace sent on the request",
    )


def test_impersonated_users_have_kubes_groups_and_their_bindings(server: Server) -> None:
    server.kubectl("create", "namespace", "a")
    server.kubectl(
        "create",
        "rolebinding",
        "robot",
        "--clusterrole=edit",
        "--serviceaccount=a:robot",
        "-n",
        "a",
    )
    server.kubectl("create", "rolebinding", "devs", "--clusterrole=view", "--group=devs", "-n", "a")
    robot = "system:serviceaccount:a:robot"

    me = json.loads(server.kubectl("auth", "whoami", "--as", robot, "-o", "json").stdout)
    assert me["status"]["userInfo"] == {
        "username": robot,  # no uid: it is empty, and omitted as kube omits it
        "groups": ["system:serviceaccounts", "system:serviceaccounts:a", "system:authenticated"],
    }
    server.kubectl("create", "configmap", "made-by-robot", "-n", "a", "--as", robot)

    dev = ("--as", "erin", "--as-group", "devs", "-n", "a")
    assert "made-by-robot" in server.kubectl("get", "configmaps", *dev).stdout
    assert server.kubectl("get", "configmaps", "--as", "erin", "-n", "a", check=False).returncode
    assert server.kubectl("delete", "configmap", "made-by-robot", *dev, check=False).returncode

    # a rules review, as the impersonated user, lists the rules and what could not be read
    server.kubectl(
        "create", "rolebinding", "gone", "--clusterrole=missing", "--user=erin", "-n", "a"
    )
    review = rawhttp.request(
        server,
        "POST",
        f"{AUTHZ}/selfsubjectrulesreviews",
        json.dumps({"spec": {"namespace": "a"}}).encode(),
        {"Impersonate-User": "erin", "Impersonate-Group": "devs"},
    ).json()["status"]
    assert review["evaluationError"] == (
        'clusterrole.rbac.authorization.k8s.io "missing" not found'
    )
    assert any(
        "pods" in r["resources"] and r["apiGroups"] == [""] and "list" in r["verbs"]
        for r in review["resourceRules"]
    )  # view's, through the group


def test_defaults_come_back_at_start_unless_a_user_stopped_their_updates(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    try:
        drop_second_rule = '[{"op": "remove", "path": "/rules/1"}]'
        healthz_only = (
            '[{"op": "replace", "path": "/rules/0/nonResourceURLs", "value": ["/healthz"]}]'
        )
        manual = "rbac.authorization.kubernetes.io/autoupdate=false"
        basic, viewer = "clusterrole/system:basic-user", "clusterrole/system:public-info-viewer"
        server.kubectl("patch", basic, "--type=json", "-p", drop_second_rule)
        server.kubectl("annotate", "--overwrite", viewer, manual)
        server.kubectl("patch", viewer, "--type=json", "-p", healthz_only)
        server.kubectl("create", "clusterrolebinding", "mine", "--clusterrole=view", "--user=zoe")
    finally:
        server.stop()

    server = start_server(data)
    try:
        basic = json.loads(
            server.kubectl("get", "clusterrole", "system:basic-user", "-o", "json").stdout
        )
        assert len(basic["rules"]) == 2  # reconciled back
        viewer = json.loads(
            server.kubectl("get", "clusterrole", "system:public-info-viewer", "-o", "json").stdout
        )
        assert viewer["rules"] == [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]  # kept
        can = server.kubectl("auth", "can-i", "list", "pods", "-A", "--as", "zoe", check=False)
        assert can.stdout.strip() == "yes"  # a binding written before the restart
    finally:
        server.stop()
