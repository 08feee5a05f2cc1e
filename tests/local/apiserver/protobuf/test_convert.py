"""The converter, one table per special form, both ways (pure).

Each row is a message as a Go client fills it, and the JSON kube-apiserver writes for it (what
`kubectl create --dry-run=client -o json` prints for the same object); `to_json` must give the
JSON, and `from_json` of the JSON must give back a message that reads the same.
"""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import Message

from kvd.local.apiserver.protobuf import convert, kinds


def message(api_version: str, kind: str, **fields: Any) -> Any:
    cls = kinds.message_class(api_version, kind)
    assert cls is not None, f"{api_version} {kind} has no message"
    msg: Any = cls()
    for name, value in fields.items():
        if isinstance(value, Message):
            getattr(msg, name).CopyFrom(value)
        else:
            setattr(msg, name, value)
    return msg


def pod_with_container(**container: Any) -> Any:
    pod = message("v1", "Pod")
    c = pod.spec.containers.add()
    for name, value in container.items():
        if isinstance(value, dict):
            for sub_name, sub_value in value.items():
                setattr(getattr(c, name), sub_name, sub_value)
        else:
            setattr(c, name, value)
    return pod


def ts(seconds: int, nanos: int = 0) -> Any:
    t = message("v1", "ObjectMeta").creationTimestamp
    t.seconds, t.nanos = seconds, nanos
    return t


def meta_with(**fields: Any) -> Any:
    m = message("v1", "ConfigMap")
    for name, value in fields.items():
        if isinstance(value, Message):
            getattr(m.metadata, name).CopyFrom(value)
        else:
            setattr(m.metadata, name, value)
    return m


def event_time(seconds: int, nanos: int) -> Any:
    e = message("events.k8s.io/v1", "Event")
    e.eventTime.seconds, e.eventTime.nanos = seconds, nanos
    return e


def quantity(value: str) -> Any:
    pod = message("v1", "Pod")
    c = pod.spec.containers.add()
    c.name = "c"
    c.resources.limits["memory"].string = value
    return pod


def port(kind: int, int_val: int = 0, str_val: str = "") -> Any:
    pod = message("v1", "Pod")
    c = pod.spec.containers.add()
    c.name = "c"
    handler = c.readinessProbe.handler.httpGet
    handler.port.type, handler.port.intVal, handler.port.strVal = kind, int_val, str_val
    return pod


def container_json(**fields: Any) -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "c", **fields}]}}


TIME_ROWS = [
    pytest.param(meta_with(name="x"), {"metadata": {"name": "x"}}, id="no-time"),
    pytest.param(
        meta_with(name="x", creationTimestamp=ts(1767323045)),
        {"metadata": {"name": "x", "creationTimestamp": "2026-01-02T03:04:05Z"}},
        id="time",
    ),
    pytest.param(
        meta_with(creationTimestamp=ts(0)),
        {"metadata": {"creationTimestamp": "1970-01-01T00:00:00Z"}},
        id="time-epoch-is-not-zero",
    ),
    pytest.param(
        meta_with(creationTimestamp=ts(-86400)),
        {"metadata": {"creationTimestamp": "1969-12-31T00:00:00Z"}},
        id="time-before-epoch",
    ),
    pytest.param(
        event_time(1767323045, 123456000),
        {"eventTime": "2026-01-02T03:04:05.123456Z"},
        id="micro-time",
    ),
    pytest.param(
        event_time(1767323045, 0),
        {"eventTime": "2026-01-02T03:04:05.000000Z"},
        id="micro-time-whole-second",
    ),
]
QUANTITY_ROWS = [
    pytest.param(
        quantity(q),
        container_json(resources={"limits": {"memory": q}}),
        id=f"quantity-{q}",
    )
    for q in ("128Mi", "500m", "1", "0", "1.5Gi", "2e3")
]
INT_OR_STRING_ROWS = [
    pytest.param(
        port(0, int_val=8080),
        container_json(readinessProbe={"httpGet": {"port": 8080}}),
        id="int-or-string-int",
    ),
    pytest.param(
        port(0, int_val=0),
        container_json(readinessProbe={"httpGet": {"port": 0}}),
        id="int-or-string-zero",
    ),
    pytest.param(
        port(1, str_val="http"),
        container_json(readinessProbe={"httpGet": {"port": "http"}}),
        id="int-or-string-string",
    ),
    pytest.param(
        port(1, str_val="8080"),
        container_json(readinessProbe={"httpGet": {"port": "8080"}}),
        id="int-or-string-numeric-string",
    ),
]


