"""HTTP details a client sees before any object is involved, answered as kube-apiserver answers
them: write options (`dryRun`, `fieldValidation`), body media types, methods on static paths,
malformed query parameters."""

from __future__ import annotations

import json

import pytest

from tests.local.apiserver import rawhttp
from tests.local.apiserver.conftest import Server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]  # each starts an API server

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def _cm(name: str, value: str = "1") -> bytes:
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": value}}
    ).encode()


def _stored(server: Server, name: str) -> dict[str, str] | None:
    answer = rawhttp.request(server, "GET", f"{CONFIGMAPS}/{name}")
    return answer.json()["data"] if answer.status == 200 else None


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "kind"),
    [
        pytest.param(
            "POST", CONFIGMAPS, _cm("new"), "application/json", "CreateOptions", id="create"
        ),
        pytest.param(
            "PUT",
            f"{CONFIGMAPS}/c",
            _cm("c", "2"),
            "application/json",
            "UpdateOptions",
            id="update",
        ),
        pytest.param(
            "PATCH",
            f"{CONFIGMAPS}/c",
            b'{"data":{"k":"2"}}',
            "application/merge-patch+json",
            "PatchOptions",
            id="patch",
        ),
        pytest.param("DELETE", f"{CONFIGMAPS}/c", None, None, "DeleteOptions", id="delete"),
    ],
)
def test_an_unknown_dry_run_value_is_refused_and_writes_nothing(
    server: Server,
    *,
    method: str,
    path: str,
    body: bytes | None,
    content_type: str | None,
    kind: str,
) -> None:
    assert rawhttp.request(server, "POST", CONFIGMAPS, _cm("c")).status == 201

    answer = rawhttp.request(
        server, method, f"{path}?dryRun=Bogus", body, content_type=content_type
    )

    assert answer.status == 422, answer.body
    status = answer.json()
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        f'{kind}.meta.k8s.io "" is invalid: '
        'dryRun: Unsupported value: ["Bogus"]: supported values: "All"'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueNotSupported",
            "message": 'Unsupported value: ["Bogus"]: supported values: "All"',
            "field": "dryRun",
        }
    ]
    assert _stored(server, "c") == {"k": "1"}
    assert _stored(server, "new") is None


def test_dry_run_all_still_writes_nothing_and_a_delete_body_can_ask_for_it(server: Server) -> None:
    assert rawhttp.request(server, "POST", f"{CONFIGMAPS}?dryRun=All", _cm("c")).status == 201
    assert _stored(server, "c") is None
    assert rawhttp.request(server, "POST", CONFIGMAPS, _cm("c")).status == 201
    options = json.dumps({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]})
    assert rawhttp.request(server, "DELETE", f"{CONFIGMAPS}/c", options.encode()).status == 200
    assert _stored(server, "c") == {"k": "1"}
    bogus = json.dumps({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["Some"]})
    answer = rawhttp.request(server, "DELETE", f"{CONFIGMAPS}/c", bogus.encode())
    assert answer.status == 422 and "DeleteOptions" in answer.json()["message"]
    assert _stored(server, "c") == {"k": "1"}


def test_an_unknown_field_validation_value_is_refused(server: Server) -> None:
    answer = rawhttp.request(server, "POST", f"{CONFIGMAPS}?fieldValidation=Loud", _cm("c"))

    assert answer.status == 422
    assert answer.json()["message"] == (
        'CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Loud": '
        'supported values: "", "Ignore", "Strict", "Warn"'
    )
    assert _stored(server, "c") is None
    # reads ignore write options, as kube's do
    assert rawhttp.request(server, "GET", f"{CONFIGMAPS}?fieldValidation=Loud").status == 200


BUILT_IN_TYPES = "application/json, application/yaml, application/vnd.kubernetes.protobuf"


@pytest.mark.parametrize(
    "content_type",
    [
        pytest.param("text/plain", id="text"),
        pytest.param("application/x-www-form-urlencoded", id="form"),
        pytest.param("application/x-yaml", id="x-yaml"),
        pytest.param("application/cbor", id="cbor"),
        pytest.param("application/merge-patch+json", id="a-patch-type"),
    ],
)
def test_a_body_in_a_media_type_not_read_is_unsupported(server: Server, content_type: str) -> None:
    answer = rawhttp.request(server, "POST", CONFIGMAPS, _cm("c"), content_type=content_type)

    assert answer.status == 415, answer.body
    status = answer.json()
    assert status["reason"] == "UnsupportedMediaType"
    assert status["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        + BUILT_IN_TYPES
    )
    assert _stored(server, "c") is None


def test_media_types_listed_follow_the_target_and_no_content_type_means_json(
    with_crds: Server,
) -> None:
    s = with_crds
    vmis = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"
    answer = rawhttp.request(s, "POST", vmis, b"{}", content_type="text/plain")
    assert answer.status == 415
    assert answer.json()["message"].endswith("include: application/json, application/yaml")

    assert rawhttp.request(s, "POST", CONFIGMAPS, _cm("c")).status == 201
    answer = rawhttp.request(s, "PATCH", f"{CONFIGMAPS}/c", b"{}", content_type="text/plain")
    assert answer.status == 415
    assert "application/strategic-merge-patch+json" in answer.json()["message"]

    answer = rawhttp.request(s, "POST", CONFIGMAPS, _cm("untyped"), content_type=None)
    assert answer.status == 201, answer.body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("PUT", "/version", id="put-version"),
        pytest.param("POST", "/version", id="post-version"),
        pytest.param("POST", "/api", id="post-api"),
        pytest.param("DELETE", "/api/v1", id="delete-core-v1"),
        pytest.param("PUT", "/apis/storage.k8s.io/v1", id="put-group-version"),
    ],
)
def test_static_paths_refuse_other_methods(server: Server, method: str, path: str) -> None:
    answer = rawhttp.request(server, method, path, b"{}")

    assert answer.status == 405, answer.body
    status = answer.json()
    assert (status["kind"], status["reason"]) == ("Status", "MethodNotAllowed")
    assert status["message"] == "the server does not allow this method on the requested resource"


def test_static_paths_kube_serves_whatever_the_method_still_answer(server: Server) -> None:
    # kube-apiserver's health checks and the aggregator's group lists do not look at the method
    assert rawhttp.request(server, "PUT", "/healthz", b"").body == b"ok"
    assert rawhttp.request(server, "POST", "/apis", b"").json()["kind"] == "APIGroupList"
    assert rawhttp.request(server, "POST", "/apis/nowhere.example.com", b"").status == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", f"{CONFIGMAPS}?limit=ten", id="limit"),
        pytest.param("DELETE", f"{CONFIGMAPS}/c?gracePeriodSeconds=soon", id="grace-period"),
    ],
)
def test_a_malformed_integer_parameter_is_a_bad_request(
    server: Server, method: str, path: str
) -> None:
    assert rawhttp.request(server, "POST", CONFIGMAPS, _cm("c")).status == 201

    answer = rawhttp.request(server, method, path)

    assert answer.status == 400, answer.body
    assert answer.json()["reason"] == "BadRequest"
    assert _stored(server, "c") == {"k": "1"}
