"""Real kubectl 1.37 against the embedded API server, with its default flags (--validate=strict)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.local.apiserver.conftest import KUBECTL, Server
from tests.support.console import Transcript

# Starts a kvd local apiserver process per test.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
MANIFESTS = Path(__file__).parents[2] / "api" / "manifests"


def test_apply_get_describe_patch_wait_delete(with_crds: Server, tmp_path: Path) -> None:
    s = with_crds
    manifest = tmp_path / "vmi.yaml"
    doc = yaml.safe_load((MANIFESTS / "vmi-containerdisk.yaml").read_text())
    manifest.write_text(yaml.safe_dump(doc))
    assert "created" in s.kubectl("apply", "-f", str(manifest)).stdout
    assert "unchanged" in s.kubectl("apply", "-f", str(manifest)).stdout
    doc["metadata"]["labels"]["extra"] = "yes"
    manifest.write_text(yaml.safe_dump(doc))
    assert "configured" in s.kubectl("apply", "-f", str(manifest)).stdout

    got = yaml.safe_load(s.kubectl("get", "vmi", "testvmi-nocloud", "-o", "yaml").stdout)
    assert got["metadata"]["labels"]["extra"] == "yes"
    assert got["spec"]["domain"]["machine"] == {"type": "q35"}  # defaulted at admission

    table = s.kubectl("get", "vmis").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "PHASE", "IP", "NODENAME", "READY"]
    assert table[1].split()[0] == "testvmi-nocloud"
    assert "testvmi-nocloud" in s.kubectl("get", "virtualmachineinstances.kubevirt.io").stdout
    assert "testvmi-nocloud" in s.kubectl("get", "kubevirt").stdout  # category

    described = s.kubectl("describe", "vmi", "testvmi-nocloud").stdout
    assert "Name:" in described and "testvmi-nocloud" in described
    assert "API Version:  kubevirt.io/v1" in described

    watcher = subprocess.Popen(
        [
            KUBECTL,
            "get",
            "vmi",
            "testvmi-nocloud",
            "-w",
            "--output-watch-events",
            "-o",
            'jsonpath={.type} {.object.status.phase}{"\\n"}',
        ],
        env={**os.environ, "KUBECONFIG": str(s.kubeconfig), "HOME": str(s.data_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watcher.stdout is not None
    events = Transcript(watcher.stdout, what="kubectl get -w")
    try:
        # kubectl prints what it listed first, then watches from that list's resourceVersion:
        # once the ADDED line is out, a change made now must arrive through the watch
        events.wait_match(r"^ADDED ", timeout=20)
        out = s.kubectl(
            "patch",
            "vmi",
            "testvmi-nocloud",
            "--type",
            "merge",
            "-p",
            json.dumps(
                {
                    "status": {
                        "phase": "Running",
                        "conditions": [{"type": "Ready", "status": "True"}],
                    }
                }
            ),
        ).stdout
        assert "patched" in out
        events.wait_match(r"^MODIFIED Running$", timeout=20)
    finally:
        watcher.kill()
        watcher.wait()

    s.kubectl("wait", "--for=condition=Ready", "--timeout=20s", "vmi/testvmi-nocloud")
    assert s.kubectl("get", "vmis").stdout.splitlines()[1].split()[2] == "Running"
    assert "deleted" in s.kubectl("delete", "-f", str(manifest)).stdout
    assert "No resources found" in s.kubectl("get", "vmis").stderr


def test_strict_validation_and_field_errors(with_crds: Server, tmp_path: Path) -> None:
    s = with_crds
    bad = yaml.safe_load((MANIFESTS / "vmi-containerdisk.yaml").read_text())
    bad["spec"]["domain"]["devices"]["disks"][0]["name"] = "nothere"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    done = s.kubectl("apply", "-f", str(path), check=False)
    assert done.returncode != 0
    assert 'spec.domain.devices.disks[0].name: no volume named "nothere"' in done.stderr


def test_deprecated_fields_are_stored_converted_and_warned_about(with_crds: Server) -> None:
    """kube-apiserver's way with a deprecated field: accepted, with a `Warning` header that
    kubectl prints; the stored object uses today's field."""
    s = with_crds
    seed = MANIFESTS / "seed" / "vm-registrydisk.yaml"
    done = s.kubectl("apply", "-f", str(seed))
    assert (
        "Warning: spec.template.spec.volumes[0].registryDisk: deprecated; use containerDisk "
        "instead" in done.stderr
    )
    assert "spec.template.spec.domain.devices.disks[0].volumeName: deprecated" in done.stderr
    vm = json.loads(s.kubectl("get", "vm", "vm-registrydisk", "-o", "json").stdout)
    spec = vm["spec"]["template"]["spec"]
    assert spec["volumes"][0]["containerDisk"]["image"].endswith("cirros-registry-disk-demo:devel")
    assert "registryDisk" not in spec["volumes"][0]
    assert spec["domain"]["devices"]["disks"][0]["name"] == "registryvolume"
    s.kubectl("delete", "-f", str(seed))


