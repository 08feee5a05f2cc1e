"""The controller caches trimmed objects (kvd.controller.cached): none of its writes may send one
back. A real API server round trip: objects with an annotation `kubectl apply` leaves, other
annotations and the server's managedFields; the controller writes each; read back whole, all of it
is still there."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from kvd.kube import transforms
from tests.controller.conftest import VMIS, Env, Json
from tests.controller.test_vm_controller import TEMPLATE, VMS, shows
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration  # starts a kvd local apiserver and kvd controller processes


def annotated(body: Json) -> Json:
    body["metadata"]["annotations"] = {
        transforms.LAST_APPLIED: json.dumps(body, sort_keys=True),
        "example.com/keep": "me",
    }
    body["metadata"]["labels"] = {"example.com/team": "infra"}
    return body


def untouched(before: Json, after: Json) -> None:
    """Everything of `before` but what the controller may add to is in `after` unchanged."""
    for key in ("annotations", "creationTimestamp", "uid", "name", "namespace"):
        assert after["metadata"][key] == before["metadata"][key], key
    for key, value in before["metadata"]["labels"].items():
        assert after["metadata"]["labels"][key] == value
    assert after["spec"] == before["spec"]
    managers = [(m["manager"], m["operation"]) for m in after["metadata"]["managedFields"]]
    for entry in before["metadata"]["managedFields"]:
        assert (entry["manager"], entry["operation"]) in managers, managers


def test_a_vmi_the_controller_writes_keeps_every_field(env: Env) -> None:
    body: Json = annotated(
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachineInstance",
            "metadata": {"name": "whole"},
            "spec": {
                "domain": {"resources": {"requests": {"memory": "128Mi"}}, "devices": {}},
                "terminationGracePeriodSeconds": 0,
            },
        }
    )
    created: Json = env.raw.create(VMIS, body)
    assert created["metadata"]["managedFields"]  # the server records its writer
    pod = env.the_pod(created)
    wait_for("Scheduling", lambda: _phase(env.vmi("whole")) == "Scheduling")
    env.pod_status(
        pod,
        {
            "phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [
                {"name": "compute", "image": "kvd", "imageID": "", "restartCount": 0,
                 "ready": True, "state": {"running": {}}}
            ],
        },
        node="n1",
    )  # fmt: skip
    wait_for("Scheduled", lambda: _phase(env.vmi("whole")) == "Scheduled")
    after = env.vmi("whole")
    untouched(created, after)
    assert after["metadata"]["labels"]["kubevirt.io/nodeName"] == "n1"  # it did write
    whole_pod: Json = env.raw.get(f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}")
    assert whole_pod["spec"]["containers"] == pod["spec"]["containers"]
    env.raw.delete(f"{VMIS}/whole")


def test_a_vm_the_controller_writes_keeps_every_field(env: Env) -> None:
    body: Json = annotated(
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "metadata": {"name": "whole-vm"},
            "spec": {"template": copy.deepcopy(TEMPLATE), "runStrategy": "Always"},
        }
    )
    created: Json = env.raw.create(VMS, body)
    shows(env, "whole-vm", "Starting")  # the controller made its VMI and wrote the VM's status
    after: Json = env.raw.get(f"{VMS}/whole-vm")
    untouched(created, after)
    assert after["status"]["printableStatus"] == "Starting"
    vmi = env.vmi("whole-vm")
    assert transforms.LAST_APPLIED not in (vmi["metadata"].get("annotations") or {})
    env.raw.merge_patch(f"{VMS}/whole-vm", {"spec": {"runStrategy": "Halted"}})
    wait_for("the VMI gone", lambda: not _exists(env, "whole-vm"), timeout=15)
    env.raw.delete(f"{VMS}/whole-vm")


def _exists(env: Env, name: str) -> bool:
    return any(v["metadata"]["name"] == name for v in env.raw.get(VMIS)["items"])


def _phase(vmi: Any) -> str:
    return str((vmi.get("status") or {}).get("phase") or "")
