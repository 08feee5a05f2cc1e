"""kubectl 1.37's protobuf requests against the real server: its typed commands (create
namespace, configmap, secret generic, serviceaccount; auth can-i; describe; events --watch)
send and ask for `application/vnd.kubernetes.protobuf`. Custom resources have no protobuf form,
as on kube-apiserver. The official Python client speaks JSON throughout and is unaffected."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from kvd.local.apiserver.protobuf import envelope
from tests.local.apiserver.conftest import KUBECTL, Server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]  # each starts an API server
PROTOBUF = envelope.MEDIA_TYPE
# what client-go's typed clients send
TYPED_ACCEPT = f"{PROTOBUF},application/json"
SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields")


def http(
    server: Server,
    method: str,
    path: str,
    *,
    accept: str,
    body: bytes | None = None,
    content_type: str | None = None,
) -> tuple[int, str, bytes]:
    """(status, Content-Type, body) of one request made with the kubeconfig's credentials."""
    api = server.api()
    token = api.configuration.auth_settings()["BearerToken"]
    headers = {"Accept": accept, token["key"]: token["value"]}
    if content_type is not None:
        headers["Content-Type"] = content_type
    response = api.rest_client.request(
        method, api.configuration.host + path, headers=headers, body=body
    )
    return response.status, response.headers["Content-Type"], response.read()


@pytest.mark.parametrize(
    ("create", "resource", "name"),
    [
        pytest.param(("namespace", "x"), "namespace", "x", id="namespace"),
        pytest.param(("configmap", "c", "--from-literal=a=b"), "configmap", "c", id="configmap"),
        pytest.param(("secret", "generic", "s", "--from-literal=p=q"), "secret", "s", id="secret"),
        pytest.param(("serviceaccount", "sa"), "serviceaccount", "sa", id="serviceaccount"),
    ],
)
def test_kubectl_create_stores_exactly_what_kubectl_meant(
    server: Server, create: tuple[str, ...], resource: str, name: str
) -> None:
    # kubectl prints the object it builds as JSON; for real, it sends the same one in protobuf
    meant = yaml.safe_load(
        server.kubectl("create", *create, "--dry-run=client", "-o", "yaml").stdout
    )
    assert "created" in server.kubectl("create", *create).stdout

    stored = yaml.safe_load(server.kubectl("get", resource, name, "-o", "yaml").stdout)

    expected = dict(meant["metadata"])
    if resource == "namespace":  # what kube-apiserver adds to every new namespace
        meant.update(spec={"finalizers": ["kubernetes"]}, status={"phase": "Active"})
        expected["labels"] = {"kubernetes.io/metadata.name": name}
    else:
        expected["namespace"] = "default"
    assert {k: v for k, v in stored.items() if k != "metadata"} == {
        k: v for k, v in meant.items() if k != "metadata"
    }
    metadata = {k: v for k, v in stored["metadata"].items() if k not in SERVER_SET}
    assert metadata == expected


def test_kubectl_auth_can_i(server: Server) -> None:
    # a SelfSubjectAccessReview, created and answered in protobuf
    assert server.kubectl("auth", "can-i", "create", "configmaps").stdout.strip() == "yes"


def test_typed_reads_are_answered_in_protobuf_with_the_same_content(server: Server) -> None:
    server.kubectl("create", "configmap", "c", "--from-literal=a=b", "--from-literal=n=")
    path = "/api/v1/namespaces/default/configmaps"

    status, content_type, body = http(server, "GET", f"{path}/c", accept=TYPED_ACCEPT)
    assert (status, content_type) == (200, PROTOBUF)
    _, json_type, json_body = http(server, "GET", f"{path}/c", accept="application/json")
    assert json_type == "application/json; charset=utf-8"
    assert envelope.decode(body) == yaml.safe_load(json_body)

    # (kube-root-ca.crt, in every namespace, selected away)
    only_c = f"{path}?fieldSelector=metadata.name%3Dc"
    status, content_type, body = http(server, "GET", only_c, accept=TYPED_ACCEPT)
    listed = envelope.decode(body)
    assert (status, content_type, listed["kind"]) == (200, PROTOBUF, "ConfigMapList")
    assert [item["data"] for item in listed["items"]] == [{"a": "b", "n": ""}]

    described = server.kubectl("describe", "configmap", "c").stdout
    assert "a:\n----\nb" in described


def test_errors_are_a_protobuf_status(server: Server) -> None:
    status, content_type, body = http(
        server, "GET", "/api/v1/namespaces/default/configmaps/missing", accept=TYPED_ACCEPT
    )

    assert (status, content_type) == (404, PROTOBUF)
    assert envelope.decode(body) == {
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "missing" not found',
        "reason": "NotFound",
        "details": {"name": "missing", "kind": "configmaps"},
        "code": 404,
    }
    assert (
        'configmaps "missing" not found'
        in server.kubectl("describe", "configmap", "missing", check=False).stderr
    )


def test_a_malformed_protobuf_body_is_a_bad_request(server: Server) -> None:
    status, _, body = http(
        server,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        accept="application/json",
        body=b"k8s\x00\x0a\xff",
        content_type=PROTOBUF,
    )

    assert status == 400
    assert "could not be decoded" in yaml.safe_load(body)["message"]


