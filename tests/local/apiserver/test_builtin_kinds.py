"""Built-in kinds on the real server are read and checked as kube-apiserver reads and checks them.

A body is decoded against Kubernetes' own types first (a wrong JSON type is a 400 in Go's words;
an unknown field is refused under fieldValidation=Strict, a warning under Warn, dropped quietly
under Ignore), then validated by Kubernetes' rules (422 Invalid with one cause per problem).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from kvd.local.apiserver.serviceaccounts.controller import ROOT_CA
from tests.local.apiserver import rawhttp
from tests.local.apiserver.conftest import CRDS, Server, start_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]  # each starts an API server
CONFIGMAPS = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"
BAD_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "typo", "bogusMeta": "x"},
    "spec": {"containers": [{"name": "c", "image": "busybox", "imagePullPolizy": "Always"}]},
}
UNKNOWN = 'unknown field "metadata.bogusMeta", unknown field "spec.containers[0].imagePullPolizy"'


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: every test here uses its own object names."""
    s = start_server(tmp_path_factory.mktemp("builtin") / "data")
    yield s
    s.stop()


def _post(server: Server, path: str, body: Any, query: str = "") -> tuple[int, Any, Any]:
    status, headers, raw = rawhttp.request(
        server,
        "POST",
        path + query,
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    return status, headers, json.loads(raw)


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    containers = [{"name": "c", "image": "busybox"}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": containers, **spec},
    }


def _configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def _apply(server: Server, doc: dict[str, Any], namespace: str = "default") -> None:
    done = server.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(doc))
    assert "warning" not in done.stderr.lower(), done.stderr


def _container(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "image": "busybox", **fields}


def test_unknown_fields_strict_is_400_naming_them(shared: Server) -> None:
    status, _, answer = _post(shared, PODS, BAD_POD, "?fieldValidation=Strict")
    assert (status, answer["reason"]) == (400, "BadRequest")
    assert answer["message"] == f"strict decoding error: {UNKNOWN}"
    done = shared.kubectl("create", "-f", "-", stdin=json.dumps(BAD_POD), check=False)
    assert done.returncode == 1  # kubectl's default --validate=strict asks the server
    assert f"strict decoding error: {UNKNOWN}" in done.stderr


def test_unknown_fields_warn_by_default_and_are_dropped(shared: Server) -> None:
    pod = {**BAD_POD, "metadata": {**BAD_POD["metadata"], "name": "warned"}}  # type: ignore[dict-item]
    status, headers, stored = _post(shared, PODS, pod)
    assert status == 201
    assert headers.get_all("Warning") == [
        '299 - "unknown field \\"metadata.bogusMeta\\""',
        '299 - "unknown field \\"spec.containers[0].imagePullPolizy\\""',
    ]
    assert "bogusMeta" not in stored["metadata"]
    (container,) = stored["spec"]["containers"]
    container.pop("volumeMounts")  # the ServiceAccount admission plugin's token mount
    assert container == {"name": "c", "image": "busybox"}
    again = client.CoreV1Api(shared.api()).read_namespaced_pod("warned", "default")
    assert again.spec.containers[0].image_pull_policy is None
    done = shared.kubectl(
        "create",
        "--validate=warn",
        "-f",
        "-",
        stdin=json.dumps({**pod, "metadata": {"name": "warned-kubectl", "bogusMeta": "x"}}),
    )
    assert 'Warning: unknown field "metadata.bogusMeta"' in done.stderr


def test_unknown_fields_ignore_drops_them_quietly(shared: Server) -> None:
    pod = {**BAD_POD, "metadata": {"name": "ignored", "bogusMeta": "x"}}
    status, headers, stored = _post(shared, PODS, pod, "?fieldValidation=Ignore")
    assert status == 201 and headers.get_all("Warning") is None
    assert "bogusMeta" not in stored["metadata"]
    assert "imagePullPolizy" not in stored["spec"]["containers"][0]


