"""Services, their EndpointSlices and PodDisruptionBudgets with real kubectl against a real API
server (a stand-in writes the pods' IPs and readiness): cluster IPs allocated, refused and
released as kube does, slices listing the selected pods, budgets counting them."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from kvd.local.apiserver.workloads.services import SERVICE_CIDR
from tests.local.apiserver.conftest import Server
from tests.local.apiserver.workloads.kubelet_double import KubeletDouble
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]  # each starts an API server

Json = dict[str, Any]


def _get(server: Server, *what: str) -> Json:
    found: Json = json.loads(server.kubectl("get", *what, "-o", "json").stdout)
    return found


def _service(name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"port": 80}], **spec},
    }
    return json.dumps(body)


def test_cluster_ips(server: Server) -> None:
    kubernetes = _get(server, "svc/kubernetes")
    assert kubernetes["spec"]["clusterIP"] == str(SERVICE_CIDR.network_address + 1)
    assert kubernetes["spec"]["ports"][0]["port"] == 443
    server.kubectl("create", "-f", "-", stdin=_service("a"))
    a = _get(server, "svc/a")["spec"]
    assert ipaddress.ip_address(a["clusterIP"]) in SERVICE_CIDR
    assert a["clusterIPs"] == [a["clusterIP"]]
    assert a["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert (a["type"], a["sessionAffinity"]) == ("ClusterIP", "None")

    taken = server.kubectl(
        "create", "-f", "-", stdin=_service("b", clusterIP=a["clusterIP"]), check=False
    )
    assert taken.returncode != 0
    assert (
        f"failed to allocate IP {a['clusterIP']}: provided IP is already allocated" in taken.stderr
    )
    outside = server.kubectl(
        "create", "-f", "-", stdin=_service("b", clusterIP="192.168.7.7"), check=False
    )
    assert outside.returncode != 0
    assert (
        "the provided IP (192.168.7.7) is not in the valid range. The range of valid IPs is "
        f"{SERVICE_CIDR}" in outside.stderr
    )

    changed = server.kubectl(
        "patch", "svc/a", "--type=merge", "-p", '{"spec":{"clusterIP":"10.43.9.9"}}', check=False
    )
    assert changed.returncode != 0 and "may not change once set" in changed.stderr
    # released on delete: the same address can be asked for again
    server.kubectl("delete", "svc/a")
    server.kubectl("create", "-f", "-", stdin=_service("b", clusterIP=a["clusterIP"]))
    assert _get(server, "svc/b")["spec"]["clusterIP"] == a["clusterIP"]

    server.kubectl("create", "-f", "-", stdin=_service("headless", clusterIP="None"))
    assert _get(server, "svc/headless")["spec"]["clusterIPs"] == ["None"]
    table = server.kubectl("get", "svc", "b").stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert table[1].split()[:5] == ["b", "ClusterIP", a["clusterIP"], "<none>", "80/TCP"]


DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "ports": [{"name": "http", "containerPort": 8080}],
                    }
                ]
            },
        },
    },
}


def _slices(server: Server, service: str) -> list[Json]:
    items: list[Json] = _get(
        server, "endpointslices", "-l", f"kubernetes.io/service-name={service}"
    )["items"]
    return items


def _ready_addresses(server: Server) -> dict[str, bool]:
    return {
        e["addresses"][0]: e["conditions"]["ready"]
        for s in _slices(server, "web")
        for e in s.get("endpoints") or []
    }


def test_endpoint_slices_and_budgets(server: Server) -> None:
    server.kubectl(
        "create",
        "-f",
        "-",
        stdin=_service(
            "web",
            selector={"app": "web"},
            ports=[{"name": "web", "port": 80, "targetPort": "http"}],
        ),
    )
    [placeholder] = wait_for("an empty slice", lambda: _slices(server, "web"))
    assert not placeholder.get("endpoints")
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}},
    }
    server.kubectl("create", "-f", "-", stdin=json.dumps(budget))
    with KubeletDouble(server.api()) as kubelet:
        server.kubectl("create", "-f", "-", stdin=json.dumps(DEPLOYMENT))
        addresses = wait_for(
            "three ready endpoints",
            lambda: r if len(r := _ready_addresses(server)) == 3 and all(r.values()) else None,
        )
        [web] = _slices(server, "web")
        assert (
            web["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"]
            == "endpointslice-controller.k8s.io"
        )
        assert web["metadata"]["name"].startswith("web-")
        assert web["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]
        assert web["metadata"]["ownerReferences"][0]["kind"] == "Service"
        pods = _get(server, "pods", "-l", "app=web")["items"]
        assert set(addresses) == {p["status"]["podIP"] for p in pods}
        assert {e["targetRef"]["name"] for e in web["endpoints"]} == {
            p["metadata"]["name"] for p in pods
        }

        status = wait_for(
            "the budget's status",
            lambda: (
                (s := _get(server, "pdb/web").get("status") or {}).get("currentHealthy") == 3 and s
            ),
        )
        assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (
            3,
            2,
            1,
        )
        [condition] = status["conditions"]
        assert (condition["type"], condition["status"], condition["reason"]) == (
            "DisruptionAllowed",
            "True",
            "SufficientPods",
        )

        # a pod stops being ready: its endpoint says so, and the budget allows nothing more
        unready = pods[0]["metadata"]["name"]
        kubelet.unready.add(unready)
        wait_for(
            "a not-ready endpoint",
            lambda: sorted(_ready_addresses(server).values()) == [False, True, True],
        )
        status = wait_for(
            "the budget to count it",
            lambda: (s := _get(server, "pdb/web")["status"]).get("currentHealthy") == 2 and s,
        )
        assert status["disruptionsAllowed"] == 0
        assert status["conditions"][0]["reason"] == "InsufficientPods"
        table = server.kubectl("get", "pdb", "web").stdout.splitlines()
        assert table[0].split() == [
            "NAME",
            "MIN",
            "AVAILABLE",
            "MAX",
            "UNAVAILABLE",
            "ALLOWED",
            "DISRUPTIONS",
            "AGE",
        ]
        assert table[1].split()[:4] == ["web", "N/A", "1", "0"]


def test_selectorless_slices_are_left_alone(server: Server) -> None:
    server.kubectl("create", "-f", "-", stdin=_service("external"))
    mine = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "external-1", "labels": {"kubernetes.io/service-name": "external"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.9.9.9"]}],
        "ports": [{"port": 443}],
    }
    server.kubectl("create", "-f", "-", stdin=json.dumps(mine))
    # a Service with a selector next to it gets its slice: the controller has looked by then
    server.kubectl("create", "-f", "-", stdin=_service("other", selector={"app": "x"}))
    wait_for("the other Service's slice", lambda: _slices(server, "other"))
    [kept] = _slices(server, "external")
    assert kept["endpoints"] == [{"addresses": ["10.9.9.9"]}]
    assert kept["metadata"]["name"] == "external-1"