def test_custom_resources_have_no_protobuf_form(with_crds: Server, tmp_path: Path) -> None:
    s = with_crds
    path = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"
    body = envelope.MAGIC + b"\x0a\x00"

    status, _, answer = http(s, "POST", path, accept=TYPED_ACCEPT, body=body, content_type=PROTOBUF)
    assert (status, yaml.safe_load(answer)["reason"]) == (415, "UnsupportedMediaType")

    status, content_type, answer = http(s, "GET", path, accept=TYPED_ACCEPT)
    assert (status, content_type) == (200, "application/json; charset=utf-8")
    assert yaml.safe_load(answer)["kind"] == "VirtualMachineInstanceList"

    status, _, answer = http(s, "GET", path, accept=PROTOBUF)
    assert status == 406


def test_a_protobuf_watch_list_streams_frames(server: Server) -> None:
    server.kubectl("create", "configmap", "watched", "--from-literal=k=v")
    query = (
        "watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
        "&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"
        "&fieldSelector=metadata.name%3Dwatched"  # not kube-root-ca.crt
    )

    status, content_type, body = http(
        server,
        "GET",
        f"/api/v1/namespaces/default/configmaps?{query}",
        accept=f"{PROTOBUF};stream=watch,application/json",
    )

    assert (status, content_type) == (200, envelope.WATCH_MEDIA_TYPE)
    events = envelope.read_watch_frames(body)
    assert [(kind, obj["kind"]) for kind, obj in events[:2]] == [
        ("ADDED", "ConfigMap"),
        ("BOOKMARK", "ConfigMap"),
    ]
    assert {kind for kind, _ in events[2:]} <= {"BOOKMARK"}  # the quiet second's, if any
    assert events[0][1]["data"] == {"k": "v"}
    assert events[1][1]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_kubectl_events_watch_in_protobuf(server: Server, tmp_path: Path) -> None:
    def event(name: str) -> str:
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": "default"},
                "involvedObject": {"kind": "ConfigMap", "name": "c", "namespace": "default"},
                "reason": f"Reason{name}",
                "message": f"message of {name}",
                "type": "Normal",
                "firstTimestamp": "2026-01-02T03:04:05Z",
                "lastTimestamp": "2026-01-02T03:04:05Z",
                "count": 1,
            }
        )

    server.kubectl("create", "-f", "-", stdin=event("first"))
    log = tmp_path / "kubectl.log"
    with log.open("w") as stderr:
        watcher = subprocess.Popen(
            [KUBECTL, "events", "--watch", "-v=8"],
            env={**os.environ, "KUBECONFIG": str(server.kubeconfig), "HOME": str(server.data_dir)},
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    try:
        read_until(watcher, "message of first")  # listed; the watch goes on from there
        server.kubectl("create", "-f", "-", stdin=event("second"))
        read_until(watcher, "message of second")
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
    assert f"Content-Type: {envelope.WATCH_MEDIA_TYPE}" in log.read_text()


def read_until(proc: subprocess.Popen[bytes], text: str, timeout: float = 30) -> None:
    """Read the process's output until `text` appears (AssertionError after `timeout`)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while text.encode() not in seen:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"kubectl never printed {text!r}; it printed:\n{seen.decode()}"
            if selector.select(remaining):
                chunk = os.read(proc.stdout.fileno(), 65536)
                assert chunk, f"kubectl exited before printing {text!r}:\n{seen.decode()}"
                seen += chunk


def test_the_python_client_reads_in_json_what_kubectl_wrote_in_protobuf(server: Server) -> None:
    server.kubectl("create", "secret", "generic", "s", "--from-literal=p=q")
    core = client.CoreV1Api(server.api())

    secret: Any = core.read_namespaced_secret("s", "default")
    assert secret.data == {"p": "cQ=="}

    # what the client asks for, and so what it is answered in
    accept = core.api_client.select_header_accept(
        ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]
    )
    _, content_type, _ = http(server, "GET", "/api/v1/namespaces/default/secrets/s", accept=accept)
    assert content_type == "application/json; charset=utf-8"


def test_delete_options_in_protobuf_are_read(server: Server) -> None:
    # client-go's typed Delete sends its DeleteOptions in the client's encoding
    server.kubectl("create", "configmap", "doomed")
    path = "/api/v1/namespaces/default/configmaps/doomed"

    def delete(**options: Any) -> tuple[int, bytes]:
        body = envelope.encode({"apiVersion": "v1", "kind": "DeleteOptions", **options})
        status, _, answer = http(
            server, "DELETE", path, accept=TYPED_ACCEPT, body=body, content_type=PROTOBUF
        )
        return status, answer

    status, answer = delete(propagationPolicy="Sideways")
    assert status == 400
    assert 'Unsupported value: "Sideways"' in envelope.decode(answer)["message"]

    status, answer = delete(gracePeriodSeconds=0, propagationPolicy="Background")
    assert (status, envelope.decode(answer)["metadata"]["name"]) == (200, "doomed")
    assert server.kubectl("get", "configmap", "doomed", check=False).returncode == 1