def test_a_wrongly_typed_configmap_is_refused_and_the_namespace_stays_readable(
    shared: Server,
) -> None:
    _apply(shared, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "typed"}})
    _apply(shared, _configmap("patched", a="b"), "typed")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"x": True}}
    status, _, answer = _post(shared, "/api/v1/namespaces/typed/configmaps", body)
    assert (status, answer["reason"]) == (400, "BadRequest")
    assert answer["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal bool '
        "into Go struct field ConfigMap.data of type string"
    )
    # a patch cannot sneak the wrong type in either
    status, _, raw = rawhttp.request(
        shared,
        "PATCH",
        "/api/v1/namespaces/typed/configmaps/patched",
        json.dumps({"data": {"a": 1}}).encode(),
        {"Content-Type": "application/merge-patch+json"},
    )
    assert status == 400
    assert b"cannot unmarshal number into Go struct field ConfigMap.data of type string" in raw
    # so the namespace stays readable by the python client and kubectl describe
    core = client.CoreV1Api(shared.api())
    listed = core.list_namespaced_config_map("typed").items
    assert [(c.metadata.name, c.data) for c in listed if c.metadata.name != ROOT_CA] == [
        ("patched", {"a": "b"})
    ]
    described = shared.kubectl("describe", "configmaps", "-n", "typed").stdout
    assert "patched" in described


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            _pod("q1", containers=[_container(resources={"limits": {"memory": "lots"}})]),
            'Pod in version "v1" cannot be handled as a Pod: quantities must match the '
            "regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
            id="quantity",
        ),
        pytest.param(
            _pod("n1", containers=[_container(command="sleep 1")]),
            'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into '
            "Go struct field Container.spec.containers.command of type []string",
            id="string-for-list",
        ),
        pytest.param(
            _pod("n2", containers=[_container(ports=[{"containerPort": 80.5}])]),
            'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal number 80.5 '
            "into Go struct field ContainerPort.spec.containers.ports.containerPort of type int32",
            id="fraction-for-int32",
        ),
        pytest.param(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "!"}},
            'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input '
            "byte 0",
            id="secret-not-base64",
        ),
        pytest.param(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "l", "labels": {"a": 1}},
            },
            'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal '
            "number into Go struct field ObjectMeta.metadata.labels of type string",
            id="label-number",
        ),
    ],
)
def test_bodies_that_are_not_the_kind_are_400(
    shared: Server, body: dict[str, Any], message: str
) -> None:
    path = f"/api/v1/namespaces/default/{body['kind'].lower()}s"
    status, _, answer = _post(shared, path, body)
    assert (status, answer["reason"], answer["message"]) == (400, "BadRequest", message)


def _invalid(shared: Server, body: dict[str, Any]) -> list[tuple[str, str]]:
    path = f"/api/v1/namespaces/default/{body['kind'].lower()}s"
    status, _, answer = _post(shared, path, body)
    assert (status, answer["reason"]) == (422, "Invalid"), answer
    assert answer["details"]["kind"] == body["kind"]
    return [(c["field"], c["message"]) for c in answer["details"]["causes"]]


LABEL_ERROR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


