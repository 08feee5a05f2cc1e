"""What the controller's informers cache of each object (`Informer(transform=...)`).

Every cache drops what no controller code reads (`transforms.default`: managedFields, the
last-applied annotation; keys interned). The launcher pod cache keeps only what `phase.view`, the
pod index (`vmi.created_by`), `vmi.owner_key` and the node watchdog read: a launcher pod's spec
(its containers, their command lines, volumes and environment) is most of its JSON and is read by
none of them. Nothing the controller writes is built from a cached pod: pods are created from the
VMI and deleted by name, and every VMI/VM/VMIRS/DV write is a merge or JSON patch of the fields it
sets, never a PUT of a cached object, so no write can send a trimmed object back.

When a new reader of a launcher pod needs another field, add it here (tests/controller/
test_cached.py says which readers each kept field is for).
"""

from __future__ import annotations

from kvd.kube import transforms
from kvd.kube.client import Json

POD_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "labels",  # the BY_VMI index: kubevirt.io/created-by
    "ownerReferences",  # owner_key: the VMI to enqueue
)
POD_SPEC = ("nodeName",)  # phase.view: where it runs
POD_STATUS = (  # phase.view, watchdog.orphaned
    "phase",
    "reason",
    "message",
    "conditions",
    "containerStatuses",
    "initContainerStatuses",
)
CONTAINER_STATUS = ("name", "state")  # phase.view: the compute container's end, waiting errors


def launcher_pod(pod: Json) -> None:
    """A launcher pod as the controller caches it."""
    transforms.keep_only(pod, "metadata", POD_METADATA)
    transforms.keep_only(pod, "spec", POD_SPEC)
    transforms.keep_only(pod, "status", POD_STATUS)
    status = pod.get("status")
    if isinstance(status, dict):
        for field in ("containerStatuses", "initContainerStatuses"):
            for entry in status.get(field) or []:
                if isinstance(entry, dict):
                    for key in [k for k in entry if k not in CONTAINER_STATUS]:
                        del entry[key]
    transforms.compact(pod)


default = transforms.default