def _secret() -> Any:
    s = message("v1", "Secret")
    s.metadata.name = "s"
    s.data["p"] = b"q\x00\xff"
    return s


def _volume() -> Any:
    pod = message("v1", "Pod")
    v = pod.spec.volumes.add()
    v.name = "cfg"
    v.volumeSource.configMap.localObjectReference.name = "c"
    v.volumeSource.configMap.defaultMode = 0
    return pod


def _review_extra() -> Any:
    r = message("authorization.k8s.io/v1", "SubjectAccessReview")
    r.spec.user = "u"
    r.spec.extra["scopes"].items.extend(["a", "b"])
    return r


def _managed_fields() -> Any:
    cm = message("v1", "ConfigMap")
    entry = cm.metadata.managedFields.add()
    entry.manager = "kubectl"
    entry.fieldsV1.Raw = b'{"f:data":{"f:a":{}}}'
    return cm


def _go_zeros() -> Any:
    # what Go sends for `kubectl create serviceaccount sa`: every non-pointer scalar, zero or not
    sa = message("v1", "ServiceAccount")
    m = sa.metadata
    m.name, m.generateName, m.namespace, m.uid, m.resourceVersion = "sa", "", "", "", ""
    m.generation = 0
    m.creationTimestamp.SetInParent()  # the zero Time: an empty message
    return sa


def _pointer_zeros() -> Any:
    pod = message("v1", "Pod")
    pod.spec.terminationGracePeriodSeconds = 0
    pod.spec.automountServiceAccountToken = False
    pod.spec.hostNetwork = False  # not a pointer: omitempty drops it
    c = pod.spec.containers.add()
    c.name = "c"
    c.securityContext.runAsUser = 0
    c.stdin = False
    p = c.ports.add()
    p.containerPort = 0  # no omitempty: JSON keeps it
    p.hostPort = 0
    return pod


SHAPE_ROWS = [
    pytest.param(
        _secret(), {"metadata": {"name": "s"}, "data": {"p": "cQD/"}}, id="bytes-are-base64"
    ),
    pytest.param(
        _volume(),
        {"spec": {"volumes": [{"name": "cfg", "configMap": {"name": "c", "defaultMode": 0}}]}},
        id="inline-volume-source-and-reference",
    ),
    pytest.param(
        _review_extra(),
        {"spec": {"user": "u", "extra": {"scopes": ["a", "b"]}}},
        id="named-slice-is-a-list",
    ),
    pytest.param(
        _managed_fields(),
        {
            "metadata": {
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:data": {"f:a": {}}}}]
            }
        },
        id="fields-v1-is-raw-json",
    ),
    pytest.param(
        _go_zeros(), {"metadata": {"name": "sa"}}, id="go-zeros-and-zero-time-are-left-out"
    ),
    pytest.param(
        _pointer_zeros(),
        {
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "ports": [{"containerPort": 0}],
                        "securityContext": {"runAsUser": 0},
                    }
                ],
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": False,
            }
        },
        id="pointer-and-required-zeros-are-kept",
    ),
    pytest.param(
        message("v1", "Namespace", spec=message("v1", "NamespaceSpec")),
        {"spec": {}},
        id="present-empty-message-is-an-empty-object",
    ),
]


def _raw_extension() -> Any:
    revision = message("apps/v1", "ControllerRevision")
    revision.data.raw = b'{"spec":{"replicas":2}}'
    revision.revision = 3
    return revision


SHAPE_ROWS.append(
    pytest.param(
        _raw_extension(),
        {"data": {"spec": {"replicas": 2}}, "revision": 3},
        id="raw-extension-is-raw-json",
    )
)


@pytest.mark.parametrize(("msg", "json_value"), TIME_ROWS + QUANTITY_ROWS + INT_OR_STRING_ROWS)
def test_special_types_both_ways(msg: Any, json_value: dict[str, Any]) -> None:
    assert_both_ways(msg, json_value)


