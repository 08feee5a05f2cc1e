"""A CRD's life on the running API server: served once stored, torn down once gone, for good.

Deleting a CRD must leave nothing behind whichever way it leaves the store (a plain DELETE, or
the update that removes its last finalizer): the resource is no longer served (404, absent from
discovery and `kubectl api-resources`), its objects are deleted, and neither comes back after a
restart of the server, which keeps everything in SQLite.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kvd.local.apiserver.store import ResourceKey, Store
from tests.local.apiserver.conftest import Server, start_server
from tests.support.waiting import wait_for

# Starts kvd local apiserver processes.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

GROUP, PLURAL = "example.com", "gadgets"
NAME = f"{PLURAL}.{GROUP}"
CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": NAME},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "gadget", "kind": "Gadget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {"spec": {"type": "object", "properties": {}}},
                    }
                },
            }
        ],
    },
}


def _gadget(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Gadget", "metadata": {"name": name}, "spec": {}}


def _gadgets(server: Server) -> list[str] | None:
    """The gadgets in `default`, or None when the resource is not served (404)."""
    custom = client.CustomObjectsApi(server.api())
    try:
        listed = custom.list_namespaced_custom_object(GROUP, "v1", "default", PLURAL)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return [item["metadata"]["name"] for item in listed["items"]]


def _crd_exists(server: Server) -> bool:
    try:
        client.ApiextensionsV1Api(server.api()).read_custom_resource_definition(NAME)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _assert_not_served(server: Server) -> None:
    assert not _crd_exists(server)
    assert _gadgets(server) is None
    groups = client.ApisApi(server.api()).get_api_versions().groups
    assert GROUP not in [g.name for g in groups]
    with pytest.raises(ApiException) as missing:
        client.CustomObjectsApi(server.api()).get_api_resources(GROUP, "v1")
    assert missing.value.status == 404
    resources = server.kubectl("api-resources", "-o", "name").stdout.split()
    assert NAME not in resources and "customresourcedefinitions.apiextensions.k8s.io" in resources


def _create_crd_and_a_gadget(server: Server) -> None:
    client.ApiextensionsV1Api(server.api()).create_custom_resource_definition(CRD)
    client.CustomObjectsApi(server.api()).create_namespaced_custom_object(
        GROUP, "v1", "default", PLURAL, _gadget("g1")
    )
    assert _gadgets(server) == ["g1"]
    assert NAME in server.kubectl("api-resources", "-o", "name").stdout.split()


@pytest.mark.parametrize(
    "finalizer",
    [
        pytest.param(True, id="last-finalizer-removed-by-patch"),
        pytest.param(False, id="plain-delete"),
    ],
)
def test_a_deleted_crd_is_torn_down_for_good(tmp_path: Path, finalizer: bool) -> None:
    server = start_server(tmp_path / "data")
    try:
        _create_crd_and_a_gadget(server)
        if finalizer:
            client.ApiextensionsV1Api(server.api()).patch_custom_resource_definition(
                NAME, {"metadata": {"finalizers": ["example.com/hold"]}}
            )
        client.ApiextensionsV1Api(server.api()).delete_custom_resource_definition(NAME)
        if finalizer:
            server.stop()  # a CRD held by a finalizer is served across a restart, too
            server = start_server(tmp_path / "data")
            ext = client.ApiextensionsV1Api(server.api())
            held = ext.read_custom_resource_definition(NAME)
            assert held.metadata.deletion_timestamp is not None
            assert _gadgets(server) == ["g1"], "served until its finalizers are gone"
            ext.patch_custom_resource_definition(NAME, {"metadata": {"finalizers": None}})
        wait_for(
            "the resource to be no longer served", lambda: _gadgets(server) is None, timeout=15
        )
        _assert_not_served(server)
    finally:
        server.stop()

    again = start_server(tmp_path / "data")
    try:
        _assert_not_served(again)
        client.ApiextensionsV1Api(again.api()).create_custom_resource_definition(CRD)
        assert _gadgets(again) == [], "the old CRD's objects are gone from the store"
    finally:
        again.stop()


def test_a_crd_made_again_at_once_does_not_inherit_old_objects(server: Server) -> None:
    ext = client.ApiextensionsV1Api(server.api())
    _create_crd_and_a_gadget(server)
    ext.delete_custom_resource_definition(NAME)
    ext.create_custom_resource_definition(CRD)  # whether or not the teardown ran yet
    assert _gadgets(server) == []
    client.CustomObjectsApi(server.api()).create_namespaced_custom_object(
        GROUP, "v1", "default", PLURAL, _gadget("g2")
    )
    # Deleted CRDs are torn down in order: once a later one is gone, the old gadgets' teardown
    # has run too, and it must have left the new CRD and its objects alone.
    other = copy.deepcopy(CRD)
    other["metadata"]["name"] = f"others.{GROUP}"
    other["spec"]["names"] = {"plural": "others", "singular": "other", "kind": "Other"}
    ext.create_custom_resource_definition(other)
    ext.delete_custom_resource_definition(f"others.{GROUP}")
    custom = client.CustomObjectsApi(server.api())

    def others_gone() -> bool:
        try:
            custom.list_namespaced_custom_object(GROUP, "v1", "default", "others")
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for("the later CRD to be torn down", others_gone, timeout=15)
    assert _gadgets(server) == ["g2"]


def test_objects_of_a_crd_deleted_before_a_stop_are_gone_after_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        _create_crd_and_a_gadget(server)
    finally:
        server.stop()
    # A crash right after the CRD left the store, before its teardown: its objects remain.
    store = Store(tmp_path / "data" / "state.db")
    try:
        store.delete(ResourceKey("apiextensions.k8s.io", "customresourcedefinitions"), "", NAME)
        assert store.list(ResourceKey(GROUP, PLURAL), None)[0], "the gadget is still stored"
    finally:
        store.close()

    again = start_server(tmp_path / "data")
    try:
        _assert_not_served(again)
        client.ApiextensionsV1Api(again.api()).create_custom_resource_definition(CRD)
        assert _gadgets(again) == []
    finally:
        again.stop()