def test_an_unsupported_field_is_a_forbidden_cause(with_crds: Server) -> None:
    vmi = yaml.safe_load((MANIFESTS / "vmi-containerdisk.yaml").read_text())
    vmi["spec"]["domain"]["devices"]["gpus"] = [{"name": "gpu1", "deviceName": "nvidia.com/x"}]
    api = client.CustomObjectsApi(with_crds.api())
    with pytest.raises(client.ApiException) as raised:
        api.create_namespaced_custom_object(
            "kubevirt.io", "v1", "default", "virtualmachineinstances", vmi
        )
    (cause,) = json.loads(raised.value.body)["details"]["causes"]
    assert cause == {
        "reason": "FieldValueForbidden",
        "message": "field not supported by kvd yet (GPU passthrough)",
        "field": "spec.domain.devices.gpus",
    }


def test_builtin_kinds_and_short_names(server: Server, tmp_path: Path) -> None:
    s = server
    assert "default" in s.kubectl("get", "ns").stdout
    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: '1'\n")
    assert "created" in s.kubectl("apply", "-f", str(cm)).stdout
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: '2'\n")
    assert "configured" in s.kubectl("apply", "-f", str(cm)).stdout
    assert json.loads(s.kubectl("get", "cm", "c", "-o", "json").stdout)["data"] == {"a": "2"}
    pod = tmp_path / "pod.yaml"
    pod.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n"
        "  - name: main\n    image: busybox\n    command: [sleep, '1']\n"
    )
    s.kubectl("apply", "-f", str(pod))
    assert s.kubectl("get", "po").stdout.split()[:5] == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
    ]
    s.kubectl("patch", "pod", "p", "-p", json.dumps({"metadata": {"labels": {"x": "y"}}}))
    assert "x=y" in s.kubectl("get", "pod", "p", "--show-labels").stdout
    s.kubectl("delete", "pod", "p")


def test_admission_warnings_reach_kubectl_and_the_client(with_crds: Server, tmp_path: Path) -> None:
    s = with_crds
    warning = "Warning: spec.running is deprecated, please use spec.runStrategy instead."
    created = s.kubectl("apply", "-f", str(MANIFESTS / "vm-stopped.yaml"))
    assert "created" in created.stdout and warning in created.stderr
    s.kubectl("get", "vm", "vm-stopped")  # the warning did not stop the write
    relabelled = s.kubectl("label", "vm", "vm-stopped", "x=y")
    assert warning in relabelled.stderr, "an update is admitted, and warned about, too"
    quiet = s.kubectl("apply", "-f", str(MANIFESTS / "vm-runstrategy.yaml"))
    assert "created" in quiet.stdout and "Warning" not in quiet.stderr

    # What kubectl parsed: one RFC 7234 header per warning, as kube-apiserver sends it.
    vm = yaml.safe_load((MANIFESTS / "vm-stopped.yaml").read_text())
    vm["metadata"]["name"] = "another"
    custom = client.CustomObjectsApi(s.api())
    _, status, headers = custom.create_namespaced_custom_object_with_http_info(
        "kubevirt.io", "v1", "default", "virtualmachines", vm
    )
    assert status == 201
    assert (
        headers["Warning"]
        == '299 - "spec.running is deprecated, please use spec.runStrategy instead."'
    )
