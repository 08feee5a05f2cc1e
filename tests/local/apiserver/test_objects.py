"""`Objects` and the admission chain the server hands it, on a real store in a temporary file.

The plugins here are small recording doubles: what is under test is the chain's contract (order,
mutation, refusal, warnings, which writes it sees), not any one policy. The server's own chain is
tested through the running server (test_kubectl, test_client).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from kvd.local.apiserver import errors
from kvd.local.apiserver.errors import APIError
from kvd.local.apiserver.objects import AdmissionPlugin, Objects, Target
from kvd.local.apiserver.registry import Registry
from kvd.local.apiserver.store import ResourceKey, Store


class Recorder:
    """Notes every call, labels the object, warns, and refuses an object labelled `refuse`."""

    def __init__(self, name: str, calls: list[str]) -> None:
        self.name = name
        self.calls = calls

    def on_create(self, resource: Any, obj: dict[str, Any]) -> Sequence[str]:
        self.calls.append(f"{self.name}:create:{obj['metadata']['name']}")
        return self._admit(obj)

    def on_update(self, resource: Any, old: dict[str, Any], new: dict[str, Any]) -> Sequence[str]:
        self.calls.append(f"{self.name}:update:{old['metadata']['resourceVersion']}")
        return self._admit(new)

    def _admit(self, obj: dict[str, Any]) -> list[str]:
        labels = obj["metadata"].setdefault("labels", {})
        if labels.get("refuse") == self.name:
            raise errors.invalid("", "ConfigMap", obj["metadata"]["name"], [])
        labels[f"seen-by-{self.name}"] = "yes"
        return [f"{self.name} saw {obj['metadata']['name']}"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def _objects(store: Store, *chain: AdmissionPlugin) -> Objects:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
    store.create(ResourceKey("", "namespaces"), "", "default", namespace)
    return Objects(store, Registry(), admission=chain)


def _cm(objects: Objects, name: str = "") -> Target:
    resource = objects.registry.get("", "configmaps")
    assert resource is not None
    return Target(resource, "v1", "default", name)


def test_plugins_run_in_order_and_their_changes_and_warnings_arrive(store: Store) -> None:
    calls: list[str] = []
    objects = _objects(store, Recorder("first", calls), Recorder("second", calls))
    created = objects.create(
        _cm(objects), {"metadata": {"name": "c"}}, validation="Strict", dry_run=False
    )
    assert calls[-2:] == ["first:create:c", "second:create:c"]
    assert created.warnings == ["first saw c", "second saw c"]
    stored = objects.get(_cm(objects, "c"))
    assert stored["metadata"]["labels"] == {"seen-by-first": "yes", "seen-by-second": "yes"}

    patched = objects.patch(
        _cm(objects, "c"),
        b'{"data": {"a": "1"}}',
        "application/merge-patch+json",
        validation="Strict",
        dry_run=False,
    )
    version = created.object["metadata"]["resourceVersion"]
    assert calls[-2:] == [f"first:update:{version}", f"second:update:{version}"]
    assert patched.warnings == ["first saw c", "second saw c"]


def test_a_refusal_stops_the_chain_and_stores_nothing(store: Store) -> None:
    calls: list[str] = []
    objects = _objects(store, Recorder("first", calls), Recorder("second", calls))
    body = {"metadata": {"name": "no", "labels": {"refuse": "first"}}}
    with pytest.raises(APIError) as refused:
        objects.create(_cm(objects), body, validation="Strict", dry_run=False)
    assert refused.value.code == 422
    assert calls == ["first:create:no"]
    with pytest.raises(APIError) as missing:
        objects.get(_cm(objects, "no"))
    assert missing.value.code == 404


def test_status_writes_skip_the_chain(store: Store) -> None:
    calls: list[str] = []
    objects = _objects(store, Recorder("only", calls))
    pods = objects.registry.get("", "pods")
    assert pods is not None
    body = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    objects.create(Target(pods, "v1", "default"), body, validation="Strict", dry_run=False)
    status = objects.patch(
        Target(pods, "v1", "default", "p", "status"),
        b'{"status": {"phase": "Running"}}',
        "application/merge-patch+json",
        validation="Strict",
        dry_run=False,
    )
    assert calls == ["only:create:p"]
    assert status.warnings == []
    assert status.object["status"] == {"phase": "Running"}


def test_no_chain_admits_everything(store: Store) -> None:
    objects = _objects(store)
    created = objects.create(
        _cm(objects), {"metadata": {"name": "plain"}}, validation="Strict", dry_run=False
    )
    assert created.warnings == []
    assert "labels" not in created.object["metadata"]
