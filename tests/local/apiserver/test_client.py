"""The embedded API server through the official `kubernetes` client, as kvd's daemons use it."""

from __future__ import annotations

import json
import ssl
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from kvd.local.apiserver.serviceaccounts.controller import ROOT_CA
from tests.local.apiserver.conftest import CRDS, Server, start_server
from tests.support.waiting import wait_for

# Starts a kvd local apiserver process per test.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _cm(name: str, **data: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name), data=data)


def test_crud_and_optimistic_concurrency(server: Server) -> None:
    core = client.CoreV1Api(server.api())
    created = core.create_namespaced_config_map("default", _cm("one", a="1"))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None
    got = core.read_namespaced_config_map("one", "default")
    assert got.data == {"a": "1"}
    got.data["a"] = "2"
    updated = core.replace_namespaced_config_map("one", "default", got)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    got.metadata.resource_version = created.metadata.resource_version  # stale
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("one", "default", got)
    assert caught.value.status == 409
    assert json.loads(caught.value.body)["reason"] == "Conflict"
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map("default", _cm("one"))
    assert caught.value.status == 409 and json.loads(caught.value.body)["reason"] == "AlreadyExists"
    patched = core.patch_namespaced_config_map("one", "default", {"data": {"b": "3"}})
    assert patched.data == {"a": "2", "b": "3"}
    core.delete_namespaced_config_map("one", "default")
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("one", "default")
    assert caught.value.status == 404
    generated = core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="gen-"))
    )
    assert generated.metadata.name.startswith("gen-") and len(generated.metadata.name) == 9


def test_watch_from_a_resource_version_gets_exactly_the_later_events(server: Server) -> None:
    core = client.CoreV1Api(server.api())
    core.create_namespaced_config_map("default", _cm("before"))
    listed = core.list_namespaced_config_map("default")
    since = listed.metadata.resource_version
    core.create_namespaced_config_map("default", _cm("w1"))
    core.patch_namespaced_config_map("w1", "default", {"data": {"x": "y"}})
    core.delete_namespaced_config_map("w1", "default")
    core.create_namespaced_config_map("kube-system", _cm("elsewhere"))
    events = []
    for event in watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=since, timeout_seconds=2
    ):
        events.append((event["type"], event["object"].metadata.name))
    assert events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_expired_resource_version_is_410_and_a_relist_recovers(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--history", "5")
    try:
        core = client.CoreV1Api(server.api())
        first = core.create_namespaced_config_map("default", _cm("old"))
        for i in range(10):
            core.create_namespaced_config_map("default", _cm(f"c{i}"))
        with pytest.raises(ApiException) as caught:
            for _ in watch.Watch().stream(
                core.list_namespaced_config_map,
                "default",
                resource_version=first.metadata.resource_version,
                timeout_seconds=2,
            ):
                pass
        assert caught.value.status == 410
        relisted = core.list_namespaced_config_map("default")
        assert len(relisted.items) == 11 + 1  # and kube-root-ca.crt
        names = []
        for event in watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=relisted.metadata.resource_version,
            timeout_seconds=2,
        ):
            names.append(event["object"].metadata.name)
        assert names == []
    finally:
        server.stop()


def test_finalizers_hold_deletion_until_removed(server: Server) -> None:
    core = client.CoreV1Api(server.api())
    cm = _cm("held")
    cm.metadata.finalizers = ["example.com/hold"]
    core.create_namespaced_config_map("default", cm)
    core.delete_namespaced_config_map("held", "default")
    still = core.read_namespaced_config_map("held", "default")
    assert still.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", "default", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("held", "default")
    assert caught.value.status == 404


def test_deleting_an_owner_collects_its_dependents(server: Server) -> None:
    core = client.CoreV1Api(server.api())
    owner = core.create_namespaced_config_map("default", _cm("owner"))
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    for i in range(3):
        dep = _cm(f"dep{i}")
        dep.metadata.owner_references = [ref]
        core.create_namespaced_config_map("default", dep)
    core.create_namespaced_config_map("default", _cm("unrelated"))
    core.delete_namespaced_config_map("owner", "default")

    def names() -> set[str]:
        return {c.metadata.name for c in core.list_namespaced_config_map("default").items}

    wait_for(
        "the dependents to be collected",
        lambda: names() == {"unrelated", ROOT_CA},
        timeout=10,
        diagnose=names,
    )