@pytest.mark.parametrize(("msg", "json_value"), SHAPE_ROWS)
def test_json_shapes_both_ways(msg: Any, json_value: dict[str, Any]) -> None:
    assert_both_ways(msg, json_value)


def assert_both_ways(msg: Any, json_value: dict[str, Any]) -> None:
    assert convert.to_json(msg) == json_value
    back = type(msg)()
    convert.from_json(json_value, back)
    assert convert.to_json(back) == json_value


@pytest.mark.parametrize(
    ("text", "seconds", "nanos"),
    [
        pytest.param("2026-01-02T03:04:05Z", 1767323045, 0, id="utc"),
        pytest.param("2026-01-02T05:04:05+02:00", 1767323045, 0, id="offset"),
        pytest.param("2026-01-01T22:04:05-05:00", 1767323045, 0, id="negative-offset"),
        pytest.param("2026-01-02t03:04:05z", 1767323045, 0, id="lowercase"),
        pytest.param("2026-01-02T03:04:05.5Z", 1767323045, 500000000, id="fraction"),
        pytest.param("2026-01-02T03:04:05.1234567891Z", 1767323045, 123456789, id="past-nanos"),
    ],
)
def test_rfc3339_is_read_as_go_reads_it(text: str, seconds: int, nanos: int) -> None:
    assert convert.parse_time(text) == (seconds, nanos)


def test_time_keeps_seconds_and_micro_time_microseconds() -> None:
    meta = message("v1", "ConfigMap")
    convert.from_json({"metadata": {"creationTimestamp": "2026-01-02T03:04:05.987654321Z"}}, meta)
    assert (meta.metadata.creationTimestamp.seconds, meta.metadata.creationTimestamp.nanos) == (
        1767323045,
        0,
    )
    event = message("events.k8s.io/v1", "Event")
    convert.from_json({"eventTime": "2026-01-02T03:04:05.987654321Z"}, event)
    assert event.eventTime.nanos == 987654000
    assert convert.to_json(event)["eventTime"] == "2026-01-02T03:04:05.987654Z"


def test_a_json_number_is_a_quantity_too() -> None:
    pod = message("v1", "Pod")
    convert.from_json(container_json(resources={"requests": {"cpu": 2}}), pod)
    assert pod.spec.containers[0].resources.requests["cpu"].string == "2"


def test_null_and_unknown_keys_are_left_out() -> None:
    cm = message("v1", "ConfigMap")
    convert.from_json(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": None}},
        cm,
    )
    convert.from_json({"bogus": {"deep": 1}, "data": None}, cm)
    assert convert.to_json(cm) == {"metadata": {"name": "c"}}


@pytest.mark.parametrize(
    ("kind", "json_value", "error"),
    [
        pytest.param(
            "ConfigMap", {"data": {"x": True}}, "data.x: expected a string, got true", id="type"
        ),
        pytest.param(
            "ConfigMap",
            {"metadata": {"labels": []}},
            "metadata.labels: expected an object",
            id="map",
        ),
        pytest.param(
            "ConfigMap",
            {"metadata": {"creationTimestamp": "yesterday"}},
            "metadata.creationTimestamp: expected an RFC 3339 time",
            id="time",
        ),
        pytest.param(
            "Secret", {"data": {"p": "not base64!"}}, "data.p: illegal base64 data", id="bytes"
        ),
        pytest.param(
            "Pod",
            {"spec": {"containers": [{"name": "c"}, {"ports": [{"containerPort": 2**31}]}]}},
            "spec.containers.[1].ports.[0].containerPort: 2147483648 is out of range",
            id="int32-range",
        ),
        pytest.param(
            "Pod",
            {"spec": {"containers": [{"readinessProbe": {"httpGet": {"port": 1.5}}}]}},
            "expected an integer or a string, got 1.5",
            id="int-or-string",
        ),
        pytest.param(
            "Pod", {"spec": {"priority": True}}, "spec.priority: expected an integer", id="bool"
        ),
    ],
)
def test_values_a_message_cannot_hold_are_named(
    kind: str, json_value: dict[str, Any], error: str
) -> None:
    msg = message("v1", kind)
    with pytest.raises(convert.ConversionError) as raised:
        convert.from_json(json_value, msg)
    assert error in str(raised.value)
