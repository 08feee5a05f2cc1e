"""/openapi/v2 and /openapi/v3 on the real server, read by real kubectl 1.37.

kubectl explain reads 3.0 by default and 2.0 (as protobuf, the only form client-go asks for)
with `--output=plaintext-openapiv2`; client-side apply and diff compute strategic merge patches
from 3.0 and warn when they cannot. Documents are cached the way kube-openapi lets clients
cache them: ETags with 304s, hashed URLs marked immutable, old hashes redirected.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml

from tests.local.apiserver import rawhttp
from tests.local.apiserver.conftest import Server

pytestmark = pytest.mark.timeout(180)
V2_PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def test_kubectl_explain_reads_kubernetes_own_descriptions(server: Server) -> None:
    containers = server.kubectl("explain", "pod.spec.containers").stdout
    assert "FIELD: containers <[]Container>" in containers
    assert "List of containers belonging to the pod." in containers
    assert "imagePullPolicy\t<string>" in containers
    env = server.kubectl("explain", "pod.spec.containers.env").stdout
    assert "List of environment variables to set in the container." in env
    configmap = server.kubectl("explain", "configmap.data").stdout
    assert "Data contains the configuration data." in configmap
    lease = server.kubectl("explain", "lease.spec.holderIdentity").stdout
    assert "holderIdentity contains the identity of the holder" in lease


def test_kubectl_explain_over_openapi_v2_protobuf(server: Server) -> None:
    out = server.kubectl("explain", "pod.spec", "--output=plaintext-openapiv2").stdout
    assert "PodSpec is a description of a pod." in out
    assert "containers\t<[]Object> -required-" in out
    node = server.kubectl("explain", "node.status", "--output=plaintext-openapiv2").stdout
    assert "NodeStatus is information about the current status of a node." in node


def test_kubectl_explain_a_custom_resource(with_crds: Server) -> None:
    with_crds.kubectl("api-resources")  # kubectl's discovery cache predates the CRDs
    out = with_crds.kubectl("explain", "vmi.spec.domain").stdout
    assert "KIND:       VirtualMachineInstance" in out
    assert "GROUP:      kubevirt.io" in out
    v2 = with_crds.kubectl("explain", "vmi.spec", "--output=plaintext-openapiv2").stdout
    assert "domain\t<Object> -required-" in v2


def _apply(server: Server, path: Path, doc: dict[str, object]) -> str:
    path.write_text(yaml.safe_dump(doc))
    done = server.kubectl("apply", "-f", str(path))
    assert "warning" not in done.stderr.lower(), done.stderr
    return done.stdout


def test_client_side_apply_and_diff_merge_by_kubernetes_patch_keys(
    server: Server, tmp_path: Path
) -> None:
    manifest = tmp_path / "pod.yaml"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "env": [{"name": "A", "value": "1"}]},
            ]
        },
    }
    assert "created" in _apply(server, manifest, pod)
    # someone else adds a variable; apply must merge by name (x-kubernetes-patch-merge-key)
    server.kubectl(
        "patch",
        "pod",
        "web",
        "--type=strategic",
        "-p",
        json.dumps({"spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": "2"}]}]}}),
    )
    pod["spec"]["containers"][0]["env"][0]["value"] = "changed"  # type: ignore[index]
    manifest.write_text(yaml.safe_dump(pod))
    diff = server.kubectl("diff", "-f", str(manifest), check=False)
    assert diff.returncode == 1, diff.stderr  # 1: differences found
    assert "warning" not in diff.stderr.lower(), diff.stderr
    assert "+      value: changed" in diff.stdout
    assert "configured" in _apply(server, manifest, pod)
    got = json.loads(server.kubectl("get", "pod", "web", "-o", "json").stdout)
    assert sorted(got["spec"]["containers"][0]["env"], key=lambda e: e["name"]) == [
        {"name": "A", "value": "changed"},
        {"name": "B", "value": "2"},
    ]
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert "created" in _apply(server, tmp_path / "cm.yaml", {**configmap, "data": {"a": "1"}})
    assert "configured" in _apply(server, tmp_path / "cm.yaml", {**configmap, "data": {"a": "2"}})


def test_v2_is_json_or_protobuf_by_accept_and_cached_by_etag(server: Server) -> None:
    status, headers, body = rawhttp.request(server, "GET", "/openapi/v2")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["swagger"] == "2.0"
    pod = doc["definitions"]["io.k8s.api.core.v1.Pod"]
    assert pod["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "Pod", "version": "v1"}]
    containers = doc["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["x-kubernetes-list-type"] == "map"
    etag = headers["ETag"]
    assert etag.startswith('"') and len(etag) == 128 + 2

    status, headers, proto = rawhttp.request(
        server, "GET", "/openapi/v2", headers={"Accept": V2_PROTOBUF}
    )
    assert status == 200
    assert headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert headers["ETag"] == etag
    assert proto[:2] == b"\x0a\x03" and b"io.k8s.api.core.v1.PodSpec" in proto  # swagger "2.0"

    status, _, body = rawhttp.request(server, "GET", "/openapi/v2", headers={"If-None-Match": etag})
    assert (status, body) == (304, b"")
    status, headers, body = rawhttp.request(
        server, "GET", "/openapi/v2", headers={"Accept-Encoding": "gzip"}
    )
    assert headers["Content-Encoding"] == "gzip" and json.loads(gzip.decompress(body)) == doc
    status, _, _ = rawhttp.request(server, "GET", "/openapi/v2", headers={"Accept": "text/html"})
    assert status == 406


def test_v3_index_hashes_documents_and_follows_crds(server: Server) -> None:
    status, _, body = rawhttp.request(server, "GET", "/openapi/v3")
    assert status == 200
    paths = json.loads(body)["paths"]
    assert "apis/kubevirt.io/v1" not in paths
    url = paths["api/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/api/v1?hash=")
    status, headers, body = rawhttp.request(server, "GET", url)
    assert status == 200
    assert headers["Cache-Control"] == "public, immutable" and headers["Expires"]
    etag = headers["ETag"]
    assert etag == f'"{url.split("hash=")[1]}"'
    doc = json.loads(body)
    schemas = doc["components"]["schemas"]
    assert "io.k8s.api.core.v1.Pod" in schemas and "io.k8s.api.core.v1.ConfigMap" in schemas
    spec = schemas["io.k8s.api.core.v1.Pod"]["properties"]["spec"]
    assert spec["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}]
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])

    status, headers, _ = rawhttp.request(server, "GET", "/openapi/v3/api/v1?hash=0BSOLETE")
    assert status == 301 and headers["Location"] == url
    status, _, body = rawhttp.request(server, "GET", url, headers={"If-None-Match": etag})
    assert (status, body) == (304, b"")
    status, _, _ = rawhttp.request(server, "GET", "/openapi/v3/apis/nothing.example.com/v1")
    assert status == 404

    crds = Path(__file__).resolve().parents[3] / "charts" / "kvd" / "crds"
    server.kubectl("apply", "-f", str(crds))
    _, _, body = rawhttp.request(server, "GET", "/openapi/v3")
    kubevirt = json.loads(body)["paths"]["apis/kubevirt.io/v1"]["serverRelativeURL"]
    _, _, body = rawhttp.request(server, "GET", kubevirt)
    doc = json.loads(body)
    vmi = doc["components"]["schemas"]["io.kubevirt.v1.VirtualMachineInstance"]
    assert vmi["x-kubernetes-group-version-kind"][0]["kind"] == "VirtualMachineInstance"
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in doc["components"]["schemas"]
    patch = doc["paths"][
        "/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachineinstances/{name}"
    ]
    assert "application/strategic-merge-patch+json" not in patch["patch"]["requestBody"]["content"]
    _, _, v2 = rawhttp.request(server, "GET", "/openapi/v2")
    assert "io.kubevirt.v1.VirtualMachineInstance" in json.loads(v2)["definitions"]