def test_a_dependent_made_after_its_owner_was_deleted_is_collected(server: Server) -> None:
    """A controller acting on a stale cache may create a dependent of an owner deleted a moment
    before (a VM's DataVolume, say). kube's collector deletes a new object none of whose owners
    exist, and keeps one with an owner it cannot look up (a kind the server does not serve)."""
    core = client.CoreV1Api(server.api())
    owner = core.create_namespaced_config_map("default", _cm("owner"))
    core.delete_namespaced_config_map("owner", "default")
    late = _cm("late")
    late.metadata.owner_references = [
        client.V1OwnerReference(
            api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
        )
    ]
    core.create_namespaced_config_map("default", late)
    renamed = _cm("renamed")  # its owner's name is taken by another object now
    core.create_namespaced_config_map("default", _cm("owner"))
    renamed.metadata.owner_references = [
        client.V1OwnerReference(
            api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
        )
    ]
    core.create_namespaced_config_map("default", renamed)
    unknown = _cm("unknown-owner")
    unknown.metadata.owner_references = [
        client.V1OwnerReference(
            api_version="example.com/v1", kind="Widget", name="w", uid="0000-widget"
        )
    ]
    core.create_namespaced_config_map("default", unknown)
    alive = _cm("alive")
    current = core.read_namespaced_config_map("owner", "default")
    alive.metadata.owner_references = [
        client.V1OwnerReference(
            api_version="v1", kind="ConfigMap", name="owner", uid=current.metadata.uid
        )
    ]
    core.create_namespaced_config_map("default", alive)

    def names() -> set[str]:
        return {c.metadata.name for c in core.list_namespaced_config_map("default").items}

    wait_for(
        "the dependents of the deleted owner to be collected",
        lambda: names() == {"owner", "alive", "unknown-owner", ROOT_CA},
        timeout=10,
        diagnose=names,
    )


def test_label_and_field_selectors(server: Server) -> None:
    core = client.CoreV1Api(server.api())
    for name, labels in [
        ("a", {"app": "web", "tier": "front"}),
        ("b", {"app": "web"}),
        ("c", {"app": "db"}),
    ]:
        cm = _cm(name)
        cm.metadata.labels = labels
        core.create_namespaced_config_map("default", cm)

    def names(**kw: Any) -> list[str]:
        return sorted(
            c.metadata.name for c in core.list_namespaced_config_map("default", **kw).items
        )

    assert names(label_selector="app=web") == ["a", "b"]
    # kube-root-ca.crt, in every namespace, has no labels
    assert names(label_selector="app!=web") == ["c", ROOT_CA]
    assert names(label_selector="app in (db,cache)") == ["c"]
    assert names(label_selector="app notin (db)") == ["a", "b", ROOT_CA]
    assert names(label_selector="tier") == ["a"]
    assert names(label_selector="!tier") == ["b", "c", ROOT_CA]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c", ROOT_CA]
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map("default", field_selector="spec.nope=1")
    assert caught.value.status == 400
    page = core.list_namespaced_config_map("default", limit=2)
    assert len(page.items) == 2 and page.metadata._continue
    rest = core.list_namespaced_config_map("default", limit=2, _continue=page.metadata._continue)
    assert [c.metadata.name for c in page.items + rest.items] == ["a", "b", "c", ROOT_CA]


