"""The scale subresource of a custom resource, as kube-apiserver serves it for a CRD that
declares one (kubevirt.io's VirtualMachineInstanceReplicaSet): an autoscaling/v1 Scale over the
CRD's replica and selector paths, read and written with GET, PUT and PATCH, and `kubectl scale`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from kvd.kube import client
from tests.local.apiserver.conftest import CRDS, Server, start_server

pytestmark = pytest.mark.integration  # starts a kvd local apiserver

SETS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstancereplicasets"
Json = dict[str, Any]


def _set(raw: client.Raw, name: str, replicas: int = 2) -> Json:
    labels = {"app": name}
    created: Json = raw.create(
        SETS,
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstanceReplicaSet",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}
                    },
                },
            },
        },
    )
    return created


@pytest.fixture(scope="module")
def crds_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module (each test names its own objects)."""
    server = start_server(tmp_path_factory.mktemp("scale") / "data")
    try:
        server.kubectl("apply", "-f", str(CRDS))
        server.kubectl("wait", "--for=condition=established", "--timeout=30s", "crd", "--all")
        yield server
    finally:
        server.stop()


@pytest.fixture
def raw(crds_server: Server) -> client.Raw:
    return client.Raw(client.connect(crds_server.kubeconfig))


def test_get_reads_the_crds_paths(raw: client.Raw) -> None:
    made = _set(raw, "read")
    raw.merge_patch(f"{SETS}/read/status", {"status": {"replicas": 1, "labelSelector": "app=read"}})
    scale = raw.get(f"{SETS}/read/scale")
    assert (scale["apiVersion"], scale["kind"]) == ("autoscaling/v1", "Scale")
    assert (
        scale["metadata"]["name"] == "read" and scale["metadata"]["uid"] == made["metadata"]["uid"]
    )
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"] == {"replicas": 1, "selector": "app=read"}


def test_put_and_patch_write_spec_replicas_only(raw: client.Raw) -> None:
    _set(raw, "write")
    scale = raw.get(f"{SETS}/write/scale")
    scale["spec"]["replicas"] = 5
    scale["status"] = {"replicas": 99}  # the status is the controller's: ignored
    assert raw.update(f"{SETS}/write/scale", scale)["spec"]["replicas"] == 5
    stored = raw.get(f"{SETS}/write")
    assert stored["spec"]["replicas"] == 5 and "replicas" not in (stored.get("status") or {})
    assert stored["metadata"]["generation"] == 2  # a spec change, as any other
    raw.merge_patch(f"{SETS}/write/scale", {"spec": {"replicas": 3}})
    assert raw.get(f"{SETS}/write")["spec"]["replicas"] == 3
    raw.request(
        "PATCH",
        f"{SETS}/write/scale",
        body=[{"op": "replace", "path": "/spec/replicas", "value": 0}],
        content_type="application/json-patch+json",
    )
    assert raw.get(f"{SETS}/write")["spec"]["replicas"] == 0


def test_a_stale_resource_version_conflicts(raw: client.Raw) -> None:
    _set(raw, "stale")
    stale = raw.get(f"{SETS}/stale/scale")
    raw.merge_patch(f"{SETS}/stale", {"metadata": {"labels": {"x": "y"}}})
    stale["spec"]["replicas"] = 7
    with pytest.raises(client.ApiError) as caught:
        raw.update(f"{SETS}/stale/scale", stale)
    assert caught.value.status == 409
    assert raw.get(f"{SETS}/stale")["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("name", "replicas"),
    [("negative", -1), ("string", "3"), ("missing", None)],
)
def test_bad_replicas_are_refused(raw: client.Raw, name: str, replicas: object) -> None:
    _set(raw, name)
    with pytest.raises(client.ApiError) as caught:
        raw.merge_patch(f"{SETS}/{name}/scale", {"spec": {"replicas": replicas}})
    assert caught.value.status == 422
    assert "spec.replicas" in caught.value.message


def test_a_strategic_merge_patch_is_refused_as_for_any_custom_resource(raw: client.Raw) -> None:
    _set(raw, "smp")
    with pytest.raises(client.ApiError) as caught:
        raw.request(
            "PATCH",
            f"{SETS}/smp/scale",
            body={"spec": {"replicas": 1}},
            content_type="application/strategic-merge-patch+json",
        )
    assert caught.value.status == 415


def test_a_kind_without_the_subresource_has_no_scale(raw: client.Raw) -> None:
    with pytest.raises(client.ApiError) as caught:
        raw.get("/apis/kubevirt.io/v1/namespaces/default/virtualmachines/x/scale")
    assert caught.value.status == 404
    with pytest.raises(client.ApiError) as caught:
        raw.get(f"{SETS}/nothere/scale")
    assert caught.value.status == 404


def test_kubectl_scale(crds_server: Server, raw: client.Raw) -> None:
    with_crds = crds_server
    _set(raw, "kubectl")
    done = with_crds.kubectl("scale", "vmirs", "kubectl", "--replicas", "4")
    assert done.stdout.strip() == "virtualmachineinstancereplicaset.kubevirt.io/kubectl scaled"
    assert raw.get(f"{SETS}/kubectl")["spec"]["replicas"] == 4
    refused = with_crds.kubectl(
        "scale", "vmirs", "kubectl", "--current-replicas", "2", "--replicas", "1", check=False
    )
    assert refused.returncode != 0
    assert "Expected replicas to be 2, was 4" in refused.stderr
    version = raw.get(f"{SETS}/kubectl")["metadata"]["resourceVersion"]
    with_crds.kubectl("scale", "vmirs", "kubectl", "--resource-version", version, "--replicas", "1")
    assert raw.get(f"{SETS}/kubectl")["spec"]["replicas"] == 1
    stale = with_crds.kubectl(
        "scale", "vmirs", "kubectl", "--resource-version", version, "--replicas", "2", check=False
    )
    assert stale.returncode != 0  # kubectl compares the versions itself
    assert f"Expected resource version to be {version}" in stale.stderr
    scale = json.loads(with_crds.kubectl("get", "--raw", f"{SETS}/kubectl/scale").stdout)
    assert scale["spec"]["replicas"] == 1
