"""JSON → protobuf → JSON gives back the object, for every built-in kind the server serves.

Objects are drawn from the kind's own message: any subset of its fields, nested a few levels,
each value of its field's type in the form kube-apiserver writes (a zero only where JSON keeps
zeros, times in seconds or microseconds, quantities, int-or-strings, raw JSON). Real objects
kvd itself creates (a launcher pod, the local node's Node and Lease) must survive too, losing
nothing but values that are empty in Go's eyes.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvd.api import kinds as kubevirt
from kvd.api.vmi import VirtualMachineInstance
from kvd.controller import render
from kvd.local.apiserver import registry
from kvd.local.apiserver.protobuf import envelope, kinds
from kvd.local.apiserver.protobuf.gen import json_fields
from kvd.local.node import registration

DEPTH = 4
META = "k8s.io.apimachinery.pkg.apis.meta.v1"
INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
}
SERVED = sorted(
    {
        (r.api_version(v.name), kind)
        for r in registry.BUILTINS
        for v in r.versions
        for kind in (r.kind, r.list_kind)
        if kinds.message_class(r.api_version(v.name), kind) is not None
    }
)


def test_the_served_kinds_with_a_message_are_the_ones_kubectl_needs() -> None:
    served = {kind for _, kind in SERVED}
    assert {"Namespace", "ConfigMap", "Secret", "ServiceAccount", "Pod", "Lease"} <= served
    assert "SelfSubjectAccessReview" in served
    # kube-apiserver serves CRDs in protobuf too, but no kvd client asks: not vendored
    assert "CustomResourceDefinition" not in served


moments = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
json_leaves = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
raw_json = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
).filter(lambda v: v is not None)  # null is Go's absent RawExtension
SPECIAL = {
    f"{META}.Time": moments.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")),
    f"{META}.MicroTime": moments.map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    "k8s.io.apimachinery.pkg.api.resource.Quantity": st.sampled_from(
        ["0", "1", "100m", "1.5", "128Mi", "2Gi", "1e3", "5k"]
    ),
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": st.integers(-(2**31), 2**31 - 1)
    | st.text(max_size=8),
    f"{META}.FieldsV1": st.dictionaries(st.text(max_size=6), raw_json, max_size=3),
    "k8s.io.apimachinery.pkg.runtime.RawExtension": raw_json,
}


def scalar(fd: FieldDescriptor, *, zero: bool) -> st.SearchStrategy[Any]:
    """A value of the field's type; `zero`: whether the zero value may appear."""
    kind = fd.type
    if kind == FieldDescriptor.TYPE_STRING:
        return st.text(min_size=0 if zero else 1, max_size=12)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans() if zero else st.just(True)
    if kind in INT_RANGES:
        low, high = INT_RANGES[kind]
        values = st.integers(low, high)
        return values if zero else values.filter(bool)
    if kind == FieldDescriptor.TYPE_BYTES:
        data = st.binary(min_size=0 if zero else 1, max_size=12)
        return data.map(lambda b: base64.b64encode(b).decode())
    if kind == FieldDescriptor.TYPE_DOUBLE:
        values = st.floats(allow_nan=False, allow_infinity=False)
        return values if zero else values.filter(bool)
    raise AssertionError(f"no strategy for {fd.full_name} of type {kind}")


@cache
def message(descriptor: Descriptor, depth: int) -> st.SearchStrategy[Any]:
    """A JSON value of the message, in kube's canonical form."""
    if descriptor.full_name in SPECIAL:
        return SPECIAL[descriptor.full_name]
    if descriptor.full_name in json_fields.WRAPPERS:
        return st.lists(st.text(max_size=8), max_size=3)
    optional: dict[str, st.SearchStrategy[Any]] = {}
    inlined: list[st.SearchStrategy[Any]] = []
    for fd in descriptor.fields:
        value = field(fd, depth)
        if value is None:
            continue
        if fd.full_name in json_fields.INLINE:
            inlined.append(value)
        else:
            optional[json_fields.JSON_NAMES.get(fd.full_name, fd.name)] = value
    own = st.fixed_dictionaries({}, optional=optional)
    if not inlined:
        return own
    return st.tuples(own, *inlined).map(merge)


