"""Request accounting: kube's verbs for each kind of request, and `kubectl get --raw /metrics`
showing the writes a client made."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kvd.local.apiserver.accounting import Request, classify
from tests.local.apiserver.conftest import Server


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        pytest.param(
            "GET", "/api/v1/namespaces/default/pods", {}, Request("list", "", "v1", "pods", ""),
            id="list",
        ),
        pytest.param(
            "GET", "/api/v1/pods", {"watch": "true"}, Request("watch", "", "v1", "pods", ""),
            id="watch-all-namespaces",
        ),
        pytest.param(
            "GET", "/api/v1/namespaces/default/pods/p/log", {},
            Request("get", "", "v1", "pods", "log"), id="subresource",
        ),
        pytest.param(
            "POST", "/api/v1/namespaces/default/events", {},
            Request("create", "", "v1", "events", ""), id="create",
        ),
        pytest.param(
            "PATCH", "/apis/kubevirt.io/v1/namespaces/ns/virtualmachineinstances/vm", {},
            Request("patch", "kubevirt.io", "v1", "virtualmachineinstances", ""), id="patch-cr",
        ),
        pytest.param(
            "PUT", "/apis/coordination.k8s.io/v1/namespaces/kvd/leases/l", {},
            Request("update", "coordination.k8s.io", "v1", "leases", ""), id="update",
        ),
        pytest.param(
            "DELETE", "/api/v1/namespaces/default/pods", {},
            Request("deletecollection", "", "v1", "pods", ""), id="deletecollection",
        ),
        pytest.param(
            "DELETE", "/api/v1/namespaces/gone", {},
            Request("delete", "", "v1", "namespaces", ""), id="namespace-itself",
        ),
        pytest.param(
            "PUT", "/api/v1/namespaces/gone/finalize", {},
            Request("update", "", "v1", "namespaces", "finalize"), id="namespace-subresource",
        ),
        pytest.param(
            "GET", "/api/v1/nodes/n1", {}, Request("get", "", "v1", "nodes", ""), id="cluster-get"
        ),
        pytest.param("GET", "/apis/kubevirt.io/v1", {}, None, id="discovery"),
        pytest.param("GET", "/version", {}, None, id="version"),
        pytest.param("GET", "/openapi/v3", {}, None, id="openapi"),
    ],
)  # fmt: skip
def test_classify(method: str, path: str, query: dict[str, str], expected: Request | None) -> None:
    assert classify(method, path, query) == expected


@pytest.mark.integration  # a kvd local apiserver process
def test_kubectl_reads_the_counts_of_its_own_writes(server: Server) -> None:
    server.kubectl("create", "namespace", "counted", "--dry-run=client", "-o", "yaml")
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: v}\n"
    server.kubectl("apply", "-f", "-", stdin=manifest)
    server.kubectl("annotate", "configmap", "c", "a=b")
    server.kubectl("delete", "configmap", "c")
    server.kubectl("get", "configmap", "c", check=False)
    text = server.kubectl("get", "--raw", "/metrics").stdout
    counts = {
        (s.labels["verb"], s.labels["resource"], s.labels["code"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "apiserver_request_total"
    }
    assert counts[("create", "configmaps", "201")] == 1
    assert counts[("patch", "configmaps", "200")] == 1
    assert counts[("delete", "configmaps", "200")] == 1
    assert counts[("get", "configmaps", "404")] >= 1


@pytest.mark.integration  # a kvd local apiserver process
def test_metrics_need_a_token(server: Server) -> None:
    import ssl  # noqa: PLC0415
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{server.url}/metrics", context=context, timeout=10)
    assert refused.value.code == 401
