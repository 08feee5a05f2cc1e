"""RBAC's resolver over a real store: which bindings apply to whom, in which namespace, with
kube's reasons, and how it follows writes: every read sees what was written before it (no
server: the store and the index alone)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvd.local.apiserver import policy
from kvd.local.apiserver.auth import User
from kvd.local.apiserver.rbac.index import (
    CLUSTER_ROLE_BINDINGS,
    CLUSTER_ROLES,
    ROLE_BINDINGS,
    ROLES,
    RBACIndex,
)
from kvd.local.apiserver.store import ResourceKey, Store

GROUP = "rbac.authorization.k8s.io"
ALICE = User("alice", ("system:authenticated",))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db", history=50)
    yield s
    s.close()


def _meta(name: str, namespace: str = "") -> dict[str, Any]:
    return {"name": name, **({"namespace": namespace} if namespace else {})}


def role(store: Store, name: str, rules: list[dict[str, Any]], namespace: str = "") -> None:
    key = ROLES if namespace else CLUSTER_ROLES
    store.create(key, namespace, name, {"metadata": _meta(name, namespace), "rules": rules})


def bind(
    store: Store, name: str, ref: tuple[str, str], *subjects: dict[str, Any], namespace: str = ""
) -> None:
    key = ROLE_BINDINGS if namespace else CLUSTER_ROLE_BINDINGS
    body = {
        "metadata": _meta(name, namespace),
        "roleRef": {"apiGroup": GROUP, "kind": ref[0], "name": ref[1]},
        "subjects": list(subjects),
    }
    store.create(key, namespace, name, body)


def user(name: str) -> dict[str, Any]:
    return {"kind": "User", "apiGroup": GROUP, "name": name}


def decide(
    index: RBACIndex, who: User, verb: str, resource: str, namespace: str
) -> policy.Decision:
    asked = policy.Attributes(verb, True, resource=resource, namespace=namespace)
    return policy.Authorizer(index).decide(who, asked)


PODS = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}


def test_a_rolebinding_to_a_clusterrole_grants_in_its_namespace_only(store: Store) -> None:
    index = RBACIndex(store)
    role(store, "reader", [PODS])
    bind(store, "r", ("ClusterRole", "reader"), user("alice"), namespace="a")

    allowed = decide(index, ALICE, "list", "pods", "a")
    assert allowed == policy.Decision(
        True,
        'RBAC: allowed by RoleBinding "r/a" of ClusterRole "reader" to User "alice"',
    )
    assert not decide(index, ALICE, "list", "pods", "b").allowed
    assert not decide(index, ALICE, "list", "pods", "").allowed  # not cluster-wide either
    assert not decide(index, User("bob", ()), "list", "pods", "a").allowed


def test_cluster_bindings_come_first_and_groups_and_accounts_are_subjects(store: Store) -> None:
    role(store, "reader", [PODS])
    role(store, "local", [PODS], namespace="a")
    bind(store, "z-everyone", ("ClusterRole", "reader"), {"kind": "Group", "name": "devs"})
    bind(store, "a-local", ("Role", "local"), user("alice"), namespace="a")
    bind(
        store,
        "sa",
        ("Role", "local"),
        {"kind": "ServiceAccount", "name": "robot"},  # no namespace: the binding's
        namespace="a",
    )
    index = RBACIndex(store)  # built from what is stored already

    dev = User("alice", ("devs", "system:authenticated"))
    assert decide(index, dev, "get", "pods", "a").reason == (
        'RBAC: allowed by ClusterRoleBinding "z-everyone" of ClusterRole "reader" to Group "devs"'
    )
    robot = User("system:serviceaccount:a:robot", ("system:serviceaccounts",))
    assert decide(index, robot, "get", "pods", "a").reason == (
        'RBAC: allowed by RoleBinding "sa/a" of Role "local" to ServiceAccount "robot/a"'
    )
    other = User("system:serviceaccount:b:robot", ())
    assert not decide(index, other, "get", "pods", "a").allowed


def test_the_index_follows_writes_and_deletes(store: Store) -> None:
    index = RBACIndex(store)
    assert not decide(index, ALICE, "get", "pods", "a").allowed
    role(store, "reader", [PODS])
    bind(store, "r", ("ClusterRole", "reader"), user("alice"), namespace="a")
    assert decide(index, ALICE, "get", "pods", "a").allowed

    reader = store.get(CLUSTER_ROLES, "", "reader")
    assert reader is not None
    reader["rules"] = [{**PODS, "verbs": ["list"]}]
    store.update(CLUSTER_ROLES, "", "reader", reader, expected=None)
    assert not decide(index, ALICE, "get", "pods", "a").allowed  # the cached answer went
    assert decide(index, ALICE, "list", "pods", "a").allowed

    store.delete(ROLE_BINDINGS, "a", "r")
    assert not decide(index, ALICE, "list", "pods", "a").allowed


def test_falling_out_of_the_history_lists_again(store: Store) -> None:
    index = RBACIndex(store)
    role(store, "reader", [PODS])
    bind(store, "r", ("ClusterRole", "reader"), user("alice"), namespace="a")
    noise = ResourceKey("", "configmaps")
    for i in range(120):  # more than the store's history of 50
        store.create(noise, "a", f"c{i}", {"metadata": _meta(f"c{i}", "a")})
    assert decide(index, ALICE, "get", "pods", "a").allowed


def test_a_binding_to_a_missing_role_grants_nothing_and_says_why(store: Store) -> None:
    index = RBACIndex(store)
    bind(store, "r", ("ClusterRole", "gone"), user("alice"), namespace="a")
    bind(store, "l", ("Role", "gone-too"), user("alice"), namespace="a")
    decision = decide(index, ALICE, "get", "pods", "a")
    assert decision == policy.Decision(
        False,
        'RBAC: [role.rbac.authorization.k8s.io "gone-too" not found, '
        'clusterrole.rbac.authorization.k8s.io "gone" not found]',
    )
    rules = index.rules_for(ALICE, "a")
    status = policy.rules_status(rules)
    assert status["evaluationError"] == decision.reason.removeprefix("RBAC: ")
