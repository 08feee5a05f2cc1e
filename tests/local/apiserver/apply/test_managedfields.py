"""managedFields on the wire: reading, writing, capping, validating; and the field manager's
rules around them (reset, untracked objects, before-first-apply, last-applied)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kvd.local.apiserver.apply import fieldmanager, managedfields
from kvd.local.apiserver.apply.fieldpath import Set
from kvd.local.apiserver.apply.updater import Manager, Owned
from kvd.local.apiserver.errors import APIError
from kvd.local.apiserver.registry import Registry

CONFIGMAPS = Registry().get("", "configmaps")
assert CONFIGMAPS is not None


def entry(manager: str = "m", operation: str = "Update", **extra: Any) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": "v1",
        "time": "2024-01-01T00:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {"f:a": {}}},
        **extra,
    }


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        pytest.param({"operation": "Bogus"}, "operation must be", id="operation"),
        pytest.param({"apiVersion": ""}, "apiVersion must not be empty", id="api-version"),
        pytest.param({"fieldsType": ""}, "missing fieldsType", id="no-fields-type"),
        pytest.param({"fieldsType": "FieldsV2"}, "invalid fieldsType", id="fields-type"),
        pytest.param({"fieldsV1": {"x": {}}}, "error decoding set", id="fields"),
    ],
)
def test_decode_refuses_malformed_entries(bad: dict[str, Any], why: str) -> None:
    with pytest.raises(managedfields.DecodeError, match=why):
        managedfields.decode([entry(**bad)])


def test_encode_sorts_appliers_first_then_by_time() -> None:
    managers = {
        Manager("old", "Update", "v1"): Owned(Set.of(("f:a",)), "v1", "2024-01-01T00:00:00Z"),
        Manager("new", "Update", "v1"): Owned(Set.of(("f:b",)), "v1", "2024-01-02T00:00:00Z"),
        Manager("applier", "Apply"): Owned(Set.of(("f:c",)), "v1", "2024-01-03T00:00:00Z"),
        Manager("gone", "Update", "v1"): Owned(Set(), "v1", "2024-01-03T00:00:00Z"),
    }
    assert [e["manager"] for e in managedfields.encode(managers)] == ["applier", "old", "new"]


def test_round_trip() -> None:
    entries = [entry("a", "Apply"), entry("b", subresource="status")]
    assert managedfields.encode(managedfields.decode(entries)) == entries


def test_cap_merges_the_oldest_updates_into_ancient_changes() -> None:
    managers = {
        Manager(f"m{i:02}", "Update", "v1"): Owned(
            Set.of((f"f:x{i}",)), "v1", f"2024-01-{i + 1:02}T00:00:00Z"
        )
        for i in range(12)
    }
    capped = managedfields.cap(managers)
    assert len(capped) == 10
    ancient = capped[Manager("ancient-changes", "Update", "v1")]
    assert sorted(ancient.fields.paths()) == [("f:x0",), ("f:x1",), ("f:x2",)]
    assert Manager("m03", "Update", "v1") in capped


@pytest.mark.parametrize(
    ("entries", "field"),
    [
        pytest.param([entry("x" * 129)], "metadata.managedFields[0].manager", id="long-manager"),
        pytest.param([entry("a\x07b")], "metadata.managedFields[0].manager", id="unprintable"),
        pytest.param([entry(operation="Bogus")], "metadata.managedFields[0].operation", id="op"),
        pytest.param([entry(fieldsType="x")], "metadata.managedFields[0].fieldsType", id="type"),
    ],
)
def test_validation(entries: list[dict[str, Any]], field: str) -> None:
    assert [c.field for c in managedfields.validation_causes(entries)] == [field]


@pytest.mark.parametrize(
    ("user_agent", "manager"),
    [
        pytest.param("kubectl/v1.37.1 (linux/amd64) kubernetes/abc", "kubectl", id="kubectl"),
        pytest.param("OpenAPI-Generator/37.0.3/python", "OpenAPI-Generator", id="python"),
        pytest.param("kube-controller-manager/v1.37.0", "kube-controller-manager", id="kcm"),
        pytest.param("a\x01b/1", "ab", id="unprintable-dropped"),
        pytest.param("x" * 200, "x" * 128, id="cut-at-128"),
        pytest.param(None, "", id="none"),
    ],
)
def test_manager_from_user_agent(user_agent: str | None, manager: str) -> None:
    assert fieldmanager.manager_name(None, user_agent) == manager


FM = fieldmanager.for_target(CONFIGMAPS, "v1")


def cm(data: dict[str, str], managed: Any = None, **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "c", "namespace": "d", "uid": "u", **meta}
    if managed is not None:
        metadata["managedFields"] = managed
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def managers_of(obj: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (e["manager"], e["operation"], e["fieldsV1"])
        for e in obj["metadata"].get("managedFields", [])
    ]


def test_create_records_the_writer_without_server_fields() -> None:
    new = cm({"a": "1"})
    FM.track_update(None, new, "kubectl-create")
    assert managers_of(new) == [("kubectl-create", "Update", {"f:data": {".": {}, "f:a": {}}})]


@pytest.mark.parametrize("reset", [[], [{}]], ids=["empty-list", "one-empty-entry"])
def test_reset_clears_and_the_object_stays_untracked(reset: list[Any]) -> None:
    live = cm({"a": "1"}, [entry("x")])
    new = cm({"a": "1"}, reset)
    FM.track_update(live, new, "kubectl-patch")
    assert "managedFields" not in new["metadata"]
    later = cm({"a": "2"})
    FM.track_update(new, later, "kubectl-patch")
    assert "managedFields" not in later["metadata"], "untracked until the first apply"


def test_bogus_managed_fields_from_a_client_fall_back_to_the_live_ones() -> None:
    live = cm({"a": "1"}, [entry("owner")])
    new = cm({"a": "1"}, [{"manager": "evil", "operation": "Bogus"}])
    FM.track_update(live, new, "kubectl-edit")
    assert managers_of(new) == [("owner", "Update", {"f:data": {"f:a": {}}})]


def test_first_apply_to_an_untracked_object_conflicts_with_before_first_apply() -> None:
    live = cm({"a": "1"})
    with pytest.raises(APIError) as raised:
        FM.apply(live, cm({"a": "2"}), "kubectl", force=False)
    assert raised.value.code == 409
    assert raised.value.message == (
        'Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.a'
    )
    assert [(c.reason, c.field) for c in raised.value.causes] == [
        ("FieldManagerConflict", ".data.a")
    ]


def test_kubectl_moving_from_client_side_apply_is_forgiven_and_keeps_the_annotation() -> None:
    last = json.dumps(cm({"a": "1"}))
    annotations = {fieldmanager.LAST_APPLIED: last}
    live = cm({"a": "1"}, [entry("kubectl-client-side-apply")], annotations=annotations)
    config = cm({"a": "2"}, annotations=annotations)
    out = FM.apply(live, config, "kubectl", force=False)
    assert out["data"] == {"a": "2"}
    assert json.loads(out["metadata"]["annotations"][fieldmanager.LAST_APPLIED])["data"] == {
        "a": "2"
    }
    with pytest.raises(APIError, match="conflict"):
        FM.apply(live, config, "someone-else", force=False)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            {"kind": "ConfigMap"}, "Incorrect version specified in apply patch", id="version"
        ),
        pytest.param({"apiVersion": "v1", "kind": "Secret"}, "does not match", id="kind"),
        pytest.param(
            cm({}, [entry()]), "metadata.managedFields must be nil", id="managed-fields-sent"
        ),
    ],
)
def test_apply_refuses_bad_configurations(config: dict[str, Any], message: str) -> None:
    with pytest.raises(APIError, match=message) as raised:
        FM.apply(None, config, "m", force=False)
    assert raised.value.code == 400


def test_conflicts_with_several_managers_are_grouped() -> None:
    live = cm(
        {"a": "1", "b": "2"},
        [
            entry("x", fieldsV1={"f:data": {"f:a": {}}}),
            entry("y", "Apply", fieldsV1={"f:data": {"f:b": {}}}),
        ],
    )
    with pytest.raises(APIError) as raised:
        FM.apply(live, cm({"a": "9", "b": "9"}), "z", force=False)
    assert raised.value.message == (
        'Apply failed with 2 conflicts: conflicts with "x" using v1:\n- .data.a\n'
        'conflicts with "y":\n- .data.b'
    )