def merge(parts: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    own, *inlined = parts
    merged: dict[str, Any] = {}
    for part in inlined:
        merged.update(part)
    merged.update(own)  # a message's own field wins over an inlined one of the same name
    return merged


def field(fd: FieldDescriptor, depth: int) -> st.SearchStrategy[Any] | None:
    entry = fd.message_type
    if entry is not None and entry.GetOptions().map_entry:
        value_fd = entry.fields_by_name["value"]
        value = (
            scalar(value_fd, zero=True)
            if value_fd.message_type is None
            else nested(value_fd.message_type, depth)
        )
        if value is None:
            return None
        return st.dictionaries(st.text(max_size=8), value, min_size=1, max_size=3)
    if fd.is_repeated:
        item = scalar(fd, zero=True) if entry is None else nested(entry, depth)
        return None if item is None else st.lists(item, min_size=1, max_size=2)
    if entry is not None:
        return nested(entry, depth)
    return scalar(fd, zero=fd.full_name in json_fields.ZERO_KEPT)


def nested(descriptor: Descriptor, depth: int) -> st.SearchStrategy[Any] | None:
    if descriptor.full_name in SPECIAL or descriptor.full_name in json_fields.WRAPPERS:
        return message(descriptor, depth)
    return message(descriptor, depth - 1) if depth > 0 else None


def roundtrip(obj: dict[str, Any]) -> dict[str, Any]:
    data = envelope.encode(obj)
    assert data is not None, f"{obj['apiVersion']} {obj['kind']} has no protobuf form"
    return envelope.decode(data)


@pytest.mark.parametrize(("api_version", "kind"), SERVED, ids=[f"{v}-{k}" for v, k in SERVED])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_json_protobuf_json_is_the_identity(api_version: str, kind: str, data: Any) -> None:
    cls = kinds.message_class(api_version, kind)
    assert cls is not None
    body = data.draw(message(cls.DESCRIPTOR, DEPTH))
    obj = {"apiVersion": api_version, "kind": kind, **body}

    assert roundtrip(obj) == obj


def launcher_pod() -> dict[str, Any]:
    vmi = kubevirt.load(
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": "demo", "namespace": "ns", "uid": "u-1"},
            "spec": {
                "domain": {"devices": {}, "resources": {"requests": {"memory": "128Mi"}}},
                "volumes": [{"name": "root", "containerDisk": {"image": "kvd-demo"}}],
                "nodeSelector": {"kubernetes.io/hostname": "n1"},
            },
        }
    )
    assert isinstance(vmi, VirtualMachineInstance)
    config = render.RenderConfig(launcher_host_dir="/var/lib/kvd/launchers", image="kvd:1")
    pod = render.launcher_pod(vmi, config)
    pod["metadata"].update(
        name="virt-launcher-demo-x1",
        uid="p-1",
        resourceVersion="7",
        creationTimestamp="2026-01-02T03:04:05Z",
    )
    pod["status"] = {
        "phase": "Running",
        "podIP": "10.88.0.5",
        "podIPs": [{"ip": "10.88.0.5"}],
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T03:04:06Z"}
        ],
        "containerStatuses": [
            {
                "name": "compute",
                "ready": True,
                "restartCount": 0,
                "image": "kvd:1",
                "imageID": "",
                "started": True,
                "state": {"running": {"startedAt": "2026-01-02T03:04:06Z"}},
            }
        ],
    }
    return pod


def local_node() -> dict[str, Any]:
    facts = registration.HostFacts(
        cpus=2, memory=24 << 30, storage=100 << 30, address="10.88.0.1", hostname="box"
    )
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "box", "labels": registration.labels("box")},
        "status": registration.node_status(facts, ready=True, previous=None),
    }


def local_lease() -> dict[str, Any]:
    return registration.lease("box", uid="n-1", renewed="2026-01-02T03:04:05.123456Z")


def lost(before: Any, after: Any, path: str = "") -> list[str]:
    """Paths whose value changed from `before` to `after`, other than an empty one dropped."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key, value in before.items():
            if key in after:
                found += lost(value, after[key], f"{path}.{key}")
            elif value not in (None, "", 0, False, [], {}):
                found.append(f"{path}.{key}")
        found += [f"{path}.{key} (added)" for key in after.keys() - before.keys()]
        return found
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            p
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for p in lost(b, a, f"{path}[{i}]")
        ]
    return [] if before == after else [path]


@pytest.mark.parametrize(
    "make", [launcher_pod, local_node, local_lease], ids=["launcher-pod", "node", "lease"]
)
def test_objects_kvd_creates_lose_nothing_but_empty_values(make: Any) -> None:
    obj = make()

    once = roundtrip(obj)

    assert lost(obj, once) == []
    assert roundtrip(once) == once