def test_crd_then_custom_objects_with_schema_status_and_restart(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        ext = client.ApiextensionsV1Api(server.api())
        for path in sorted(CRDS.glob("*.yaml")):
            ext.create_custom_resource_definition(yaml.safe_load(path.read_text()))
        custom = client.CustomObjectsApi(server.api())
        vmi = yaml.safe_load(
            (Path(__file__).parents[2] / "api" / "manifests" / "vmi-containerdisk.yaml").read_text()
        )
        created = custom.create_namespaced_custom_object(
            "kubevirt.io", "v1", "default", "virtualmachineinstances", vmi
        )
        # kvd's admission applied KubeVirt's defaults, as KubeVirt's mutating webhook does
        assert created["spec"]["domain"]["devices"]["interfaces"] == [
            {"name": "default", "bridge": {}, "model": "virtio"}
        ]
        bad = json.loads(json.dumps(vmi))
        bad["metadata"]["name"] = "bad"
        bad["spec"]["domain"]["cpu"] = {"cores": 0}
        with pytest.raises(ApiException) as caught:
            custom.create_namespaced_custom_object(
                "kubevirt.io", "v1", "default", "virtualmachineinstances", bad
            )
        assert caught.value.status == 422
        causes = json.loads(caught.value.body)["details"]["causes"]
        assert any(c["field"] == "spec.domain.cpu.cores" for c in causes), causes
        # VMs have a status subresource: the main resource ignores status, /status ignores spec
        vm = yaml.safe_load(
            (Path(__file__).parents[2] / "api" / "manifests" / "vm-runstrategy.yaml").read_text()
        )
        vm["status"] = {"created": True}
        made = custom.create_namespaced_custom_object(
            "kubevirt.io", "v1", "default", "virtualmachines", vm
        )
        assert "status" not in made
        status = custom.patch_namespaced_custom_object_status(
            "kubevirt.io",
            "v1",
            "default",
            "virtualmachines",
            "vm-always",
            {"status": {"printableStatus": "Running"}, "spec": {"runStrategy": "Halted"}},
        )
        assert status["status"]["printableStatus"] == "Running"
        assert status["spec"]["runStrategy"] == "Always"
        main = custom.patch_namespaced_custom_object(
            "kubevirt.io",
            "v1",
            "default",
            "virtualmachines",
            "vm-always",
            {"status": {"printableStatus": "Stopped"}, "spec": {"runStrategy": "Halted"}},
        )
        assert (
            main["status"]["printableStatus"] == "Running"
            and main["spec"]["runStrategy"] == "Halted"
        )
        assert main["metadata"]["generation"] == 2
    finally:
        server.stop()
    again = start_server(tmp_path / "data")
    try:
        custom = client.CustomObjectsApi(again.api())
        vm = custom.get_namespaced_custom_object(
            "kubevirt.io", "v1", "default", "virtualmachines", "vm-always"
        )
        assert vm["status"]["printableStatus"] == "Running"
        custom.get_namespaced_custom_object(
            "kubevirt.io", "v1alpha3", "default", "virtualmachineinstances", "testvmi-nocloud"
        )
        after = client.CoreV1Api(again.api()).create_namespaced_config_map(
            "default", _cm("after-restart")
        )
        assert int(after.metadata.resource_version) > int(vm["metadata"]["resourceVersion"])
    finally:
        again.stop()


@pytest.mark.parametrize(
    ("headers", "path", "code"),
    [
        pytest.param({}, "/api/v1/namespaces", 401, id="no-token"),
        pytest.param(
            {"Authorization": "Bearer wrong"}, "/api/v1/namespaces", 401, id="wrong-token"
        ),
        pytest.param({}, "/apis", 401, id="discovery-needs-a-token"),
        pytest.param({"Authorization": "Basic x"}, "/api/v1/namespaces", 401, id="basic"),
        # the scheme is case-insensitive, as kube's: the Python client sends "bearer"
        pytest.param({"Authorization": "bearer {token}"}, "/api/v1/namespaces", 200, id="bearer"),
        pytest.param({"Authorization": "BEARER {token}"}, "/api/v1/namespaces", 200, id="BEARER"),
        pytest.param({}, "/version", 200, id="version-is-public"),
        pytest.param({}, "/healthz", 200, id="healthz-is-public"),
    ],
)
def test_authentication(server: Server, headers: dict[str, str], path: str, code: int) -> None:
    token = (server.data_dir / "token").read_text().strip()
    headers = {k: v.format(token=token) for k, v in headers.items()}
    request = urllib.request.Request(server.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10, context=_context(server)) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        if code == 401:
            assert json.loads(exc.read())["reason"] == "Unauthorized"
    assert status == code


def _context(server: Server) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(server.data_dir / "pki" / "ca.crt"))


