"""RBAC as kubectl users meet it, against a real `kvd local apiserver`: bindings, the default
roles, aggregation, impersonation (`--as`), escalation and `kubectl auth`."""

from __future__ import annotations

import pytest

from tests.local.apiserver.conftest import Server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]  # each starts an API server

KUBEVIRT_VIEW = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kubevirt.io:view
  labels:
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
- apiGroups: [kubevirt.io]
  resources: [virtualmachineinstances]
  verbs: [get, list, watch]
"""


def _alice_views_a(server: Server) -> None:
    server.kubectl("create", "namespace", "a")
    server.kubectl("create", "namespace", "b")
    server.kubectl("create", "rolebinding", "v", "--clusterrole=view", "--user=alice", "-n", "a")


def test_a_rolebinding_to_view_lets_alice_read_her_namespace_only(server: Server) -> None:
    _alice_views_a(server)
    server.kubectl("run", "x", "--image=busybox", "-n", "a")

    listed = server.kubectl("get", "pods", "-n", "a", "--as", "alice")
    assert listed.stdout.split()[:2] == ["NAME", "READY"] and "x" in listed.stdout

    deleted = server.kubectl("delete", "pod", "x", "-n", "a", "--as", "alice", check=False)
    assert deleted.returncode == 1
    assert deleted.stderr.strip() == (
        'Error from server (Forbidden): pods "x" is forbidden: User "alice" cannot delete '
        'resource "pods" in API group "" in the namespace "a"'
    )
    elsewhere = server.kubectl("get", "pods", "-n", "b", "--as", "alice", check=False)
    assert elsewhere.returncode == 1
    assert elsewhere.stderr.strip() == (
        'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource '
        '"pods" in API group "" in the namespace "b"'
    )
    assert server.kubectl("get", "pods", "-n", "a", "--as", "bob", check=False).returncode == 1


def test_a_clusterrole_aggregated_to_view_extends_what_view_grants(with_crds: Server) -> None:
    server = with_crds
    _alice_views_a(server)

    def can_i(*args: str) -> str:
        answer = server.kubectl("auth", "can-i", *args, "--as", "alice", check=False)
        return answer.stdout.strip()

    assert can_i("get", "vmis.kubevirt.io", "-n", "a") == "no"
    server.kubectl("apply", "-f", "-", stdin=KUBEVIRT_VIEW)
    assert can_i("get", "vmis.kubevirt.io", "-n", "a") == "yes"
    assert can_i("get", "vmis.kubevirt.io", "-n", "b") == "no"
    assert can_i("delete", "vmis.kubevirt.io", "-n", "a") == "no"

    rows = server.kubectl("auth", "can-i", "--list", "-n", "a", "--as", "alice").stdout
    table = [line.split() for line in rows.splitlines()]
    assert ["virtualmachineinstances.kubevirt.io", "[]", "[]", "[get", "list", "watch]"] in table
    assert ["pods", "[]", "[]", "[get", "list", "watch]"] in table  # view's own
    assert not any(row[0] == "secrets" for row in table)  # view never reads secrets

    # edit and admin include view, so they gather it too
    edit = server.kubectl("get", "clusterrole", "edit", "-o", "yaml").stdout
    assert "virtualmachineinstances" in edit

    server.kubectl("delete", "clusterrole", "kubevirt.io:view")
    assert can_i("get", "vmis.kubevirt.io", "-n", "a") == "no"


def test_the_default_roles_are_there_to_list_and_describe(server: Server) -> None:
    roles = [line.split()[0] for line in server.kubectl("get", "clusterroles").stdout.splitlines()]
    assert roles[0] == "NAME"
    for name in (
        "admin",
        "cluster-admin",
        "edit",
        "system:aggregate-to-admin",
        "system:aggregate-to-edit",
        "system:aggregate-to-view",
        "system:auth-delegator",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "view",
    ):
        assert name in roles
    view = server.kubectl("describe", "clusterrole", "view").stdout
    assert "rbac.authorization.k8s.io/aggregate-to-edit=true" in view
    assert "pods/log" in view and "deployments.apps" in view

    bindings = server.kubectl("get", "clusterrolebindings", "-o", "wide").stdout.splitlines()
    assert bindings[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    viewer = next(line for line in bindings if line.startswith("system:public-info-viewer "))
    assert viewer.split()[1:2] == ["ClusterRole/system:public-info-viewer"]
    assert "system:authenticated, system:unauthenticated" in viewer


def test_nobody_grants_what_they_do_not_hold(server: Server) -> None:
    server.kubectl("create", "namespace", "a")
    server.kubectl(
        "create", "rolebinding", "carol", "--clusterrole=admin", "--user=carol", "-n", "a"
    )
    as_carol = ("-n", "a", "--as", "carol")
    server.kubectl("create", "role", "ok", "--verb=get", "--resource=pods", *as_carol)
    server.kubectl("create", "rolebinding", "dave", "--clusterrole=view", "--user=dave", *as_carol)

    more = server.kubectl(
        "create", "role", "more", "--verb=get,delete", "--resource=nodes", *as_carol, check=False
    )
    assert more.returncode == 1
    assert more.stderr.strip() == (
        'Error from server (Forbidden): roles.rbac.authorization.k8s.io "more" is forbidden: '
        'user "carol" (groups=["system:authenticated"]) is attempting to grant RBAC permissions '
        "not currently held:\n"
        '{APIGroups:[""], Resources:["nodes"], Verbs:["get" "delete"]}'
    )
    root_to_dave = ("rolebinding", "root", "--clusterrole=cluster-admin", "--user=dave")
    root = server.kubectl("create", *root_to_dave, *as_carol, check=False)
    assert root.returncode == 1
    assert 'rolebindings.rbac.authorization.k8s.io "root" is forbidden' in root.stderr
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in root.stderr

    # whoever may bind a role may grant it without holding it; escalate likewise for roles
    binder = ("role", "binder", "--verb=bind,escalate", "--resource=clusterroles,roles")
    server.kubectl("create", *binder, "-n", "a")
    server.kubectl(
        "create", "rolebinding", "carol-binds", "--role=binder", "--user=carol", "-n", "a"
    )
    server.kubectl("create", *root_to_dave, *as_carol)
    server.kubectl("create", "role", "more", "--verb=get,delete", "--resource=nodes", *as_carol)


def test_only_a_cluster_admin_makes_an_aggregated_clusterrole(server: Server) -> None:
    maker = ("--verb=create,get", "--resource=clusterroles.rbac.authorization.k8s.io")
    server.kubectl("create", "clusterrole", "role-maker", *maker)
    server.kubectl(
        "create", "clusterrolebinding", "carol", "--clusterrole=role-maker", "--user=carol"
    )
    server.kubectl("create", "clusterrole", "plain", *maker, "--as", "carol")  # what she holds

    gather = ("clusterrole", "gather", "--aggregation-rule=team=x")
    refused = server.kubectl("create", *gather, "--as", "carol", check=False)
    assert refused.stderr.strip() == (
        'Error from server (Forbidden): clusterroles.rbac.authorization.k8s.io "gather" is '
        "forbidden: must have cluster-admin privileges to use the aggregationRule"
    )
    server.kubectl("create", *gather)


def test_a_bindings_roleref_never_changes(server: Server) -> None:
    server.kubectl("create", "rolebinding", "v", "--clusterrole=view", "--user=alice")
    to_edit = '{"roleRef":{"name":"edit"}}'
    changed = server.kubectl(
        "patch", "rolebinding", "v", "--type=merge", "-p", to_edit, check=False
    )
    assert changed.returncode == 1
    assert changed.stderr.strip() == (
        'The RoleBinding "v" is invalid: roleRef: Invalid value: rbac.RoleRef{APIGroup:'
        '"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef'
    )
    server.kubectl("set", "subject", "rolebinding", "v", "--user=bob")
    row = server.kubectl("get", "rolebinding", "v", "-o", "wide").stdout.splitlines()[1]
    assert row.split()[:2] == ["v", "ClusterRole/view"] and "alice, bob" in row


def test_kubectl_auth_reconcile_creates_then_adds_what_is_missing(server: Server) -> None:
    manifest = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: default}
rules:
- {apiGroups: [""], resources: [pods], verbs: [VERBS]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: pod-reader, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: erin}
"""
    done = server.kubectl("auth", "reconcile", "-f", "-", stdin=manifest.replace("VERBS", "get"))
    assert "role.rbac.authorization.k8s.io/pod-reader reconciled" in done.stdout
    server.kubectl("auth", "reconcile", "-f", "-", stdin=manifest.replace("VERBS", "get, watch"))

    def can_i(verb: str) -> str:
        answer = server.kubectl("auth", "can-i", verb, "pods", "--as", "erin", check=False)
        return answer.stdout.strip()

    assert (can_i("get"), can_i("watch"), can_i("list")) == ("yes", "yes", "no")
