"""kvd.kube.informer against a real `kvd local apiserver`: what it adds to the official client's
SharedInformer, and the case where SharedInformer alone falls short (custom resources)."""

from __future__ import annotations

import contextlib
import copy
import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.informer import ERROR, SharedInformer

from kvd.api import crds, kinds
from kvd.kube import client, informer
from tests.local.apiserver.conftest import Server, start_server
from tests.support.waiting import holds_for, wait_for

pytestmark = pytest.mark.integration  # starts kvd local apiserver processes

VMIS = "/apis/kubevirt.io/v1/namespaces/default/virtualmachineinstances"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("informer") / "api")
    raw = client.Raw(client.connect(s.kubeconfig))
    kind = kinds.KINDS["VirtualMachineInstance"]
    raw.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crds.crd(kind))
    wait_for(
        "the VMI CRD to be served", lambda: raw.get(VMIS), timeout=10, ignoring=(client.ApiError,)
    )
    try:
        yield s
    finally:
        s.stop()


def vmi(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": name, "labels": labels},
        "spec": {"domain": {"devices": {}, "resources": {"requests": {"memory": "64Mi"}}}},
    }


def list_vmis(api: k8s.ApiClient) -> Any:
    return client.list_custom(api, "kubevirt.io", "v1", "virtualmachineinstances")


def test_shared_informer_alone_never_lists_a_custom_resource(server: Server) -> None:
    """Upstream reads `.items` of the list result; CustomObjectsApi returns a dict, whose
    `.items` is dict.items: the initial list fails every time and the cache stays empty."""
    api = client.connect(server.kubeconfig)
    raw = client.Raw(api)
    raw.create(VMIS, vmi("upstream", {}))
    calls = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("watch"))
        return list_vmis(api)(*args, **kwargs)

    counting.__doc__ = list_vmis(api).func.__doc__
    upstream = SharedInformer(counting)
    failures: list[Exception] = []
    upstream.add_event_handler(ERROR, failures.append)
    upstream.start()
    try:
        wait_for("SharedInformer's initial list to fail", lambda: failures)
        assert upstream.cache.list() == []
        assert calls and not any(calls)  # listed (and failed; retried in 5 s), never watched
    finally:
        upstream.stop()
        raw.delete(f"{VMIS}/upstream")


def test_informer_lists_watches_and_filters_custom_resources(server: Server) -> None:
    api = client.connect(server.kubeconfig)
    raw = client.Raw(api)
    raw.create(VMIS, vmi("before", {"kubevirt.io/nodeName": "n1"}))
    raw.create(VMIS, vmi("elsewhere", {"kubevirt.io/nodeName": "n2"}))
    seen: list[tuple[str, str]] = []
    got = threading.Event()
    inf = informer.Informer(
        api, list_vmis(api), name="vmis", label_selector="kubevirt.io/nodeName=n1"
    )
    inf.add_index("phase", lambda o: [str((o.get("status") or {}).get("phase", ""))])

    def handler(kind: str, obj: dict[str, Any]) -> None:
        seen.append((kind, obj["metadata"]["name"]))
        got.set()

    inf.add_handler(handler)
    inf.start()
    try:
        assert inf.wait_synced(10)
        assert [o["metadata"]["name"] for o in inf.items()] == ["before"]
        raw.create(VMIS, vmi("after", {"kubevirt.io/nodeName": "n1"}))
        raw.merge_patch(f"{VMIS}/after", {"status": {"phase": "Scheduled"}})
        raw.delete(f"{VMIS}/before")
        wait_for("the deletion of `before`", lambda: ("DELETED", "before") in seen, timeout=10)
        assert ("ADDED", "after") in seen and ("MODIFIED", "after") in seen
        assert all(name != "elsewhere" for _, name in seen)
        after = inf.get("default/after")
        assert after is not None and after["status"]["phase"] == "Scheduled"
        after["status"]["phase"] = "mutated"  # a copy: the cache is untouched
        assert (inf.get("default/after") or {})["status"]["phase"] == "Scheduled"
        [indexed] = inf.by_index("phase", "Scheduled")
        assert indexed["metadata"]["name"] == "after"
        indexed["status"]["phase"] = "mutated"  # a copy too: the next lookup still finds it
        assert [o["metadata"]["name"] for o in inf.by_index("phase", "Scheduled")] == ["after"]
    finally:
        inf.stop()
        for name in ("after", "elsewhere"):
            raw.delete(f"{VMIS}/{name}")


