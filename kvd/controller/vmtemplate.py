"""The VMI a VirtualMachine runs, made from its template as KubeVirt's `SetupVMIFromVM` makes it,
and whether a VMI still matches the template. Pure.

- Name and namespace are the VM's, so a VM has at most one VMI: a second create is refused by
  the API server whatever the controller's cache says.
- Labels and annotations are the template's, plus `kubevirt.io/vm-generation` (the VM
  generation the VMI is made from); an owner reference names the VM (controller,
  blockOwnerDeletion), so the garbage collector deletes the VMI with its VM; and the finalizer
  `kubevirt.io/virtualMachineControllerFinalize` holds the VMI until the VM controller has read
  its end into the VM's status.
- The spec is the template's, with KubeVirt's stable firmware UUID (a UUIDv5 of the VM's name)
  when the template sets none, so the guest sees the same machine across restarts.

KubeVirt records the template a VMI started from in a ControllerRevision; kvd keeps none (the
local API server serves none): the VMI is that record. Both sides are compared as kvd.api
defaults them (`normalized`), since the API server defaults a created VMI but not an edited
VM, and fields others add to a VMI (the controller's `kubevirt.io/nodeName` label, the
generation annotation) are left out.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any, Final

from kvd.api import codec, defaults, keys, kinds
from kvd.api import vmi as vmitypes
from kvd.api.errors import ValidationError

Json = dict[str, Any]

# KubeVirt's namespace for CalculateLegacyUUID: the firmware UUID of a VM's VMIs is
# uuid5(this, VM name), the same in KubeVirt and kvd.
FIRMWARE_UUID_NAMESPACE: Final = uuid.UUID("6a1a24a1-4061-4607-8bf4-a3963d0c5895")
# What the controllers add to a VMI's metadata after creating it; not part of the template.
ADDED_LABELS: Final = frozenset({keys.NODE_NAME})
ADDED_ANNOTATIONS: Final = frozenset({keys.VM_GENERATION})


def firmware_uuid(name: str) -> str:
    return str(uuid.uuid5(FIRMWARE_UUID_NAMESPACE, name))


def owner_reference(owner: Json) -> Json:
    """A controller reference to `owner` (a VM or a VMIRS), as metav1.NewControllerRef."""
    meta = owner["metadata"]
    return {
        "apiVersion": f"{kinds.GROUP}/{kinds.STORAGE_VERSION}",
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Json) -> Json | None:
    """The owner reference with `controller: true`, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def vmi_for(vm: Json) -> Json:
    """The VMI to create for `vm` now."""
    meta, template = vm["metadata"], vm["spec"]["template"]
    template_meta = template.get("metadata") or {}
    annotations = dict(template_meta.get("annotations") or {})
    annotations[keys.VM_GENERATION] = str(meta.get("generation") or 1)
    vmi_meta: Json = {
        "name": meta["name"],
        "namespace": meta["namespace"],
        "annotations": annotations,
        "ownerReferences": [owner_reference(vm)],
        "finalizers": [keys.VM_FINALIZER],
    }
    labels = template_meta.get("labels")
    if labels:
        vmi_meta["labels"] = dict(labels)
    return {
        "apiVersion": f"{kinds.GROUP}/{kinds.STORAGE_VERSION}",
        "kind": kinds.VMI.kind,
        "metadata": vmi_meta,
        "spec": with_firmware_uuid(template["spec"], meta["name"]),
    }


def with_firmware_uuid(spec: Json, name: str) -> Json:
    out = copy.deepcopy(spec)
    domain = out.setdefault("domain", {})
    firmware = domain.get("firmware") or {}
    if not firmware.get("uuid"):
        domain["firmware"] = {**firmware, "uuid": firmware_uuid(name)}
    return out


def normalized(spec: Json) -> Json:
    """`spec` as the API server stores a VMI created with it (kvd.api's defaults applied); as
    given when it does not decode (a cluster without kvd's admission may hold such a VM)."""
    try:
        decoded = codec.decode(vmitypes.VirtualMachineInstanceSpec, spec)
    except ValidationError:
        return spec
    encoded: Json = codec.encode(defaults.vmi_spec(decoded))
    return encoded


def spec_matches(vm: Json, vmi: Json) -> bool:
    """Whether `vmi` runs the VM's template spec as it is now (KubeVirt: no RestartRequired)."""
    wanted = with_firmware_uuid(vm["spec"]["template"]["spec"], vm["metadata"]["name"])
    return normalized(wanted) == normalized(vmi.get("spec") or {})


def template_matches(vm: Json, vmi: Json) -> bool:
    """Whether `vmi` was made from the VM's template as it is now, metadata included (KubeVirt
    then moves the VMI's generation annotation to the VM's generation)."""
    template_meta = vm["spec"]["template"].get("metadata") or {}
    vmi_meta = vmi.get("metadata") or {}
    labels = {k: v for k, v in (vmi_meta.get("labels") or {}).items() if k not in ADDED_LABELS}
    annotations = {
        k: v for k, v in (vmi_meta.get("annotations") or {}).items() if k not in ADDED_ANNOTATIONS
    }
    return (
        labels == dict(template_meta.get("labels") or {})
        and annotations == dict(template_meta.get("annotations") or {})
        and spec_matches(vm, vmi)
    )


def generation_of(vmi: Json) -> int | None:
    """The VM generation a VMI records (`kubevirt.io/vm-generation`), None when it records none
    or an unreadable one."""
    value = ((vmi.get("metadata") or {}).get("annotations") or {}).get(keys.VM_GENERATION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
