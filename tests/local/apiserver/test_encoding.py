"""Accept negotiation between JSON and protobuf (pure)."""

from __future__ import annotations

import pytest

from kvd.local.apiserver import encoding

PROTOBUF = "application/vnd.kubernetes.protobuf"


@pytest.mark.parametrize(
    ("accept", "protobuf", "chosen"),
    [
        pytest.param(f"{PROTOBUF},application/json", True, "protobuf", id="kubectl-typed"),
        pytest.param(f"{PROTOBUF}, */*", True, "protobuf", id="client-go-default"),
        pytest.param(f"{PROTOBUF};stream=watch,application/json", True, "protobuf", id="watch"),
        pytest.param(f"{PROTOBUF},application/json", False, "json", id="no-message-falls-back"),
        pytest.param(f"application/json,{PROTOBUF}", True, "json", id="order-decides"),
        pytest.param(f"application/json;q=0.5,{PROTOBUF}", True, "protobuf", id="q-decides"),
        pytest.param(f"{PROTOBUF};q=0,application/json", True, "json", id="q-zero-refuses"),
        pytest.param(f"{PROTOBUF}", False, None, id="protobuf-only-without-message"),
        pytest.param(f"{PROTOBUF};q=0.9", True, "protobuf", id="protobuf-only"),
        pytest.param(f"{PROTOBUF},*/*;q=0.1", False, "json", id="wildcard-fallback"),
        pytest.param("application/json", True, "json", id="json"),
        pytest.param("", True, "json", id="no-accept"),
        pytest.param("application/yaml", True, "json", id="unhonoured-stays-json"),
    ],
)
def test_negotiation(accept: str, protobuf: bool, chosen: str | None) -> None:
    assert encoding.negotiate(accept, protobuf=protobuf) == chosen


@pytest.mark.parametrize(
    ("body", "has"),
    [
        pytest.param({"apiVersion": "v1", "kind": "ConfigMap"}, True, id="core"),
        pytest.param({"apiVersion": "v1", "kind": "ConfigMapList"}, True, id="list"),
        pytest.param({"apiVersion": "v1", "kind": "Status"}, True, id="status"),
        pytest.param({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease"}, True, id="lease"),
        pytest.param({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine"}, False, id="crd"),
        pytest.param({"apiVersion": "meta.k8s.io/v1", "kind": "Table"}, False, id="table"),
        pytest.param({"kind": "APIGroupList", "groups": []}, False, id="discovery"),
        pytest.param("ok", False, id="text"),
    ],
)
def test_which_bodies_have_a_protobuf_form(body: object, has: bool) -> None:
    assert encoding.has_protobuf(body) is has