@contextlib.contextmanager
def _attempts_after_the_server_dies(tmp_path: Path, *, wrapped: bool) -> Iterator[list[float]]:
    """Sync against a live server, stop it; yields the times of list/watch calls from then on."""
    s = start_server(tmp_path / ("wrapped" if wrapped else "upstream"))
    api = client.connect(s.kubeconfig)
    core = client.core_v1(api)
    calls: list[float] = []
    watching = threading.Event()

    def listing(*args: Any, **kwargs: Any) -> Any:
        calls.append(time.monotonic())
        if kwargs.get("watch"):
            watching.set()
        return core.list_namespace(*args, **kwargs)

    listing.__doc__ = core.list_namespace.__doc__
    if wrapped:
        inf = informer.Informer(api, listing, name="ns", backoff_base=0.2, backoff_max=0.8)
        inf.start()
        stop = inf.stop
        assert inf.wait_synced(10)
    else:
        upstream = SharedInformer(listing)
        upstream.start()
        stop = upstream.stop
        wait_for("SharedInformer to list and watch", watching.is_set, timeout=10)
    try:
        s.stop()
        calls.clear()
        yield calls
    finally:
        stop()


def test_watch_failures_back_off_instead_of_spinning(tmp_path: Path) -> None:
    with _attempts_after_the_server_dies(tmp_path, wrapped=False) as upstream:
        # SharedInformer alone re-watches at once: more than 50 attempts within 3 s
        wait_for("SharedInformer alone to try 50 times", lambda: len(upstream) > 50, timeout=3)
    with _attempts_after_the_server_dies(tmp_path, wrapped=True) as ours:
        # 3 s is well past the backoff's growth to its cap (0.2 + 0.4 + 0.8 s): an informer
        # that spun, or did not back off, would have made more than 12 attempts by then
        holds_for("at most 12 attempts", lambda: len(ours) <= 12, 3.0, diagnose=lambda: ours)
        attempts = list(ours)
    assert 2 <= len(attempts) <= 12, attempts
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert max(gaps) >= 0.6  # grown to the cap