@pytest.mark.parametrize(
    ("body", "causes"),
    [
        pytest.param(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "e"},
                "spec": {"containers": []},
            },
            [("spec.containers", "Required value")],
            id="no-containers",
        ),
        pytest.param(
            _pod("cn", containers=[_container(name="Web_1")]),
            [("spec.containers[0].name", f'Invalid value: "Web_1": {LABEL_ERROR}')],
            id="container-name",
        ),
        pytest.param(
            _pod("dup", containers=[_container(), _container()]),
            [("spec.containers[1].name", 'Duplicate value: "c"')],
            id="duplicate-container",
        ),
        pytest.param(
            _pod("img", containers=[{"name": "c"}]),
            [("spec.containers[0].image", "Required value")],
            id="no-image",
        ),
        pytest.param(
            _pod(
                "ports",
                containers=[
                    _container(ports=[{"containerPort": 70000, "name": "Web", "protocol": "ICMP"}])
                ],
            ),
            [
                (
                    "spec.containers[0].ports[0].name",
                    'Invalid value: "Web": must contain only alpha-numeric characters (a-z, 0-9), '
                    "and hyphens (-)",
                ),
                (
                    "spec.containers[0].ports[0].containerPort",
                    "Invalid value: 70000: must be between 1 and 65535, inclusive",
                ),
                (
                    "spec.containers[0].ports[0].protocol",
                    'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"',
                ),
            ],
            id="ports",
        ),
        pytest.param(
            _pod(
                "res",
                containers=[
                    _container(
                        resources={"limits": {"cpu": "1", "gpu": "1"}, "requests": {"cpu": "2"}}
                    )
                ],
            ),
            [
                (
                    "spec.containers[0].resources.limits[gpu]",
                    'Invalid value: "gpu": must be a standard resource for containers',
                ),
                (  # defaulted from the limit, as kube defaults a pod before validating it
                    "spec.containers[0].resources.requests[gpu]",
                    'Invalid value: "gpu": must be a standard resource for containers',
                ),
                (
                    "spec.containers[0].resources.requests",
                    'Invalid value: "2": must be less than or equal to cpu limit of 1',
                ),
            ],
            id="resources",
        ),
        pytest.param(
            _pod("neg", containers=[_container(resources={"requests": {"memory": "-1Gi"}})]),
            [
                (
                    "spec.containers[0].resources.requests[memory]",
                    'Invalid value: "-1Gi": must be greater than or equal to 0',
                )
            ],
            id="negative-quantity",
        ),
        pytest.param(
            _pod(
                "vols",
                containers=[_container(volumeMounts=[{"name": "missing", "mountPath": "/m"}])],
                volumes=[{"name": "Data"}],
            ),
            [
                ("spec.volumes[0]", "Required value: must specify a volume type"),
                ("spec.volumes[0].name", f'Invalid value: "Data": {LABEL_ERROR}'),
                ("spec.containers[0].volumeMounts[0].name", 'Not found: "missing"'),
            ],
            id="volumes",
        ),
        pytest.param(
            _pod("rp", restartPolicy="Sometimes"),
            [
                (
                    "spec.restartPolicy",
                    'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", '
                    '"Never"',
                )
            ],
            id="restart-policy",
        ),
        pytest.param(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "keys"},
                "data": {"bad key": "v", "..": "v"},
                "binaryData": {"bad key": "dg=="},
            },
            [
                (
                    "data[bad key]",
                    'Invalid value: "bad key": a valid config key must consist of alphanumeric '
                    "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                    "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ),
                (
                    "data[bad key]",
                    'Invalid value: "bad key": duplicate of key present in binaryData',
                ),
                ("data[..]", "Invalid value: \"..\": must not be '..'"),
                (
                    "binaryData[bad key]",
                    'Invalid value: "bad key": a valid config key must consist of alphanumeric '
                    "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                    "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                ),
            ],
            id="configmap-keys",
        ),
        pytest.param(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "tls"},
                "type": "kubernetes.io/tls",
                "data": {"tls.crt": "eA=="},
            },
            [("data[tls.key]", "Required value")],
            id="tls-secret",
        ),
    ],
)
def test_kubernetes_validation_rules_are_422_with_causes(
    shared: Server, body: dict[str, Any], causes: list[tuple[str, str]]
) -> None:
    assert _invalid(shared, body) == causes


def test_size_limits(shared: Server) -> None:
    big = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}}
    status, _, answer = _post(shared, CONFIGMAPS, {**big, "data": {"a": "x" * (2 * 1024 * 1024)}})
    assert status == 422
    assert (
        answer["message"]
        == 'ConfigMap "big" is invalid: []: Too long: must have at most 1048576 bytes'
    )
    exactly = {**big, "data": {"a": "x" * (1024 * 1024)}}
    assert _post(shared, CONFIGMAPS, exactly)[0] == 201
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "big"}}
    value = base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()
    status, _, answer = _post(
        shared, "/api/v1/namespaces/default/secrets", {**secret, "data": {"a": value}}
    )
    assert (status, answer["message"]) == (
        422,
        'Secret "big" is invalid: data: Too long: must have at most 1048576 bytes',
    )
    annotations = {"a": "x" * (256 * 1024)}
    status, _, answer = _post(
        shared, CONFIGMAPS, {**big, "metadata": {"name": "notes", "annotations": annotations}}
    )
    assert (status, answer["details"]["causes"][0]["field"]) == (422, "metadata.annotations")