def _raw(
    server: Server, method: str, path: str, body: bytes, content_type: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    token = server.kubeconfig.read_text().split("token: ")[1].split()[0]
    request = urllib.request.Request(
        server.url + path,
        data=body,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=_context(server)) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize(
    ("body", "code", "reason"),
    [
        pytest.param(b"{not json", 400, "BadRequest", id="malformed-json"),
        pytest.param(b"[1,2]", 400, "BadRequest", id="not-an-object"),
        pytest.param(
            b'{"apiVersion":"v2","kind":"ConfigMap","metadata":{"name":"x"}}',
            400,
            "BadRequest",
            id="wrong-apiversion",
        ),
        pytest.param(
            b'{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}',
            400,
            "BadRequest",
            id="wrong-kind",
        ),
        pytest.param(
            b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}',
            422,
            "Invalid",
            id="bad-name",
        ),
        pytest.param(
            b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}', 422, "Invalid", id="no-name"
        ),
        pytest.param(
            b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":"'
            + b"x" * (4 * 1024 * 1024)
            + b'"}',
            413,
            "RequestEntityTooLarge",
            id="too-large",
        ),
    ],
)
def test_bad_input_gets_kube_apiserver_codes(
    server: Server, body: bytes, code: int, reason: str
) -> None:
    status, answer = _raw(server, "POST", "/api/v1/namespaces/default/configmaps", body)
    assert (status, answer.get("reason")) == (code, reason), answer
    assert answer["kind"] == "Status" and answer["code"] == code


def test_unknown_namespace_and_yaml_bodies(server: Server) -> None:
    status, answer = _raw(
        server,
        "POST",
        "/api/v1/namespaces/nowhere/configmaps",
        b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}',
    )
    assert status == 404 and answer["details"]["kind"] == "namespaces"
    status, answer = _raw(
        server,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\n",
        "application/yaml",
    )
    assert status == 201 and answer["metadata"]["name"] == "from-yaml"


def test_many_watchers_see_every_event(server: Server) -> None:
    core = client.CoreV1Api(server.api())
    since = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list[list[str]] = [[] for _ in range(5)]

    def follow(out: list[str]) -> None:
        api = client.CoreV1Api(server.api())
        for event in watch.Watch().stream(
            api.list_namespaced_config_map, "default", resource_version=since, timeout_seconds=5
        ):
            out.append(event["object"].metadata.name)
            if len(out) == 20:
                return

    threads = [threading.Thread(target=follow, args=(s,)) for s in seen]
    for t in threads:
        t.start()
    for i in range(20):
        core.create_namespaced_config_map("default", _cm(f"fan{i:02d}"))
    for t in threads:
        t.join(timeout=30)
    assert all(s == [f"fan{i:02d}" for i in range(20)] for s in seen), seen


WIDGETS = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "color": {
                                        "type": "string",
                                        "enum": ["red", "blue"],
                                        "default": "red",
                                    },
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


def test_any_crd_gets_schema_defaulting_pruning_and_validation(server: Server) -> None:
    client.ApiextensionsV1Api(server.api()).create_custom_resource_definition(WIDGETS)
    custom = client.CustomObjectsApi(server.api())

    def widget(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": spec,
        }

    made = custom.create_namespaced_custom_object(
        "example.com", "v1", "default", "widgets", widget("w", {"size": 2, "extra": 1})
    )
    assert made["spec"] == {"size": 2, "color": "red"}  # defaulted, unknown field pruned
    for spec, field in [
        ({"size": 0}, "spec.size"),
        ({}, "spec.size"),
        ({"size": 1, "color": "green"}, "spec.color"),
    ]:
        with pytest.raises(ApiException) as caught:
            custom.create_namespaced_custom_object(
                "example.com", "v1", "default", "widgets", widget("bad", spec)
            )
        assert caught.value.status == 422
        assert [c["field"] for c in json.loads(caught.value.body)["details"]["causes"]] == [field]
    status, answer = _raw(
        server,
        "POST",
        "/apis/example.com/v1/namespaces/default/widgets?fieldValidation=Strict",
        json.dumps(widget("strict", {"size": 1, "extra": 1})).encode(),
    )
    assert status == 400 and 'unknown field "spec.extra"' in answer["message"]
    status, answer = _raw(
        server,
        "PATCH",
        "/apis/example.com/v1/namespaces/default/widgets/w",
        b'{"spec":{"size":3}}',
        "application/strategic-merge-patch+json",
    )
    assert (status, answer["reason"]) == (415, "UnsupportedMediaType")


