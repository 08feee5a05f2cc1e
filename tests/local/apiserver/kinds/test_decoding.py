"""Built-in kinds decoded against Kubernetes' definitions, as kube-apiserver's Go decoder does."""

from __future__ import annotations

from typing import Any

import pytest

from kvd.local.apiserver import openapi
from kvd.local.apiserver.kinds.decoding import Compiled, DecodeError, decode

POD = "io.k8s.api.core.v1.Pod"
CONFIGMAP = "io.k8s.api.core.v1.ConfigMap"
CRD = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    return Compiled(openapi.load())


def _pod(**container: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", **container}]}}


@pytest.mark.parametrize(
    ("definition", "obj", "message"),
    [
        pytest.param(
            CONFIGMAP,
            {"data": {"x": True}},
            "json: cannot unmarshal bool into Go struct field ConfigMap.data of type string",
            id="map-value",
        ),
        pytest.param(
            POD,
            _pod(command="sleep"),
            "json: cannot unmarshal string into Go struct field Container.spec.containers.command"
            " of type []string",
            id="nested-list",
        ),
        pytest.param(
            POD,
            {"spec": {"containers": ["c"]}},
            "json: cannot unmarshal string into Go struct field PodSpec.spec.containers of type "
            "v1.Container",
            id="list-item-struct",
        ),
        pytest.param(
            POD,
            {"spec": []},
            "json: cannot unmarshal array into Go struct field Pod.spec of type v1.PodSpec",
            id="array-for-struct",
        ),
        pytest.param(
            POD,
            _pod(stdin="yes"),
            "json: cannot unmarshal string into Go struct field Container.spec.containers.stdin of"
            " type bool",
            id="bool",
        ),
        pytest.param(
            POD,
            {"spec": {"terminationGracePeriodSeconds": 2**63}},
            "json: cannot unmarshal number 9223372036854775808 into Go struct field "
            "PodSpec.spec.terminationGracePeriodSeconds of type int64",
            id="int64-overflow",
        ),
        pytest.param(
            POD,
            _pod(ports=[{"containerPort": 2**31}]),
            "json: cannot unmarshal number 2147483648 into Go struct field "
            "ContainerPort.spec.containers.ports.containerPort of type int32",
            id="int32-overflow",
        ),
        pytest.param(
            POD,
            _pod(livenessProbe={"tcpSocket": {"port": True}}),
            "json: cannot unmarshal bool into Go value of type int32",
            id="int-or-string",
        ),
        pytest.param(
            POD,
            {"metadata": {"creationTimestamp": "yesterday"}},
            'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" '
            'as "2006"',
            id="time",
        ),
        pytest.param(
            CONFIGMAP,
            {"binaryData": {"k": "a b"}},
            "illegal base64 data at input byte 1",
            id="base64",
        ),
    ],
)
def test_wrong_types_are_go_errors(
    compiled: Compiled, definition: str, obj: dict[str, Any], message: str
) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(compiled, definition, obj)
    assert str(caught.value) == message


def test_unknown_fields_are_dropped_and_named_in_document_order(compiled: Compiled) -> None:
    obj = {
        "metadata": {"name": "p", "bogus": 1},
        "spec": {
            "containers": [
                {"name": "a"},
                {"name": "b", "imagePullPolizy": "x", "env": [{"nam": 1}]},
            ],
            "Volumes": [],
        },
        "extra": {"deep": {"er": 1}},
    }
    decoded, unknown = decode(compiled, POD, obj)
    assert unknown == [
        "metadata.bogus",
        "spec.containers[1].imagePullPolizy",
        "spec.containers[1].env[0].nam",
        "spec.Volumes",  # field names are case-sensitive
        "extra",
    ]
    assert decoded == {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a"}, {"name": "b", "env": [{}]}]},
    }
    assert obj["metadata"] == {"name": "p", "bogus": 1}  # the input is left alone


def test_nulls_become_zero_values(compiled: Compiled) -> None:
    decoded, unknown = decode(
        compiled,
        POD,
        {
            "metadata": {"name": "p", "labels": {"a": None}, "annotations": None},
            "spec": {"containers": [None], "nodeSelector": {"k": None}},
            "status": None,
        },
    )
    assert unknown == []
    assert decoded == {
        "metadata": {"name": "p", "labels": {"a": ""}},
        "spec": {"containers": [{}], "nodeSelector": {"k": ""}},
    }


def test_free_form_fields_keep_whatever_json_they_hold(compiled: Compiled) -> None:
    schema = {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "default": {"any": ["thing", 1]},
        "properties": {"spec": {"type": "object"}},
    }
    crd = {
        "metadata": {
            "name": "a.b.c",
            "managedFields": [{"manager": "m", "fieldsV1": {"f:metadata": {"f:x": {}}}}],
        },
        "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": schema}}]},
    }
    decoded, unknown = decode(compiled, CRD, crd)
    assert (decoded, unknown) == (crd, [])
