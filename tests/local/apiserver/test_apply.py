"""Server-side apply and managedFields, driven by real kubectl 1.37 and the official client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.local.apiserver.conftest import Server

pytestmark = pytest.mark.timeout(180)
MANIFESTS = Path(__file__).parents[2] / "api" / "manifests"
APPLY = "application/apply-patch+yaml"


def write(path: Path, *docs: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump_all(docs))
    return path


def configmap(name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "demo"}},
        "data": data,
    }


def get(s: Server, *what: str) -> dict[str, Any]:
    out = s.kubectl("get", *what, "-o", "json", "--show-managed-fields").stdout
    obj: dict[str, Any] = json.loads(out)
    return obj


def managers(obj: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    return {e["manager"]: (e["operation"], e["fieldsV1"]) for e in obj["metadata"]["managedFields"]}


def test_apply_twice_then_conflict_then_force(server: Server, tmp_path: Path) -> None:
    s = server
    mine = write(tmp_path / "cm.yaml", configmap("demo", a="1", b="2"))
    assert "serverside-applied" in s.kubectl("apply", "--server-side", "-f", str(mine)).stdout
    first = get(s, "configmap", "demo")
    assert managers(first) == {
        "kubectl": (
            "Apply",
            {"f:data": {"f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {"f:app": {}}}},
        )
    }
    s.kubectl("apply", "--server-side", "-f", str(mine))
    again = get(s, "configmap", "demo")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"]
    assert again == first, "the second apply of the same configuration changed the object"

    theirs = write(tmp_path / "other.yaml", configmap("demo", a="changed"))
    refused = s.kubectl(
        "apply", "--server-side", "--field-manager", "other", "-f", str(theirs), check=False
    )
    assert refused.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl": .data.a' in refused.stderr
    assert get(s, "configmap", "demo")["data"]["a"] == "1"

    s.kubectl(
        "apply", "--server-side", "--field-manager", "other", "--force-conflicts", "-f", str(theirs)
    )
    forced = get(s, "configmap", "demo")
    assert forced["data"] == {"a": "changed", "b": "2"}
    owners = managers(forced)
    assert owners["other"][1]["f:data"] == {"f:a": {}}
    assert owners["kubectl"][1]["f:data"] == {"f:b": {}}, "kubectl lost .data.a to the force"

    # kubectl now applies without b: b goes, as nobody else owns it; a stays (other owns it)
    write(mine, {**configmap("demo"), "data": {}})
    s.kubectl("apply", "--server-side", "-f", str(mine))
    assert get(s, "configmap", "demo")["data"] == {"a": "changed"}


def test_diff_server_side(server: Server, tmp_path: Path) -> None:
    s = server
    manifest = write(tmp_path / "cm.yaml", configmap("diffed", a="1"))
    s.kubectl("apply", "--server-side", "-f", str(manifest))
    same = s.kubectl("diff", "--server-side", "-f", str(manifest), check=False)
    assert (same.returncode, same.stdout) == (0, ""), same.stderr
    write(manifest, configmap("diffed", a="2"))
    changed = s.kubectl("diff", "--server-side", "-f", str(manifest), check=False)
    assert changed.returncode == 1, changed.stderr
    assert '-  a: "1"' in changed.stdout and '+  a: "2"' in changed.stdout
    assert get(s, "configmap", "diffed")["data"] == {"a": "1"}, "diff wrote the change"


def test_applyset_prune_removes_what_left_the_set(server: Server, tmp_path: Path) -> None:
    s = server
    folder = tmp_path / "set"
    folder.mkdir()
    write(folder / "a.yaml", configmap("set-a", x="1"))
    write(folder / "b.yaml", configmap("set-b", x="2"))
    env = ("-n", "default", "--server-side", "--prune", "--applyset=demo-set", "-f", str(folder))
    first = s.kubectl("apply", *env, env={"KUBECTL_APPLYSET": "true"})
    assert "configmap/set-b serverside-applied" in first.stdout
    (folder / "b.yaml").unlink()
    second = s.kubectl("apply", *env, env={"KUBECTL_APPLYSET": "true"})
    assert "configmap/set-b pruned" in second.stdout
    names = s.kubectl("get", "configmaps", "-o", "name").stdout.split()
    assert "configmap/set-a" in names and "configmap/set-b" not in names
    parent = get(s, "secret", "demo-set")
    assert parent["metadata"]["annotations"]["applyset.kubernetes.io/contains-group-kinds"] == (
        "ConfigMap"
    )


def test_every_write_records_its_manager(server: Server) -> None:
    s = server
    s.kubectl("create", "configmap", "written", "--from-literal=a=1")
    s.kubectl("label", "configmap", "written", "team=x")
    s.kubectl("patch", "configmap", "written", "--type=merge", "-p", '{"data":{"b":"2"}}')
    owners = managers(get(s, "configmap", "written"))
    assert owners == {
        "kubectl-create": ("Update", {"f:data": {".": {}, "f:a": {}}}),
        "kubectl-label": ("Update", {"f:metadata": {"f:labels": {".": {}, "f:team": {}}}}),
        "kubectl-patch": ("Update", {"f:data": {"f:b": {}}}),
    }
    # an update by another manager moves ownership of what it changes
    s.kubectl("patch", "configmap", "written", "--type=merge", "-p", '{"data":{"a":"9"}}')
    owners = managers(get(s, "configmap", "written"))
    assert owners["kubectl-create"][1] == {"f:data": {}}, "it still owns the map it made"
    assert owners["kubectl-patch"][1] == {"f:data": {"f:a": {}, "f:b": {}}}
    # and kubectl get hides them unless asked
    plain = json.loads(s.kubectl("get", "configmap", "written", "-o", "json").stdout)
    assert "managedFields" not in plain["metadata"]


def test_managed_fields_can_be_reset_but_not_made_up(server: Server) -> None:
    s = server
    s.kubectl("create", "configmap", "reset", "--from-literal=a=1")
    bogus = {
        "metadata": {
            "managedFields": [
                {
                    "manager": "x" * 129,
                    "operation": "Update",
                    "apiVersion": "v1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {"f:a": {}}},
                }
            ]
        }
    }
    refused = s.kubectl(
        "patch", "configmap", "reset", "--type=merge", "-p", json.dumps(bogus), check=False
    )
    assert refused.returncode == 1
    assert "metadata.managedFields[0].manager: Too long" in refused.stderr
    s.kubectl(
        "patch",
        "configmap",
        "reset",
        "--type=merge",
        "-p",
        '{"metadata":{"managedFields":[{}]}}',
    )
    assert "managedFields" not in get(s, "configmap", "reset")["metadata"]


def test_python_client_apply_patch(server: Server) -> None:
    api = client.CoreV1Api(server.api())
    body = configmap("from-python", a="1")
    created = api.patch_namespaced_config_map(
        "from-python", "default", body, field_manager="python-app", _content_type=APPLY
    )
    assert created.data == {"a": "1"}
    entry = created.metadata.managed_fields[0]
    assert (entry.manager, entry.operation, entry.api_version) == ("python-app", "Apply", "v1")
    assert entry.fields_v1 == {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}

    with pytest.raises(ApiException) as missing:
        api.patch_namespaced_config_map("from-python", "default", body, _content_type=APPLY)
    assert missing.value.status == 422
    assert "fieldManager: Required value: is required for apply patch" in missing.value.body

    dry = api.patch_namespaced_config_map(
        "from-python",
        "default",
        configmap("from-python", a="2"),
        field_manager="python-app",
        dry_run="All",
        force=True,
        _content_type=APPLY,
    )
    assert dry.data == {"a": "2"}
    assert api.read_namespaced_config_map("from-python", "default").data == {"a": "1"}

    # a replace by the client (its user agent names the manager) takes what it changes
    updated = api.replace_namespaced_config_map(
        "from-python", "default", configmap("from-python", a="3")
    )
    owners = {e.manager: (e.operation, e.fields_v1) for e in updated.metadata.managed_fields}
    assert owners["OpenAPI-Generator"] == ("Update", {"f:data": {"f:a": {}}})
    assert owners["python-app"] == ("Apply", {"f:metadata": {"f:labels": {"f:app": {}}}})
    owners = {e.manager: e.operation for e in updated.metadata.managed_fields}
    assert owners == {"python-app": "Apply", "OpenAPI-Generator": "Update"}


def test_vmi_applied_server_side_is_admitted_and_defaulted(
    with_crds: Server, tmp_path: Path
) -> None:
    s = with_crds
    doc = yaml.safe_load((MANIFESTS / "vmi-containerdisk.yaml").read_text())
    manifest = write(tmp_path / "vmi.yaml", doc)
    assert "serverside-applied" in s.kubectl("apply", "--server-side", "-f", str(manifest)).stdout
    vmi = get(s, "vmi", doc["metadata"]["name"])
    assert vmi["spec"]["domain"]["machine"] == {"type": "q35"}, "admission defaults ran"
    owners = managers(vmi)
    assert owners["kubectl"][0] == "Apply"
    assert "f:machine" not in json.dumps(owners["kubectl"][1]), "defaults are nobody's"
    before = vmi["metadata"]["resourceVersion"]
    s.kubectl("apply", "--server-side", "-f", str(manifest))
    assert get(s, "vmi", doc["metadata"]["name"])["metadata"]["resourceVersion"] == before

    doc["spec"]["domain"]["devices"]["bogusDevice"] = True
    write(manifest, doc)
    refused = s.kubectl("apply", "--server-side", "-f", str(manifest), check=False)
    assert refused.returncode == 1
    assert "bogusDevice" in refused.stderr


def test_status_writes_and_applies_are_recorded_per_subresource(server: Server) -> None:
    api = client.CoreV1Api(server.api())
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    api.create_namespaced_pod("default", pod, field_manager="creator")
    api.patch_namespaced_pod_status(
        "p", "default", {"status": {"message": "hello"}}, field_manager="kubelet"
    )
    applied = api.patch_namespaced_pod_status(
        "p",
        "default",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "status": {"conditions": [{"type": "Ready", "status": "False"}]},
        },
        field_manager="node-agent",
        _content_type=APPLY,
    )
    entries = {
        (e.manager, e.operation, e.subresource): e.fields_v1
        for e in applied.metadata.managed_fields
    }
    kubelet = entries[("kubelet", "Update", "status")]
    assert list(kubelet) == ["f:status"] and "f:message" in kubelet["f:status"]
    assert entries[("node-agent", "Apply", "status")] == {
        "f:status": {
            "f:conditions": {'k:{"type":"Ready"}': {".": {}, "f:status": {}, "f:type": {}}}
        }
    }
    assert entries[("creator", "Update", None)]["f:spec"]["f:containers"]
    # changing a field the kubelet wrote through /status conflicts, naming the subresource
    with pytest.raises(ApiException) as conflict:
        api.patch_namespaced_pod_status(
            "p",
            "default",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "status": {"message": "mine"},
            },
            field_manager="node-agent",
            _content_type=APPLY,
        )
    assert conflict.value.status == 409
    assert (
        'conflict with \\"kubelet\\" with subresource \\"status\\" using v1' in conflict.value.body
    )


def test_crds_applied_twice_stay_as_they_are(server: Server) -> None:
    """helm 4 applies its chart's CRDs server-side on every upgrade."""
    s = server
    crds = str(Path(__file__).parents[3] / "charts" / "kvd" / "crds")
    s.kubectl("apply", "--server-side", "-f", crds)
    s.kubectl("wait", "--for=condition=established", "--timeout=30s", "crd", "--all")
    columns = ("get", "crd", "-o", "custom-columns=N:.metadata.name,RV:.metadata.resourceVersion")
    before = s.kubectl(*columns).stdout
    s.kubectl("apply", "--server-side", "-f", crds)
    assert s.kubectl(*columns).stdout == before
    vmis = get(s, "crd", "virtualmachineinstances.kubevirt.io")
    assert managers(vmis)["kubectl"][0] == "Apply"