def test_secret_string_data_is_stored_as_data(shared: Server) -> None:
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "strings"},
        "data": {"a": base64.b64encode(b"old").decode(), "b": base64.b64encode(b"kept").decode()},
        "stringData": {"a": "new"},
    }
    status, _, stored = _post(shared, "/api/v1/namespaces/default/secrets", body)
    assert status == 201
    assert "stringData" not in stored
    assert {k: base64.b64decode(v) for k, v in stored["data"].items()} == {
        "a": b"new",
        "b": b"kept",
    }


def test_custom_resource_metadata_is_pruned_to_object_meta(shared: Server, tmp_path: Path) -> None:
    shared.kubectl("apply", "-f", str(CRDS))
    shared.kubectl("wait", "--for=condition=established", "--timeout=30s", "crd", "--all")
    vm = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "meta", "bogusMeta": "x"},
        "spec": {
            "runStrategy": "Halted",
            "template": {"spec": {"domain": {"devices": {}, "memory": {"guest": "64Mi"}}}},
        },
    }
    path = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines"
    status, _, answer = _post(shared, path, vm, "?fieldValidation=Strict")
    assert (status, answer["message"]) == (
        400,
        'strict decoding error: unknown field "metadata.bogusMeta"',
    )
    status, headers, stored = _post(shared, path, vm)
    assert status == 201, stored["message"]
    assert headers.get_all("Warning") == ['299 - "unknown field \\"metadata.bogusMeta\\""']
    assert "bogusMeta" not in stored["metadata"]


def test_what_kvd_and_kubectl_write_is_accepted(shared: Server, tmp_path: Path) -> None:
    """The shapes kvd's own components and kubectl's generators produce stay valid."""
    _apply(shared, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "everyday"}})
    _apply(shared, _configmap("settings", k="v"), "everyday")
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}}
    _apply(shared, {**secret, "type": "Opaque", "stringData": {"p": "q"}}, "everyday")
    _apply(
        shared,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}},
        "everyday",
    )
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "launcher", "namespace": "everyday"},
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 45,
                    "nodeSelector": {"kubevirt.io/schedulable": "true"},
                    "containers": [
                        {
                            "name": "compute",
                            "image": "kvd:local",
                            "command": ["kvd", "launcher"],
                            "resources": {"requests": {"memory": "1124Mi", "cpu": "100m"}},
                            "volumeMounts": [{"name": "sockets", "mountPath": "/var/run/kvd"}],
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                }
                            ],
                        },
                        {"name": "guest-console-log", "image": "kvd:local"},
                    ],
                    "volumes": [{"name": "sockets", "hostPath": {"path": "/run/kvd/sockets"}}],
                },
            }
        )
    )
    shared.kubectl("apply", "-f", str(manifest))
    described = shared.kubectl("describe", "configmaps,secrets,pods", "-n", "everyday").stdout
    assert "settings" in described and "launcher" in described


def test_generation_only_where_kube_keeps_one(shared: Server) -> None:
    """A ConfigMap has no metadata.generation in kube (kubectl diff would show one moving); a
    Pod has one, bumped by spec changes only."""
    core = client.CoreV1Api(shared.api())
    cm = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "no-generation"}, "data": {"a": "1"}}
    )
    assert cm.metadata.generation is None
    cm = core.patch_namespaced_config_map("no-generation", "default", {"data": {"a": "2"}})
    assert cm.metadata.generation is None
    pod = core.create_namespaced_pod("default", _pod("with-generation"))
    assert pod.metadata.generation == 1
    pod = core.patch_namespaced_pod(
        "with-generation", "default", {"metadata": {"labels": {"a": "b"}}}
    )
    assert pod.metadata.generation == 1
    image = {"spec": {"containers": [{"name": "c", "image": "busybox:2"}]}}
    pod = core.patch_namespaced_pod("with-generation", "default", image)
    assert pod.metadata.generation == 2
