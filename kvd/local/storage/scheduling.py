"""The scheduler's VolumeBinding step for the local node (pure), as kube-scheduler's plugin.

For every persistentVolumeClaim volume of a pod: a missing claim, or one being deleted, makes
the pod unschedulable with kube's message; a bound claim is fine; an unbound claim of an
`Immediate` class (or of no class) makes it unschedulable ("pod has unbound immediate
PersistentVolumeClaims") until the PV controller binds it; an unbound claim of a
`WaitForFirstConsumer` class is the scheduler's to place: it annotates the claim with
`volume.kubernetes.io/selected-node` (PreBind) and binds the pod only once the provisioner has
made and bound its volume, so a pod never lands with a claim it cannot mount.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kvd.local.storage import keys

Json = dict[str, Any]
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"


@dataclass(frozen=True)
class Decision:
    unschedulable: str | None = None  # kube's reason; the pod stays Pending
    select: list[str] = field(default_factory=list)  # claims to annotate with this node
    waiting: list[str] = field(default_factory=list)  # claims the pod waits for (PreBind)

    @property
    def ready(self) -> bool:
        return self.unschedulable is None and not self.select and not self.waiting


def decide(
    pod: Json,
    *,
    claim: Callable[[str, str], Json | None],
    storage_class: Callable[[str], Json | None],
) -> Decision:
    namespace = pod["metadata"]["namespace"]
    select: list[str] = []
    waiting: list[str] = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("persistentVolumeClaim")
        if not source:
            continue
        name = source.get("claimName") or ""
        pvc = claim(namespace, name)
        if pvc is None:
            return Decision(unschedulable=f'persistentvolumeclaim "{name}" not found')
        if pvc["metadata"].get("deletionTimestamp"):
            return Decision(unschedulable=f'persistentvolumeclaim "{name}" is being deleted')
        if (pvc.get("spec") or {}).get("volumeName") and (pvc.get("status") or {}).get(
            "phase"
        ) == "Bound":
            continue
        class_name = (pvc.get("spec") or {}).get("storageClassName") or ""
        sc = storage_class(class_name) if class_name else None
        if class_name and sc is None:
            return Decision(unschedulable=f'storageclass.storage.k8s.io "{class_name}" not found')
        if sc is None or sc.get("volumeBindingMode") != keys.WAIT_FOR_FIRST_CONSUMER:
            return Decision(unschedulable=UNBOUND_IMMEDIATE)
        annotations = pvc["metadata"].get("annotations") or {}
        if keys.SELECTED_NODE in annotations:
            waiting.append(name)
        else:
            select.append(name)
    return Decision(select=select, waiting=waiting)
