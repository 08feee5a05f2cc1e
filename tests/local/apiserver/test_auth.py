"""Who the server says a user is and what it says they may do: `kubectl auth whoami` and
`kubectl auth can-i --list` (kubectl 1.37), the reviews behind them, and the policy's rules."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kvd.local.apiserver import policy
from kvd.local.apiserver.auth import User
from tests.local.apiserver import rawhttp
from tests.local.apiserver.conftest import Server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]  # each starts an API server

ADMIN_GROUPS = ["system:masters", "system:authenticated"]


def test_kubectl_auth_whoami(server: Server) -> None:
    table = server.kubectl("auth", "whoami").stdout.splitlines()
    assert [line.split(None, 1) for line in table] == [
        ["ATTRIBUTE", "VALUE"],
        ["Username", "kvd-admin"],
        ["UID", "kvd-admin"],
        ["Groups", "[system:masters system:authenticated]"],
    ]

    review = json.loads(server.kubectl("auth", "whoami", "-o", "json").stdout)
    assert review["apiVersion"] == "authentication.k8s.io/v1"
    assert review["kind"] == "SelfSubjectReview"
    assert review["status"]["userInfo"] == {
        "username": "kvd-admin",
        "uid": "kvd-admin",
        "groups": ADMIN_GROUPS,
    }
    assert review["metadata"]["creationTimestamp"]


def test_kubectl_auth_can_i_list(server: Server) -> None:
    rows = [line.split() for line in server.kubectl("auth", "can-i", "--list").stdout.splitlines()]

    assert rows[0] == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert ["*.*", "[]", "[]", "[*]"] in rows  # cluster-admin: every resource
    assert ["[*]", "[]", "[*]"] in rows  # and every non-resource URL
    assert ["selfsubjectreviews.authentication.k8s.io", "[]", "[]", "[create]"] in rows
    assert ["[/version]", "[]", "[get]"] in rows  # system:discovery, system:public-info-viewer


def test_rules_review_through_the_official_client(server: Server) -> None:
    authz = client.AuthorizationV1Api(server.api())
    review = authz.create_self_subject_rules_review(
        client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec(namespace="x"))
    )
    assert review.status.incomplete is False
    assert any(
        r.verbs == ["*"] and r.api_groups == ["*"] and r.resources == ["*"]
        for r in review.status.resource_rules
    )
    assert any(r.non_resource_urls == ["*"] for r in review.status.non_resource_rules)

    with pytest.raises(ApiException) as refused:
        authz.create_self_subject_rules_review(
            client.V1SelfSubjectRulesReview(spec=client.V1SelfSubjectRulesReviewSpec())
        )
    assert refused.value.status == 400
    assert json.loads(refused.value.body)["message"] == "no namespace on request"

    me = client.AuthenticationV1Api(server.api()).create_self_subject_review(
        client.V1SelfSubjectReview()
    )
    assert me.status.user_info.username == "kvd-admin"


def _subject_access(
    server: Server, user: str, groups: list[str], attributes: dict[str, Any]
) -> bool:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": groups, **attributes},
    }
    answer = rawhttp.request(
        server,
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        json.dumps(body).encode(),
    )
    assert answer.status == 201, answer.body
    return bool(answer.json()["status"]["allowed"])


@pytest.mark.parametrize(
    ("attributes", "allowed"),
    [
        pytest.param(
            {"nonResourceAttributes": {"path": "/version", "verb": "get"}}, True, id="version"
        ),
        pytest.param(
            {"nonResourceAttributes": {"path": "/apis/apps", "verb": "get"}}, True, id="discovery"
        ),
        pytest.param(
            {"nonResourceAttributes": {"path": "/metrics", "verb": "get"}}, False, id="metrics"
        ),
        pytest.param(
            {"nonResourceAttributes": {"path": "/version", "verb": "post"}}, False, id="post"
        ),
        pytest.param(
            {
                "resourceAttributes": {
                    "group": "authorization.k8s.io",
                    "resource": "selfsubjectrulesreviews",
                    "verb": "create",
                }
            },
            True,
            id="own-rules",
        ),
        pytest.param(
            {"resourceAttributes": {"resource": "pods", "verb": "list", "namespace": "default"}},
            False,
            id="pods",
        ),
    ],
)
def test_a_plain_authenticated_user_holds_the_bootstrap_roles_only(
    server: Server, attributes: dict[str, Any], allowed: bool
) -> None:
    assert _subject_access(server, "someone", ["system:authenticated"], attributes) is allowed
    assert _subject_access(server, "root", ["system:masters"], attributes) is True


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        pytest.param(
            "GET",
            "/api/v1/namespaces/ns/pods",
            {},
            policy.Attributes("list", True, "/api/v1/namespaces/ns/pods", "", "pods", "", "ns", ""),
            id="list",
        ),
        pytest.param(
            "GET",
            "/api/v1/namespaces/ns/pods",
            {"watch": "true"},
            policy.Attributes(
                "watch", True, "/api/v1/namespaces/ns/pods", "", "pods", "", "ns", ""
            ),
            id="watch",
        ),
        pytest.param(
            "GET",
            "/api/v1/namespaces/ns/pods/p/log",
            {},
            policy.Attributes(
                "get", True, "/api/v1/namespaces/ns/pods/p/log", "", "pods", "log", "ns", "p"
            ),
            id="subresource",
        ),
        pytest.param(
            "PUT",
            "/api/v1/namespaces/ns/finalize",
            {},
            policy.Attributes(
                "update",
                True,
                "/api/v1/namespaces/ns/finalize",
                "",
                "namespaces",
                "finalize",
                "ns",
                "ns",
            ),
            id="namespace-subresource",
        ),
        pytest.param(
            "DELETE",
            "/apis/apps/v1/namespaces/ns/deployments",
            {},
            policy.Attributes(
                "deletecollection",
                True,
                "/apis/apps/v1/namespaces/ns/deployments",
                "apps",
                "deployments",
                "",
                "ns",
                "",
            ),
            id="deletecollection",
        ),
        pytest.param(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            {},
            policy.Attributes(
                "create",
                True,
                "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                "authorization.k8s.io",
                "selfsubjectrulesreviews",
            ),
            id="create-cluster-scoped",
        ),
        pytest.param("GET", "/apis", {}, policy.Attributes("get", False, "/apis"), id="discovery"),
        pytest.param(
            "HEAD", "/healthz", {}, policy.Attributes("get", False, "/healthz"), id="head"
        ),
    ],
)
def test_request_attributes(
    method: str, path: str, query: dict[str, str], expected: policy.Attributes
) -> None:
    assert policy.attributes(method, path, query) == expected


def test_forbidden_messages_are_kube_apiservers() -> None:
    someone = User("someone", ("system:authenticated",))
    authorizer = policy.Authorizer()
    pods = policy.attributes("GET", "/api/v1/namespaces/ns/pods/p", {})
    nodes = policy.attributes("GET", "/apis/apps/v1/deployments", {})
    metrics = policy.attributes("GET", "/metrics", {})
    assert not any(authorizer.allows(someone, a) for a in (pods, nodes, metrics))

    assert policy.forbidden(someone, pods).message == (
        'pods "p" is forbidden: User "someone" cannot get resource "pods" in API group "" '
        'in the namespace "ns"'
    )
    assert policy.forbidden(someone, nodes).message == (
        'deployments.apps is forbidden: User "someone" cannot list resource "deployments" in '
        'API group "apps" at the cluster scope'
    )
    assert policy.forbidden(someone, metrics).message == (
        'forbidden: User "someone" cannot get path "/metrics"'
    )