def test_an_object_the_client_models_refuse_does_not_stop_the_watch(server: Server) -> None:
    """A pod status without the container fields the generated models require (which upstream
    fails to decode, then re-watches from the same version, again and again): the informer
    keeps JSON, so the pod and what follows it arrive."""
    api = client.connect(server.kubeconfig)
    raw = client.Raw(api)
    pods = "/api/v1/namespaces/default/pods"
    pod = {"metadata": {"name": "odd"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    inf = informer.Informer(api, client.core_v1(api).list_pod_for_all_namespaces, name="pods")
    inf.start()
    try:
        assert inf.wait_synced(10)
        raw.create(pods, pod)
        raw.merge_patch(
            f"{pods}/odd/status",
            {"status": {"containerStatuses": [{"name": "c", "state": {"running": {}}}]}},
        )
        raw.create(pods, {**pod, "metadata": {"name": "next"}})
        wait_for(
            "the pod after the odd one",
            lambda: inf.get("default/next"),
            timeout=10,
            diagnose=lambda: [o["metadata"]["name"] for o in inf.items()],
        )
        odd = inf.get("default/odd") or {}
        assert odd["status"]["containerStatuses"] == [{"name": "c", "state": {"running": {}}}]
    finally:
        inf.stop()
        for name in ("odd", "next"):
            raw.delete(f"{pods}/{name}")


def test_a_transform_shapes_what_is_cached_and_handed_to_handlers(server: Server) -> None:
    """Listed and watched objects alike are transformed before the cache and the handlers see
    them; the server keeps the whole object."""
    api = client.connect(server.kubeconfig)
    raw = client.Raw(api)
    listed = vmi("t-listed", {"t": "yes"})
    listed["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    raw.create(VMIS, listed)
    seen: list[tuple[str, dict[str, Any]]] = []

    def strip(obj: dict[str, Any]) -> None:
        obj["metadata"].pop("managedFields", None)
        obj["metadata"].pop("annotations", None)
        obj["metadata"].setdefault("labels", {})["transformed"] = "1"

    inf = informer.Informer(
        api, list_vmis(api), name="vmis", label_selector="t=yes", transform=strip
    )
    inf.add_handler(lambda kind, obj: seen.append((kind, copy.deepcopy(obj))))
    inf.start()
    try:
        assert inf.wait_synced(10)
        raw.create(VMIS, vmi("t-watched", {"t": "yes"}))
        raw.merge_patch(f"{VMIS}/t-watched", {"status": {"phase": "Scheduled"}})
        raw.delete(f"{VMIS}/t-listed")
        wait_for("the deletion of `t-listed`", lambda: any(k == "DELETED" for k, _ in seen))
        wait_for(
            "t-watched Scheduled",
            lambda: (inf.get("default/t-watched") or {}).get("status", {}).get("phase"),
        )
        assert {k for k, _ in seen} == {"ADDED", "MODIFIED", "DELETED"}
        for _, obj in seen:
            assert obj["metadata"]["labels"]["transformed"] == "1", obj
            assert "managedFields" not in obj["metadata"] and "annotations" not in obj["metadata"]
        cached = inf.get("default/t-watched")
        assert cached is not None and cached["metadata"]["labels"]["transformed"] == "1"
        assert "managedFields" not in cached["metadata"]
        assert inf.project(lambda o: o["status"]["phase"]) == ["Scheduled"]
        whole = raw.get(f"{VMIS}/t-watched")
        assert (
            whole["metadata"]["managedFields"] and "transformed" not in whole["metadata"]["labels"]
        )
    finally:
        inf.stop()
        raw.delete(f"{VMIS}/t-watched")


def test_a_transformed_informer_lists_in_pages(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each page is trimmed as it arrives; the pages together are the whole list, and the watch
    goes on from the list's resourceVersion."""
    monkeypatch.setattr(informer, "LIST_PAGE", 2)
    api = client.connect(server.kubeconfig)
    raw = client.Raw(api)
    names = [f"paged-{i}" for i in range(5)]
    for name in names:
        raw.create(VMIS, vmi(name, {"paged": "yes"}))
    limits: list[Any] = []

    def listing(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("watch"):
            limits.append((kwargs.get("limit"), bool(kwargs.get("_continue"))))
        return list_vmis(api)(*args, **kwargs)

    listing.__doc__ = list_vmis(api).func.__doc__
    seen: list[str] = []

    def mark(obj: dict[str, Any]) -> None:
        obj["metadata"].pop("managedFields", None)

    inf = informer.Informer(api, listing, name="paged", label_selector="paged=yes", transform=mark)
    inf.add_handler(lambda kind, obj: seen.append(f"{kind} {obj['metadata']['name']}"))
    inf.start()
    try:
        assert inf.wait_synced(10)
        assert limits == [(2, False), (2, True), (2, True)]
        assert sorted(o["metadata"]["name"] for o in inf.items()) == names
        assert all("managedFields" not in o["metadata"] for o in inf.items())
        raw.create(VMIS, vmi("paged-late", {"paged": "yes"}))
        wait_for("the watch after the pages", lambda: "ADDED paged-late" in seen)
        assert sorted(seen) == sorted(f"ADDED {n}" for n in [*names, "paged-late"])
    finally:
        inf.stop()
        for name in [*names, "paged-late"]:
            raw.delete(f"{VMIS}/{name}")
