"""The VMI a VM runs, as KubeVirt makes it from the template, and how a running VMI is compared
with the template (RestartRequired, the generation it records)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from kvd.api import codec, kinds
from kvd.controller import vmtemplate

Json = dict[str, Any]

VM: Json = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "VirtualMachine",
    "metadata": {"name": "vm-cirros", "namespace": "ns", "uid": "vm-uid", "generation": 4},
    "spec": {
        "running": True,
        "template": {
            "metadata": {
                "labels": {"kubevirt.io/vm": "vm-cirros"},
                "annotations": {"note": "kept"},
            },
            "spec": {
                "domain": {
                    "devices": {"disks": [{"name": "containerdisk", "disk": {"bus": "virtio"}}]},
                    "resources": {"requests": {"memory": "128Mi"}},
                },
                "volumes": [{"name": "containerdisk", "containerDisk": {"image": "kvd-demo"}}],
            },
        },
    },
}


def test_the_vmi_has_the_vms_name_template_owner_and_finalizer() -> None:
    vmi = vmtemplate.vmi_for(VM)
    meta = vmi["metadata"]
    assert (meta["name"], meta["namespace"]) == ("vm-cirros", "ns")
    assert meta["labels"] == {"kubevirt.io/vm": "vm-cirros"}
    assert meta["annotations"] == {"note": "kept", "kubevirt.io/vm-generation": "4"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "VirtualMachine",
            "name": "vm-cirros",
            "uid": "vm-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["finalizers"] == ["kubevirt.io/virtualMachineControllerFinalize"]
    assert vmi["spec"]["volumes"] == VM["spec"]["template"]["spec"]["volumes"]
    # a valid VMI, as the API server will take it
    assert isinstance(kinds.load(vmi), kinds.VMI.cls)


def test_the_firmware_uuid_is_kubevirts_stable_one() -> None:
    got = vmtemplate.vmi_for(VM)["spec"]["domain"]["firmware"]["uuid"]
    # KubeVirt's CalculateLegacyUUID: uuid.NewSHA1(6a1a24a1-…, name), i.e. a version-5 UUID
    assert got == str(uuid.uuid5(uuid.UUID("6a1a24a1-4061-4607-8bf4-a3963d0c5895"), "vm-cirros"))
    assert uuid.UUID(got).version == 5
    chosen = copy.deepcopy(VM)
    chosen["spec"]["template"]["spec"]["domain"]["firmware"] = {
        "uuid": "0c2f6f5a-1f0e-4d6e-9d43-1c1e2a3b4c5d"
    }
    assert vmtemplate.vmi_for(chosen)["spec"]["domain"]["firmware"]["uuid"] == (
        "0c2f6f5a-1f0e-4d6e-9d43-1c1e2a3b4c5d"
    )
    assert "firmware" not in VM["spec"]["template"]["spec"]["domain"]  # the VM is not touched


def _as_stored(vmi: Json) -> Json:
    """The VMI as the API server stores it: defaulted, with what controllers add later."""
    stored = copy.deepcopy(vmi)
    stored["spec"] = codec.encode(kinds.load(vmi).spec)
    stored["metadata"]["labels"]["kubevirt.io/nodeName"] = "node-1"
    return stored


def test_a_vmi_matches_the_template_it_was_made_from() -> None:
    stored = _as_stored(vmtemplate.vmi_for(VM))
    assert stored["spec"] != VM["spec"]["template"]["spec"]  # defaults were applied
    assert vmtemplate.spec_matches(VM, stored)
    assert vmtemplate.template_matches(VM, stored)


def test_a_template_spec_change_needs_a_restart() -> None:
    stored = _as_stored(vmtemplate.vmi_for(VM))
    edited = copy.deepcopy(VM)
    edited["spec"]["template"]["spec"]["domain"]["resources"]["requests"]["memory"] = "256Mi"
    assert not vmtemplate.spec_matches(edited, stored)
    assert not vmtemplate.template_matches(edited, stored)


def test_a_template_label_change_needs_no_restart_but_is_not_the_same_template() -> None:
    stored = _as_stored(vmtemplate.vmi_for(VM))
    edited = copy.deepcopy(VM)
    edited["spec"]["template"]["metadata"]["labels"]["tier"] = "web"
    assert vmtemplate.spec_matches(edited, stored)
    assert not vmtemplate.template_matches(edited, stored)


def test_the_generation_a_vmi_records() -> None:
    assert vmtemplate.generation_of(vmtemplate.vmi_for(VM)) == 4
    assert vmtemplate.generation_of({"metadata": {}}) is None
    assert (
        vmtemplate.generation_of({"metadata": {"annotations": {"kubevirt.io/vm-generation": "x"}}})
        is None
    )