def test_propagation_policies_and_deletecollection(server: Server) -> None:
    core = client.CoreV1Api(server.api())

    def family(owner: str) -> None:
        made = core.create_namespaced_config_map("default", _cm(owner))
        dep = _cm(f"{owner}-dep")
        dep.metadata.owner_references = [
            client.V1OwnerReference(
                api_version="v1", kind="ConfigMap", name=owner, uid=made.metadata.uid
            )
        ]
        core.create_namespaced_config_map("default", dep)

    def names() -> set[str]:
        return {c.metadata.name for c in core.list_namespaced_config_map("default").items}

    family("orphaner")
    core.delete_namespaced_config_map("orphaner", "default", propagation_policy="Orphan")
    wait_for("the orphaning owner to go", lambda: "orphaner" not in names(), timeout=10)
    orphan = core.read_namespaced_config_map("orphaner-dep", "default")
    assert not orphan.metadata.owner_references

    family("fore")
    core.delete_namespaced_config_map("fore", "default", propagation_policy="Foreground")
    wait_for("foreground deletion", lambda: not {"fore", "fore-dep"} & names(), timeout=10)

    for i in range(3):
        cm = _cm(f"batch{i}")
        cm.metadata.labels = {"batch": "yes"}
        core.create_namespaced_config_map("default", cm)
    core.delete_collection_namespaced_config_map("default", label_selector="batch=yes")
    assert not {n for n in names() if n.startswith("batch")}
    assert "orphaner-dep" in names()


def test_a_bound_pod_waits_for_its_node_to_confirm_deletion(server: Server) -> None:
    core = client.CoreV1Api(server.api())
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="bound"),
        spec=client.V1PodSpec(
            node_name="node-1", containers=[client.V1Container(name="c", image="i")]
        ),
    )
    core.create_namespaced_pod("default", pod)
    core.delete_namespaced_pod("bound", "default", grace_period_seconds=30)
    marked = core.read_namespaced_pod("bound", "default")
    assert marked.metadata.deletion_timestamp is not None
    assert marked.metadata.deletion_grace_period_seconds == 30
    core.delete_namespaced_pod("bound", "default", grace_period_seconds=0)  # the node confirms
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod("bound", "default")
    assert caught.value.status == 404
    assert [
        p.metadata.name
        for p in core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-1").items
    ] == []


def test_token_and_subject_access_reviews(server: Server) -> None:
    api = server.api()
    token = server.kubeconfig.read_text().split("token: ")[1].split()[0]
    authn = client.AuthenticationV1Api(api)
    good = authn.create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
    )
    assert good.status.authenticated and "system:masters" in good.status.user.groups
    bad = authn.create_token_review(
        client.V1TokenReview(spec=client.V1TokenReviewSpec(token="nope"))
    )
    assert not bad.status.authenticated
    authz = client.AuthorizationV1Api(api)

    def allowed(user: str, groups: list[str]) -> bool:
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=groups,
                resource_attributes=client.V1ResourceAttributes(
                    group="subresources.kubevirt.io",
                    resource="virtualmachineinstances",
                    subresource="console",
                    verb="get",
                    namespace="default",
                    name="x",
                ),
            )
        )
        return bool(authz.create_subject_access_review(review).status.allowed)

    assert allowed(good.status.user.username, good.status.user.groups)
    assert not allowed("someone", ["system:authenticated"])
