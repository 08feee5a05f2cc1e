"""kvd.kube.transforms: what every controller cache drops, and interning what it keeps."""

from __future__ import annotations

import copy
import json
from typing import Any

from kvd.kube import transforms


def applied() -> dict[str, Any]:
    body = {"metadata": {"name": "a"}, "spec": {"running": True}}
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {
            "name": "a",
            "namespace": "default",
            "uid": "0b6c4e0e-3a43-4d4f-9c55-7d7f7e1f9a10",
            "labels": {"app": "a"},
            "annotations": {transforms.LAST_APPLIED: json.dumps(body), "team": "infra"},
            "finalizers": ["kubevirt.io/virtualMachineControllerFinalize"],
            "managedFields": [
                {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}
            ],
        },
        "spec": {"running": True, "template": {"spec": {"domain": {"devices": {}}}}},
        "status": {"printableStatus": "Running", "conditions": [{"type": "Ready"}]},
    }


def test_strip_common_drops_managed_fields_and_the_last_applied_annotation_only() -> None:
    obj = applied()
    expected = copy.deepcopy(obj)
    del expected["metadata"]["managedFields"]
    del expected["metadata"]["annotations"][transforms.LAST_APPLIED]
    transforms.strip_common(obj)
    assert obj == expected
    assert obj["metadata"]["annotations"] == {"team": "infra"}


def test_strip_common_takes_objects_without_metadata_or_annotations() -> None:
    bare: dict[str, Any] = {"kind": "X"}
    transforms.strip_common(bare)
    assert bare == {"kind": "X"}
    plain: dict[str, Any] = {"metadata": {"name": "b", "annotations": None}}
    transforms.strip_common(plain)
    assert plain == {"metadata": {"name": "b", "annotations": None}}


def test_default_is_idempotent_and_keeps_every_other_value() -> None:
    obj = applied()
    transforms.default(obj)
    once = copy.deepcopy(obj)
    transforms.default(obj)
    assert obj == once
    assert obj["spec"] == applied()["spec"]
    assert obj["status"] == applied()["status"]


def test_compact_interns_keys_and_short_values_in_place() -> None:
    # Built from JSON text, as the informer's objects are: every key a string of its own.
    first = json.loads(json.dumps(applied()))
    second = json.loads(json.dumps(applied()))
    assert first["metadata"] is not second["metadata"]
    spec = first["spec"]
    transforms.compact(first)
    transforms.compact(second)
    assert first["spec"] is spec  # in place: the dicts are the same dicts
    assert first == applied() and second == applied()
    key_first = next(k for k in first["metadata"] if k == "namespace")
    key_second = next(k for k in second["metadata"] if k == "namespace")
    assert key_first is key_second
    assert first["status"]["printableStatus"] is second["status"]["printableStatus"]
    long_first = first["metadata"]["annotations"][transforms.LAST_APPLIED]
    long_second = second["metadata"]["annotations"][transforms.LAST_APPLIED]
    assert long_first == long_second and long_first is not long_second  # long: left alone
    assert list(first["metadata"]) == list(applied()["metadata"])  # order kept


def test_keep_only_keeps_the_named_keys() -> None:
    obj: dict[str, Any] = {"spec": {"nodeName": "n1", "containers": [{}]}, "status": "x"}
    transforms.keep_only(obj, "spec", ["nodeName", "absent"])
    transforms.keep_only(obj, "status", ["phase"])  # not a dict: left as it is
    transforms.keep_only(obj, "missing", ["a"])
    assert obj == {"spec": {"nodeName": "n1"}, "status": "x"}
